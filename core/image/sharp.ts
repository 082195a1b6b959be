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
  loading ??= import('sharp').then((m) => m.default);
  return loading;
}
