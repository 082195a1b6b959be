/**
 * Training data: image tables decoded once into a uint8 cache, report sentences labelled by the rule labeler,
 * built-in prompt sentences, and the decoupled sampler that draws images and sentences independently.
 * Errors name files and ids, never report text.
 */
import pLimit from 'p-limit';
import { DECODE_CONCURRENCY, skipReason, BUILTIN_TEMPLATES, expandTemplate, type TextTokenizer } from '../core/model/index.ts';
import { createHash } from 'node:crypto';
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { readImageTable, type ImageRecord, readReports, reportText } from '../core/tables/index.ts';
import { imageToTensor } from '../core/image/index.ts';
import { labelMask, labelVector, NUM_OBSERVATIONS, OBSERVATIONS, labelReport, labelSentence } from '../core/labeler/index.ts';
import type { Rng } from '../core/util/index.ts';

/** Decoded training images: `count` grey squares of `side` pixels, pad-square resized, row-major uint8. */
export interface ImageSet {
  ids: string[];
  side: number;
  pixels: Uint8Array;
  /** [count * 14] label vectors (positive = 1, uncertain and unknown = 0, as MedCLIP). */
  labels: Float32Array;
  /** [count * 14] 1 where the label is known (0 or 1); unknown and uncertain are 0 (no findings-loss signal). */
  known: Float32Array;
  /** `source` column per image (for balanced sampling and per-source metrics), '' when absent. */
  sources: string[];
  skipped: { id: string; reason: string }[];
}

export interface ImageSetOptions {
  root?: string;
  split?: string;
  side: number;
  resize: 'pad-square' | 'center-crop';
  /** Folder for the decoded cache; decoding is skipped when a cache for the same table, split and size exists. */
  cacheDir?: string;
  concurrency?: number;
  onProgress?: (done: number, total: number) => void;
}

const CACHE_VERSION = 1;

/** Read an image table and decode every image to a `side` x `side` uint8 square; bad files are skipped and listed. */
export async function loadImageSet(table: string, options: ImageSetOptions): Promise<ImageSet> {
  const records: ImageRecord[] = [];
  for await (const r of readImageTable(table, { root: options.root, split: options.split })) records.push(r);
  const key = createHash('sha256')
    .update(
      JSON.stringify([
        CACHE_VERSION,
        table,
        options.root ?? '',
        options.split ?? '',
        options.side,
        options.resize,
        records.map((r) => [r.id, r.file]),
      ]),
    )
    .digest('hex')
    .slice(0, 16);
  const cacheFile = options.cacheDir ? join(options.cacheDir, `images-${key}.bin`) : undefined;
  const n = records.length;
  const area = options.side * options.side;
  const labels = new Float32Array(n * NUM_OBSERVATIONS);
  records.forEach((r, i) => labels.set(labelVector(r.labels, 'zero'), i * NUM_OBSERVATIONS));
  const known = new Float32Array(n * NUM_OBSERVATIONS);
  records.forEach((r, i) => known.set(labelMask(r.labels, 'ignore'), i * NUM_OBSERVATIONS));
  const sources = records.map((r) => r.meta.source ?? '');
  if (cacheFile && existsSync(cacheFile)) {
    const buf = await readFile(cacheFile);
    const headerLength = buf.readUInt32LE(0);
    const header = JSON.parse(buf.subarray(4, 4 + headerLength).toString('utf8')) as { ok: boolean[]; skipped: ImageSet['skipped'] };
    const pixels = new Uint8Array(buf.buffer, buf.byteOffset + 4 + headerLength, n * area);
    return keepDecoded(
      { ids: records.map((r) => r.id), side: options.side, pixels, labels, known, sources, skipped: header.skipped },
      header.ok,
    );
  }
  const pixels = new Uint8Array(n * area);
  const ok = new Array<boolean>(n).fill(false);
  const skipped: ImageSet['skipped'] = [];
  // sharp decodes on its own thread pool: keep a few decodes in flight.
  const spec = { size: options.side, channels: 1 as const, mean: 0, std: 1 / 255, resize: options.resize };
  let done = 0;
  const limit = pLimit(options.concurrency ?? DECODE_CONCURRENCY);
  await Promise.all(
    records.map((r, i) =>
      limit(async () => {
        try {
          const t = await imageToTensor(await readFile(r.file), spec);
          const dst = pixels.subarray(i * area, (i + 1) * area);
          for (let p = 0; p < area; p++) dst[p] = Math.round(t.data[p]!);
          ok[i] = true;
        } catch (err) {
          skipped.push({ id: r.id, reason: skipReason(err) });
        }
        options.onProgress?.(++done, n);
      }),
    ),
  );
  if (cacheFile) {
    await mkdir(options.cacheDir!, { recursive: true });
    const header = Buffer.from(JSON.stringify({ ok, skipped }));
    const len = Buffer.alloc(4);
    len.writeUInt32LE(header.length);
    await writeFile(`${cacheFile}.tmp`, Buffer.concat([len, header, pixels]));
    await rename(`${cacheFile}.tmp`, cacheFile);
  }
  return keepDecoded({ ids: records.map((r) => r.id), side: options.side, pixels, labels, known, sources, skipped }, ok);
}

