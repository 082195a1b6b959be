/** Typed image errors: the code says what went wrong, the message names no pixel content. */
import { MedclipError } from '../errors.ts';
export type ImageErrorCode = 'empty' | 'unsupported' | 'corrupt' | 'truncated' | 'too-large';

export class ImageError extends MedclipError {
  constructor(
    readonly code: ImageErrorCode,
    message: string,
  ) {
    super(message, 'input');
  }
}

export interface ImageLimits {
  /** Largest accepted encoded input, in bytes. */
  maxBytes: number;
  /** Largest accepted decoded image, in pixels (width x height). */
  maxPixels: number;
}

export const DEFAULT_IMAGE_LIMITS: ImageLimits = {
  maxBytes: 64 * 1024 * 1024,
  /** 5000 x 5000: above every chest detector (the largest, 4320 x 4320), and a decode stays under 512 MB. */
  maxPixels: 25_000_000,
};

export function checkDimensions(width: number, height: number, limits: ImageLimits, what: string): void {
  if (!Number.isInteger(width) || !Number.isInteger(height) || width < 1 || height < 1)
    throw new ImageError('corrupt', `${what} has invalid dimensions ${width}x${height}`);
  if (width * height > limits.maxPixels)
    throw new ImageError('too-large', `${what} is ${width}x${height} = ${width * height} pixels; the limit is ${limits.maxPixels}`);
}
