/**
 * sharp (libvips), loaded on first use: loading it takes ~125 ms, which a process answering text queries (a Lambda
 * cold start, say) need not pay before its first answer.
 *
 *   const sharp = await loadSharp();
 *   await sharp(bytes).metadata();
 */
import type sharpModule from 'sharp';

export type Sharp = typeof sharpModule;
let loading: Promise<Sharp> | undefined;

export function loadSharp(): Promise<Sharp> {
  loading ??= import('sharp').then((m) => {
    // libvips' operation cache never hits here (every image is new) and only costs: measured 310-330 -> 400-440
    // decodes/s on two cores without it, and memory no longer holds the last 50 MB of images.
    m.default.cache(false);
    return m.default;
  });
  return loading;
}