function keepDecoded(set: ImageSet, ok: boolean[]): ImageSet {
  if (ok.every(Boolean)) return set;
  const area = set.side * set.side;
  const keep = ok.flatMap((k, i) => (k ? [i] : []));
  const pixels = new Uint8Array(keep.length * area);
  const labels = new Float32Array(keep.length * NUM_OBSERVATIONS);
  const known = new Float32Array(keep.length * NUM_OBSERVATIONS);
  keep.forEach((src, dst) => {
    pixels.set(set.pixels.subarray(src * area, (src + 1) * area), dst * area);
    labels.set(set.labels.subarray(src * NUM_OBSERVATIONS, (src + 1) * NUM_OBSERVATIONS), dst * NUM_OBSERVATIONS);
    known.set(set.known.subarray(src * NUM_OBSERVATIONS, (src + 1) * NUM_OBSERVATIONS), dst * NUM_OBSERVATIONS);
  });
  return { ...set, ids: keep.map((i) => set.ids[i]!), sources: keep.map((i) => set.sources[i]!), pixels, labels, known };
}

/** Labelled sentences for the text side. */
export interface SentenceSet {
  texts: string[];
  labels: Float32Array;
  /** Where each sentence came from: 'report' or 'prompt'. */
  origin: ('report' | 'prompt')[];
}

export interface SentenceOptions {
  split?: string;
  idColumn?: string;
  textColumns?: string[];
  /** Add the built-in zero-shot prompt sentences (labelled by the labeler) as text-only data. */
  prompts?: boolean;
}

/**
 * Report sentences with labeler labels; sentences the labeler finds nothing in (all-zero vectors) carry no
 * semantic target and are dropped; duplicates are kept once so boilerplate does not dominate.
 */
export async function loadSentences(reportsFile: string | undefined, options: SentenceOptions = {}): Promise<SentenceSet> {
  const seen = new Map<string, 'report' | 'prompt'>();
  const vectors: Float32Array[] = [];
  const add = (text: string, origin: 'report' | 'prompt', vec: Float32Array) => {
    const key = text.trim().toLowerCase();
    if (!key || seen.has(key) || !vec.some((v) => v > 0)) return;
    seen.set(key, origin);
    vectors.push(vec);
  };
  if (reportsFile) {
    for await (const report of readReports(reportsFile, {
      split: options.split,
      idColumn: options.idColumn,
      textColumns: options.textColumns,
    })) {
      for (const s of labelReport(reportText(report)).sentences) add(s.text, 'report', labelVector(s.labels, 'zero'));
    }
  }
  if (options.prompts) {
    for (const template of Object.values(BUILTIN_TEMPLATES))
      for (const p of expandTemplate(template)) add(p, 'prompt', labelVector(labelSentence(p), 'zero'));
  }
  const texts = [...seen.keys()];
  const labels = new Float32Array(texts.length * NUM_OBSERVATIONS);
  vectors.forEach((v, i) => labels.set(v, i * NUM_OBSERVATIONS));
  return { texts, labels, origin: texts.map((t) => seen.get(t)!) };
}

