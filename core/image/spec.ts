/** How a model wants its pixels: the `image` block of a model bundle's manifest. */
import { MedclipError } from '../errors.ts';
export interface ImageSpec {
  /** Square input side, in pixels. */
  size: number;
  /** 1: grey; 3: the grey X-ray replicated into R, G and B (CLIP-style encoders take three channels). */
  channels: 1 | 3;
  /** Normalisation applied to values scaled to [0, 1]: (v - mean) / std; one value, or one per channel. */
  mean: number | readonly number[];
  std: number | readonly number[];
  /** 'pad-square': fit the whole image, pad the short side with black; 'center-crop': fill, crop the long side. */
  resize: 'pad-square' | 'center-crop';
  /** The resampling filter of the resize (default lanczos, as this project's models were trained). */
  interpolation?: 'bilinear' | 'bicubic' | 'lanczos';
}

/** A spec's mean or std for channel `c`. */
export function channelValue(v: number | readonly number[], c: number): number {
  return typeof v === 'number' ? v : (v[c] ?? v[0]!);
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
  if (channels !== 1 && channels !== 3) throw new ImageSpecError('image.channels must be 1 (grey) or 3 (grey replicated to RGB)');
  const perChannel = (v: unknown, name: string): number | number[] => {
    if (Array.isArray(v) && v.length === 3 && channels === 3) {
      if (!v.every((x) => typeof x === 'number' && Number.isFinite(x)))
        throw new ImageSpecError(`image.${name} values must be finite numbers`);
      return v as number[];
    }
    if (Array.isArray(v) && v.length !== 1) throw new ImageSpecError(`image.${name} must be one number or one per channel (${channels})`);
    return scalar(v, name);
  };
  const mean = perChannel(r.mean, 'mean');
  const std = perChannel(r.std, 'std');
  if ((typeof std === 'number' ? [std] : std).some((x) => x <= 0)) throw new ImageSpecError('image.std must be positive');
  const resize = r.resize ?? 'pad-square';
  if (resize !== 'pad-square' && resize !== 'center-crop') throw new ImageSpecError('image.resize must be "pad-square" or "center-crop"');
  const interpolation = r.interpolation ?? 'lanczos';
  if (interpolation !== 'bilinear' && interpolation !== 'bicubic' && interpolation !== 'lanczos')
    throw new ImageSpecError('image.interpolation must be "bilinear", "bicubic" or "lanczos"');
  return { size, channels, mean, std, resize, ...(r.interpolation !== undefined ? { interpolation } : {}) };
}
