/**
 * Image augmentation on cached uint8 squares, in JS: random resized crop + small rotation in one affine
 * warp (bilinear), then brightness/contrast jitter; output normalised float32 at the model's size.
 * With `augment` off it is the plain resize the exported model sees at inference.
 */
import type { Rng } from '../core/util/index.ts';

export interface AugmentOptions {
  /** Crop side as a fraction of the image side, sampled in [min, 1]. */
  minScale: number;
  maxRotationDeg: number;
  brightness: number;
  contrast: number;
}

export const DEFAULT_AUGMENT: AugmentOptions = { minScale: 0.8, maxRotationDeg: 7, brightness: 0.1, contrast: 0.15 };

/**
 * Warp `src` (side x side uint8) into `out` (size x size float32, normalised by mean/std).
 * `rng` undefined = no augmentation (whole image, bilinear resize).
 */
export function augmentInto(
  src: Uint8Array,
  side: number,
  out: Float32Array,
  size: number,
  norm: { mean: number; std: number },
  rng: Rng | undefined,
  options: AugmentOptions = DEFAULT_AUGMENT,
): void {
  let scale = 1;
  let angle = 0;
  let cx = side / 2;
  let cy = side / 2;
  let gain = 1;
  let bias = 0;
  if (rng) {
    scale = rng.uniform(options.minScale, 1);
    angle = (rng.uniform(-1, 1) * options.maxRotationDeg * Math.PI) / 180;
    const slack = ((1 - scale) * side) / 2;
    cx += rng.uniform(-slack, slack);
    cy += rng.uniform(-slack, slack);
    gain = 1 + rng.uniform(-options.contrast, options.contrast);
    bias = rng.uniform(-options.brightness, options.brightness) * 255;
  }
  const step = (scale * side) / size;
  const cos = Math.cos(angle) * step;
  const sin = Math.sin(angle) * step;
  const k = 1 / (255 * norm.std);
  const shift = norm.mean / norm.std;
  const sample = (xx: number, yy: number) => (xx < 0 || yy < 0 || xx >= side || yy >= side ? 0 : src[yy * side + xx]!);
  for (let v = 0; v < size; v++) {
    const dy = v + 0.5 - size / 2;
    // source coordinates move linearly along a row: start + u * (cos, sin)
    let x = cx - sin * dy - 0.5 + cos * (0.5 - size / 2);
    let y = cy + cos * dy - 0.5 + sin * (0.5 - size / 2);
    const row = v * size;
    for (let u = 0; u < size; u++, x += cos, y += sin) {
      const x0 = Math.floor(x);
      const y0 = Math.floor(y);
      const fx = x - x0;
      const fy = y - y0;
      let value: number;
      if (x0 >= 0 && y0 >= 0 && x0 + 1 < side && y0 + 1 < side) {
        const i = y0 * side + x0;
        const top = src[i]! + (src[i + 1]! - src[i]!) * fx;
        const bottom = src[i + side]! + (src[i + side + 1]! - src[i + side]!) * fx;
        value = top + (bottom - top) * fy;
      } else {
        value =
          (sample(x0, y0) * (1 - fx) + sample(x0 + 1, y0) * fx) * (1 - fy) +
          (sample(x0, y0 + 1) * (1 - fx) + sample(x0 + 1, y0 + 1) * fx) * fy;
      }
      if (rng) value = Math.min(255, Math.max(0, (value - 128) * gain + 128 + bias));
      out[row + u] = value * k - shift;
    }
  }
}
