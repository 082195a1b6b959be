import { ImageError } from '../errors.ts';
/** AWS Lambda's synchronous request (and response) payload limit: the API's body limit and the worker fan-out's request budget. */
export const LAMBDA_PAYLOAD_LIMIT = 6 * 1024 * 1024;

/**
 * The most hits one search returns (the API's `k`, the CLI's `--k`). Every ranking is computed to this depth
 * whatever `k` asks, so the first k hits of a request are the first k of a request for any larger k.
 */
export const MAX_HITS = 100;

/** How large an image may be: encoded bytes and decoded pixels (uploads, DICOM frames, archive files). */
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
