/**
 * Training data: image records decoded once into a uint8 cache, report sentences labelled by the rule labeler (and
 * which report each came from), built-in prompt sentences, and every sentence tokenized once.
 * Errors name files and ids, never report text.
 */
import pLimit from 'p-limit';
import { DECODE_CONCURRENCY, skipReason, BUILTIN_TEMPLATES, expandTemplate, type TextTokenizer } from '../core/model/index.ts';
import { createHash } from 'node:crypto';
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { readImageTable, type ImageRecord, type Report, reportText } from '../core/tables/index.ts';
import { imageToTensor } from '../core/image/index.ts';
import { labelMask, labelVector, NUM_OBSERVATIONS, labelReport, labelSentence, type LabelRow } from '../core/labeler/index.ts';

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
  /** The image's own report (`report_id` column, or the index's link), when it names one. */
  reportIds: (string | undefined)[];
  skipped: { id: string; reason: string }[];
}

export interface ImageSetOptions {
  side: number;
  resize: 'pad-square' | 'center-crop';
  /** Folder for the decoded cache; decoding is skipped when a cache for the same table, split and size exists. */
  cacheDir?: string;
  concurrency?: number;
  onProgress?: (done: number, total: number) => void;
}

const CACHE_VERSION = 2;

/** The rows of an image table (a split of it) as training records. */
export async function readImageRecords(table: string, options: { root?: string; split?: string }): Promise<ImageRecord[]> {
  const records: ImageRecord[] = [];
  for await (const r of readImageTable(table, options)) records.push(r);
  return records;
}

/** Decode every image to a `side` x `side` uint8 square; bad files are skipped and listed. */
export async function loadImageSet(records: ImageRecord[], options: ImageSetOptions): Promise<ImageSet> {
  const key = createHash('sha256')
    .update(JSON.stringify([CACHE_VERSION, options.side, options.resize, records.map((r) => [r.id, r.file])]))
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
  const reportIds = records.map((r) => r.meta.report_id?.trim() || undefined);
  if (cacheFile && existsSync(cacheFile)) {
    const buf = await readFile(cacheFile);
    const headerLength = buf.readUInt32LE(0);
    const header = JSON.parse(buf.subarray(4, 4 + headerLength).toString('utf8')) as { ok: boolean[]; skipped: ImageSet['skipped'] };
    const pixels = new Uint8Array(buf.buffer, buf.byteOffset + 4 + headerLength, n * area);
    return keepDecoded(
      { ids: records.map((r) => r.id), side: options.side, pixels, labels, known, sources, reportIds, skipped: header.skipped },
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
  return keepDecoded({ ids: records.map((r) => r.id), side: options.side, pixels, labels, known, sources, reportIds, skipped }, ok);
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
  return {
    ...set,
    ids: keep.map((i) => set.ids[i]!),
    sources: keep.map((i) => set.sources[i]!),
    reportIds: keep.map((i) => set.reportIds[i]),
    pixels,
    labels,
    known,
  };
}

/** Labelled sentences for the text side. */
export interface SentenceSet {
  texts: string[];
  labels: Float32Array;
  /** Where each sentence came from: 'report' or 'prompt'. */
  origin: ('report' | 'prompt')[];
  /** Per report id: its labelled sentences (indices into `texts`; a wording shared with another report is one index). */
  byReport: Map<string, number[]>;
  /** Per report id: the labeler's report-level labels (for a paired image with no labels of its own). */
  reportLabels: Map<string, LabelRow>;
}

export interface SentenceOptions {
  /** Add the built-in zero-shot prompt sentences (labelled by the labeler) as text-only data. */
  prompts?: boolean;
}

/**
 * Report sentences with labeler labels; sentences the labeler finds nothing in (all-zero vectors) carry no
 * semantic target and are dropped; duplicates are kept once so boilerplate does not dominate.
 */
export async function loadSentences(
  reports: Iterable<Report> | AsyncIterable<Report>,
  options: SentenceOptions = {},
): Promise<SentenceSet> {
  const seen = new Map<string, { index: number; origin: 'report' | 'prompt' }>();
  const vectors: Float32Array[] = [];
  const byReport = new Map<string, number[]>();
  const reportLabels = new Map<string, LabelRow>();
  const add = (text: string, origin: 'report' | 'prompt', vec: Float32Array): number | undefined => {
    const key = text.trim().toLowerCase();
    if (!key || !vec.some((v) => v > 0)) return undefined;
    const known = seen.get(key);
    if (known) return known.index;
    seen.set(key, { index: vectors.length, origin });
    vectors.push(vec);
    return vectors.length - 1;
  };
  for await (const report of reports) {
    const labelled = labelReport(reportText(report));
    const own = new Set<number>();
    for (const s of labelled.sentences) {
      const index = add(s.text, 'report', labelVector(s.labels, 'zero'));
      if (index !== undefined) own.add(index);
    }
    byReport.set(report.id, [...own]);
    reportLabels.set(report.id, labelled.labels);
  }
  if (options.prompts) {
    for (const template of Object.values(BUILTIN_TEMPLATES))
      for (const p of expandTemplate(template)) add(p, 'prompt', labelVector(labelSentence(p), 'zero'));
  }
  const texts = [...seen.keys()];
  const labels = new Float32Array(texts.length * NUM_OBSERVATIONS);
  vectors.forEach((v, i) => labels.set(v, i * NUM_OBSERVATIONS));
  return { texts, labels, origin: texts.map((t) => seen.get(t)!.origin), byReport, reportLabels };
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