/** Token ids for every sentence, computed once: int32 [n, maxLength] ids and mask. */
export function tokenizeAll(tokenizer: TextTokenizer, texts: string[], maxLength: number): { ids: Int32Array; mask: Int32Array } {
  const ids = new Int32Array(texts.length * maxLength).fill(tokenizer.padId);
  const mask = new Int32Array(texts.length * maxLength);
  texts.forEach((t, i) => {
    const tok = tokenizer.encodeIds(t, maxLength);
    for (let j = 0; j < tok.length; j++) {
      ids[i * maxLength + j] = tok[j]!;
      mask[i * maxLength + j] = 1;
    }
  });
  return { ids, mask };
}

function vectorKey(labels: Float32Array, i: number): string {
  return Array.from(labels.subarray(i * NUM_OBSERVATIONS, (i + 1) * NUM_OBSERVATIONS), (v) => (v > 0 ? 1 : 0)).join('');
}

/**
 * MedCLIP's decoupled sampler: B images and B sentences drawn independently. With probability `matchRate`
 * an image's sentence is drawn among sentences sharing one of its positive findings, so the batch holds
 * informative positives; otherwise uniformly. `balanceSources` samples images evenly over sources;
 * `balanceFindings` draws half of the images by finding instead: an observation uniformly among those with a
 * positive image, then one of its positive images, so rare findings (a dozen pneumothorax films among thousands
 * of pneumonia/normal ones) reach most batches while the other half keeps the sources' mix.
 */
export class DecoupledSampler {
  private readonly bySource: number[][];
  private readonly sentencesByFinding: number[][];
  private readonly sentencesByVector = new Map<string, number[]>();
  private readonly imagesByFinding: number[][] = [];

  constructor(
    private readonly images: ImageSet,
    private readonly sentences: SentenceSet,
    private readonly options: { matchRate: number; balanceSources: boolean; balanceFindings?: boolean; identical?: boolean },
  ) {
    for (let f = 0; f < NUM_OBSERVATIONS; f++) {
      const pool: number[] = [];
      for (let i = 0; i < images.ids.length; i++) if (images.labels[i * NUM_OBSERVATIONS + f]! > 0) pool.push(i);
      if (pool.length) this.imagesByFinding.push(pool);
    }
    const groups = new Map<string, number[]>();
    images.sources.forEach((s, i) => {
      const key = options.balanceSources ? s : '';
      if (!groups.has(key)) groups.set(key, []);
      groups.get(key)!.push(i);
    });
    this.bySource = [...groups.values()];
    this.sentencesByFinding = OBSERVATIONS.map(() => []);
    const n = sentences.texts.length;
    for (let i = 0; i < n; i++) {
      const key = vectorKey(sentences.labels, i);
      if (!this.sentencesByVector.has(key)) this.sentencesByVector.set(key, []);
      this.sentencesByVector.get(key)!.push(i);
    }
    for (let i = 0; i < n; i++)
      for (let f = 0; f < NUM_OBSERVATIONS; f++) if (sentences.labels[i * NUM_OBSERVATIONS + f]! > 0) this.sentencesByFinding[f]!.push(i);
  }

  sample(batch: number, rng: Rng): { images: number[]; sentences: number[] } {
    const images: number[] = [];
    const sentences: number[] = [];
    for (let b = 0; b < batch; b++) {
      const byFinding = this.options.balanceFindings && this.imagesByFinding.length > 0 && rng.next() < 0.5;
      const group = byFinding ? this.imagesByFinding[rng.int(this.imagesByFinding.length)]! : this.bySource[rng.int(this.bySource.length)]!;
      const img = group[rng.int(group.length)]!;
      images.push(img);
      let sentence = -1;
      // InfoNCE on unpaired data: a pseudo-pair is a sentence with the image's exact label vector.
      const same = this.options.identical ? this.sentencesByVector.get(vectorKey(this.images.labels, img)) : undefined;
      if (same) sentence = same[rng.int(same.length)]!;
      else if (rng.next() < this.options.matchRate) {
        const findings: number[] = [];
        for (let f = 0; f < NUM_OBSERVATIONS; f++)
          if (this.images.labels[img * NUM_OBSERVATIONS + f]! > 0 && this.sentencesByFinding[f]!.length) findings.push(f);
        if (findings.length) {
          const pool = this.sentencesByFinding[findings[rng.int(findings.length)]!]!;
          sentence = pool[rng.int(pool.length)]!;
        }
      }
      sentences.push(sentence >= 0 ? sentence : rng.int(this.sentences.texts.length));
    }
    return { images, sentences };
  }
}
