/**
 * The one image embedding pipeline: read -> decode (bounded concurrency; sharp decodes on its own thread pool) ->
 * one pixel batch -> the image encoder, each item settled on its own. The API (`MedClipModel.embedImages`), the
 * index builder (in process and in worker threads), the Lambda embedding worker, evaluation and the benches all
 * embed through it, so a bad image is handled the same way everywhere: reported with a reason code, never a crash.
 *
 *   const out = await embedImageSources(model, ['a.png', bytes]);   // [{ ok: true, vector }, { ok: false, reason }]
 */
import pLimit from 'p-limit';
import { readFile } from 'node:fs/promises';
import { DEFAULT_IMAGE_LIMITS, ImageError, imageToTensor, type ImageLimits, type ImageSpec } from '../image/index.ts';

/** An image to embed: its bytes, or a file path read when its turn comes. */
export type ImageSource = Uint8Array | string;

export type EmbeddedImage = { ok: true; vector: Float32Array } | { ok: false; reason: string; error: unknown };

/** What the pipeline needs of a model (MedClipModel has it). */
export interface ImageEncoder {
  readonly imageSpec: ImageSpec;
  readonly embedDim: number;
  embedPixels(pixels: Float32Array, count: number): Promise<Float32Array>;
}

/** Decodes in flight at once: enough to keep sharp's pool (4 threads) and the file system busy on 2 cores. */
export const DECODE_CONCURRENCY = 8;

/** Why an image could not be used, as a short code + message that names no content. */
export function skipReason(err: unknown): string {
  if (err instanceof ImageError) return `${err.code}: ${err.message}`;
  const code = (err as NodeJS.ErrnoException)?.code;
  if (code === 'ENOENT') return 'missing: file not found';
  if (code === 'EACCES') return 'unreadable: permission denied';
  if (code) return `unreadable: ${code}`;
  return `failed: ${(err as Error)?.name ?? 'error'}`;
}

/** Decode every source (at most `concurrency` at once), then embed the good ones as one batch; one result per source. */
export async function embedImageSources(
  model: ImageEncoder,
  sources: ImageSource[],
  o: { concurrency?: number; limits?: ImageLimits } = {},
): Promise<EmbeddedImage[]> {
  const spec = model.imageSpec;
  const area = spec.channels * spec.size * spec.size;
  const limit = pLimit(o.concurrency ?? DECODE_CONCURRENCY);
  const decoded = await Promise.all(
    sources.map((source) =>
      limit(async () => {
        try {
          const bytes = typeof source === 'string' ? await readFile(source) : source;
          return (await imageToTensor(bytes, spec, o.limits ?? DEFAULT_IMAGE_LIMITS)).data;
        } catch (error) {
          return { error };
        }
      }),
    ),
  );
  const good = decoded.flatMap((d, i) => (d instanceof Float32Array ? [i] : []));
  const pixels = new Float32Array(good.length * area);
  good.forEach((i, row) => pixels.set(decoded[i] as Float32Array, row * area));
  const flat = good.length ? await model.embedPixels(pixels, good.length) : new Float32Array(0);
  const d = model.embedDim;
  const row = new Map(good.map((i, r) => [i, r]));
  return decoded.map((x, i) =>
    x instanceof Float32Array
      ? { ok: true as const, vector: flat.slice(row.get(i)! * d, (row.get(i)! + 1) * d) }
      : { ok: false as const, reason: skipReason(x.error), error: x.error },
  );
}
