/** How a model wants its pixels: the `image` block of a model bundle's manifest. */
import { MedclipError } from '../errors.ts';
export interface ImageSpec {
  /** Square input side, in pixels. */
  size: number;
  channels: 1;
  /** Normalisation applied to values scaled to [0, 1]: (v - mean) / std. */
  mean: number;
  std: number;
  /** 'pad-square': fit the whole image, pad the short side with black; 'center-crop': fill, crop the long side. */
  resize: 'pad-square' | 'center-crop';
}

export class ImageSpecError extends MedclipError {
  constructor(message: string) {
    super(message, 'data');
  }
}

/** Check a spec read from a manifest; MedCLIP-style manifests may hold `mean`/`std` as one-element arrays. */
export function parseImageSpec(raw: unknown): ImageSpec {
  if (!raw || typeof raw !== 'object') throw new ImageSpecError('image spec must be an object');
  const r = raw as Record<string, unknown>;
  const scalar = (v: unknown, name: string): number => {
    const x = Array.isArray(v) && v.length === 1 ? v[0] : v;
    if (typeof x !== 'number' || !Number.isFinite(x)) throw new ImageSpecError(`image.${name} must be a finite number`);
    return x;
  };
  const size = scalar(r.size, 'size');
  if (!Number.isInteger(size) || size < 8 || size > 2048) throw new ImageSpecError('image.size must be an integer in [8, 2048]');
  const channels = r.channels ?? 1;
  if (channels !== 1) throw new ImageSpecError('image.channels must be 1 (grayscale)');
  const std = scalar(r.std, 'std');
  if (std <= 0) throw new ImageSpecError('image.std must be positive');
  const resize = r.resize ?? 'pad-square';
  if (resize !== 'pad-square' && resize !== 'center-crop') throw new ImageSpecError('image.resize must be "pad-square" or "center-crop"');
  return { size, channels: 1, mean: scalar(r.mean, 'mean'), std, resize };
}
