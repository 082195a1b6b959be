/**
 * Writes an index bundle from collected vectors and metadata: HNSW shards built on unit vectors (inner
 * product), metadata lines, reports and errors, and a manifest with every file's sha256. Each write is a new
 * version folder inside the bundle location, staged under a temporary name and switched live by replacing
 * `CURRENT` (core/bundle/versioned-dir.ts): readers see the old version or the new one, never a mix or a gap.
 * Callers hold the bundle's lock (core/bundle/lock.ts).
 */
import { copyFile, cp, mkdir, rm, writeFile, readFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import {
  hnswlib,
  type HierarchicalNSW,
  ANCHOR_LIST,
  anchorGroups,
  anchorLists,
  anchorTexts,
  type ShardAnchorLists,
  serializeAnchors,
  shardGroups,
  INDEX_FORMAT,
  hnswFileComplete,
  type CollectionManifest,
  type DicomwebCursor,
  type CollectionName,
  type IndexManifest,
  type ImageMeta,
  type ItemMeta,
  type SentenceMeta,
  type StoredLabels,
  type StoredReport,
  type TextMeta,
  publishVersion,
  removeStaleStaging,
  stageVersion,
  versionName,
  LEXICAL_VERSION,
  LexicalIndex,
  buildBitsets,
  lineIndex,
  vouchFor,
} from '../core/bundle/index.ts';
import { buildHnsw, buildShardFiles, shardSizeFor, type HnswParams } from './hnsw-build.ts';

export { buildHnsw, type HnswParams };
import { sha256, PROMPTS_VERSION } from '../core/model/index.ts';
import { thumbnailName } from '../core/image/index.ts';
import type { BuildError } from './partial.ts';
import { fsErrorReason, isFsError } from '../core/util/index.ts';
import { IndexBuildError } from './errors.ts';
import { extractModifiers, hasModifiers, LABELER_VERSION } from '../core/labeler/index.ts';

const LEXICAL_FILE = 'reports.lexical.json';
const TEXTS_FILE = 'texts.hnsw';
const TEXTS_META = 'texts.meta.jsonl';

/** Chosen with bench/index: recall@10 0.997 against exact search on the sample's real embeddings at efSearch 128. */
/** shardSize 0: automatic (hnsw-build.ts `shardSizeFor`: one shard per core from 40,000 vectors, at most 1M each). */
export const DEFAULT_HNSW: HnswParams = { M: 16, efConstruction: 200, efSearch: 128, shardSize: 0, seed: 100 };

export interface CollectionData {
  dim: number;
  vectors: Float32Array;
  items: ItemMeta[];
}

export interface BundleContent {
  model: { name: string; sha256: string; embedDim: number };
  collections: Partial<Record<CollectionName, CollectionData>>;
  reports?: StoredReport[];
  errors: BuildError[];
  version: number;
  hnsw: HnswParams;
  /** A folder of thumbnails to copy into the bundle as `thumbs/`. */
  thumbsDir?: string;
  /** Copy only the previews of these image ids (default: the whole folder). */
  thumbIds?: string[];
  /** Recorded in the manifest for a bundle built from a DICOMweb server. */
  dicomweb?: DicomwebCursor;
  /** Text anchors for image shards (core/bundle/anchors.ts: `anchorTexts()` embedded by the bundle's model). */
  anchors?: Float32Array;
}

/** Neighbours of a sentence among the images that define its hubness (CSLS uses 10). */
export const HUB_NEIGHBOURS = 10;

/**
 * Each distinct sentence's hubness: its mean cosine to its HUB_NEIGHBOURS nearest images of this bundle (the CSLS
 * / query-bank idea, with the archive's own images as the bank). A sentence near every X-ray scores high; image ->
 * reports search subtracts it (weighted) so such sentences stop topping every image's list. Undefined without images.
 */
function textHubness(vectors: Float32Array, dim: number, n: number, images: HierarchicalNSW[]): number[] | undefined {
  const live = images.filter((ix) => ix.getCurrentCount() > 0);
  if (!live.length) return undefined;
  const out: number[] = [];
  const row = new Array<number>(dim);
  for (let i = 0; i < n; i++) {
    for (let d = 0; d < dim; d++) row[d] = vectors[i * dim + d]!;
    const sims: number[] = [];
    for (const ix of live) {
      const r = ix.searchKnn(row, Math.min(HUB_NEIGHBOURS, ix.getCurrentCount()));
      for (const dist of r.distances) sims.push(1 - dist);
    }
    sims.sort((a, b) => b - a);
    const top = sims.slice(0, HUB_NEIGHBOURS);
    out.push(Math.round((top.reduce((a, b) => a + b, 0) / top.length) * 1e6) / 1e6);
  }
  return out;
}

const jsonl = (rows: unknown[]) => rows.map((r) => JSON.stringify(r) + '\n').join('');

/** The text anchors of a bundle (core/bundle/anchors.ts), embedded by its model: a flat [count x dim] array. */
export async function textAnchors(model: {
  embedTexts(texts: string[]): Promise<Float32Array[]>;
  embedDim: number;
}): Promise<Float32Array> {
  const texts = anchorTexts();
  const out = new Float32Array(texts.length * model.embedDim);
  for (let i = 0; i < texts.length; i += 64)
    (await model.embedTexts(texts.slice(i, i + 64))).forEach((v, j) => out.set(v, (i + j) * model.embedDim));
  return out;
}

/** Write `content` as version `content.version` of the bundle at `out` and make it live. */
export async function writeBundle(out: string, content: BundleContent): Promise<IndexManifest> {
  linkReports(content);
  await removeStaleStaging(out); // leftovers of killed writers (the caller holds the lock)
  const tmp = await stageVersion(out);
  let writing = tmp;
  try {
    const manifest = await fillVersion(out, tmp, content, (file) => (writing = file));
    await publishVersion(out, tmp, versionName(content.version));
    return manifest;
  } catch (err) {
    await rm(tmp, { recursive: true, force: true }).catch(() => {});
    if (isFsError(err)) throw new IndexBuildError(`cannot write ${writing}: ${fsErrorReason(err)}; the bundle in ${out} is unchanged`);
    throw err;
  }
}

/**
 * Image <-> report pairs, made consistent on every write: an image read from a PACS without a link gets its study's
 * SR report; a link to a report that is not (or no longer) in the bundle is dropped, so deleting a report unlinks its
 * images and an append of images before their reports links them when the reports arrive.
 */
export function linkReports(content: BundleContent): void {
  const images = content.collections.images?.items as ImageMeta[] | undefined;
  if (!images?.length) return;
  const live = new Set((content.reports ?? []).filter((r) => !r.deleted).map((r) => r.id));
  const byStudy = new Map((content.reports ?? []).flatMap((r) => (r.dicom && !r.deleted ? [[r.dicom.study, r.id] as const] : [])));
  for (const m of images) {
    if (!m.reportId && m.dicom) {
      const study = byStudy.get(m.dicom.study);
      if (study) m.reportId = study;
    }
    if (m.reportId && !live.has(m.reportId)) delete m.reportId;
  }
}

async function fillVersion(out: string, tmp: string, content: BundleContent, writing: (file: string) => void): Promise<IndexManifest> {
  const hashes: Record<string, string> = {};
  const put = async (name: string, data: string | Uint8Array) => {
    writing(join(tmp, name));
    await writeFile(join(tmp, name), data);
    hashes[name] = sha256(typeof data === 'string' ? Buffer.from(data) : data);
  };
  const collections: IndexManifest['collections'] = {};
  /** The image shards' HNSW indexes, kept to measure each distinct sentence's hubness below. */
  const imageIndexes: HierarchicalNSW[] = [];
  for (const [name, c] of Object.entries(content.collections) as [CollectionName, CollectionData][]) {
    const n = c.items.length;
    if (n === 0) continue;
    const shards: CollectionManifest['shards'] = [];
    const shardSize = shardSizeFor(n, content.hnsw.shardSize);
    const shardCount = Math.ceil(n / shardSize);
    const range = (s: number) => {
      const from = s * shardSize;
      return { from, to: Math.min(n, from + shardSize), base: shardCount === 1 ? name : `${name}.${s}` };
    };
    const deleted = (i: number) => !!c.items[i]!.deleted;
    // several shards: built side by side on worker threads (one per core), each writing its own file
    const anchors = name === 'images' ? content.anchors : undefined;
    const groups = anchors ? anchorGroups(c.items as (ItemMeta & { source?: string; view?: string })[]) : undefined;
    let lists: (ShardAnchorLists | undefined)[] = [];
    if (shardCount > 1) {
      const jobs = Array.from({ length: shardCount }, (_, s) => ({ ...range(s), file: join(tmp, `${range(s).base}.hnsw`) }));
      writing(join(tmp, `${name}.*.hnsw`));
      lists = await buildShardFiles(c.vectors, c.dim, jobs, content.hnsw, deleted, undefined, anchors, groups);
    }
    for (let s = 0; s < shardCount; s++) {
      const { from, to, base } = range(s);
      const file = join(tmp, `${base}.hnsw`);
      writing(file);
      let index: HierarchicalNSW | undefined;
      if (shardCount === 1) {
        index = buildHnsw(c.vectors, c.dim, from, to, content.hnsw, deleted);
        index.writeIndexSync(file);
      }
      // hnswlib's writer (a C++ ofstream) does not report a failed write: check that the whole file landed.
      const bytes = await readFile(file);
      if (!hnswFileComplete(bytes))
        throw new IndexBuildError(`cannot write ${file}: the file is incomplete (is the disk full?); the bundle in ${out} is unchanged`);
      hashes[`${base}.hnsw`] = sha256(bytes);
      if (name === 'images') {
        if (!index) {
          index = new hnswlib.HierarchicalNSW('ip', c.dim);
          index.readIndexSync(file);
        }
        imageIndexes.push(index);
      }
      // the metadata, and where each of its lines starts (a load reads that instead of the metadata)
      const lines = c.items.slice(from, to).map((item) => JSON.stringify(item));
      await put(`${base}.meta.jsonl`, lines.map((line) => `${line}\n`).join(''));
      await put(`${base}.meta.idx`, lineIndex(lines));
      await put(`${base}.filters.json`, JSON.stringify(buildBitsets(c.items.slice(from, to))));
      let anchorsFile: string | undefined;
      if (anchors) {
        const shardLists =
          lists[s] ?? anchorLists(c.vectors, c.dim, from, to, anchors, ANCHOR_LIST, deleted, shardGroups(groups!, from, to));
        anchorsFile = `${base}.anchors.bin`;
        await put(anchorsFile, serializeAnchors(anchors, c.dim, shardLists));
      }
      shards.push({
        file: `${base}.hnsw`,
        meta: `${base}.meta.jsonl`,
        metaIndex: `${base}.meta.idx`,
        count: to - from,
        filters: `${base}.filters.json`,
        ...(anchorsFile ? { anchors: anchorsFile } : {}),
      });
    }
    collections[name] = {
      count: n,
      deleted: c.items.filter((i) => i.deleted).length,
      dim: c.dim,
      space: 'ip',
      M: content.hnsw.M,
      efConstruction: content.hnsw.efConstruction,
      efSearch: content.hnsw.efSearch,
      shards,
    };
  }
  if (content.reports) await put('reports.jsonl', jsonl(content.reports));
  await put('errors.jsonl', jsonl(content.errors));
  // The live sentences' distinct texts (first occurrence: identical texts have identical embeddings): one HNSW
  // vector per wording for collapsed report search, and BM25 over them, so no query has to build either.
  const sentences = content.collections.reports;
  const live = new Set(content.reports?.filter((r) => !r.deleted).map((r) => r.id));
  const distinct = new Map<string, { row: number; labels: StoredLabels }>();
  (sentences?.items ?? []).forEach((item, row) => {
    const i = item as SentenceMeta;
    if (!i.deleted && i.text !== undefined && live.has(i.reportId) && !distinct.has(i.text))
      distinct.set(i.text, { row, labels: i.labels });
  });
  let texts: IndexManifest['texts'];
  if (sentences && distinct.size) {
    const dim = sentences.dim;
    const vectors = new Float32Array(distinct.size * dim);
    let r = 0;
    for (const { row } of distinct.values()) vectors.set(sentences.vectors.subarray(row * dim, (row + 1) * dim), r++ * dim);
    const index = buildHnsw(vectors, dim, 0, distinct.size, content.hnsw);
    const file = join(tmp, TEXTS_FILE);
    writing(file);
    index.writeIndexSync(file);
    const bytes = await readFile(file);
    if (!hnswFileComplete(bytes))
      throw new IndexBuildError(`cannot write ${file}: the file is incomplete (is the disk full?); the bundle in ${out} is unchanged`);
    hashes[TEXTS_FILE] = sha256(bytes);
    const hubs = textHubness(vectors, dim, distinct.size, imageIndexes);
    await put(
      TEXTS_META,
      jsonl(
        [...distinct].map(([text, { labels }], n) => {
          const modifiers = extractModifiers(text);
          // a text that states no modifier stores none (`texts.modifiers` in the manifest says they were extracted)
          return {
            id: `t${n}`,
            text,
            labels,
            ...(hubs ? { hub: hubs[n] } : {}),
            ...(hasModifiers(modifiers) ? { modifiers } : {}),
          } satisfies TextMeta;
        }),
      ),
    );
    const { M, efConstruction, efSearch } = content.hnsw;
    texts = {
      file: TEXTS_FILE,
      meta: TEXTS_META,
      count: distinct.size,
      dim,
      M,
      efConstruction,
      efSearch,
      hubs: hubs !== undefined,
      modifiers: true,
    };
    await put(LEXICAL_FILE, LexicalIndex.build(distinct.keys()).serialize());
  }
  const manifest: IndexManifest = {
    format: INDEX_FORMAT,
    version: content.version,
    createdAt: new Date().toISOString(),
    model: content.model,
    collections,
    ...(content.reports ? { reports: 'reports.jsonl' } : {}),
    errors: 'errors.jsonl',
    labeler: { version: LABELER_VERSION },
    prompts: { version: PROMPTS_VERSION },
    ...(texts ? { texts, lexical: { file: LEXICAL_FILE, version: LEXICAL_VERSION } } : {}),
    ...(content.dicomweb ? { dicomweb: content.dicomweb } : {}),
    pairs: ((content.collections.images?.items ?? []) as ImageMeta[]).filter((m) => !m.deleted && m.reportId).length,
    sha256: hashes,
  };
  if (content.thumbsDir) {
    writing(join(tmp, 'thumbs'));
    if (content.thumbIds) {
      await mkdir(join(tmp, 'thumbs'));
      for (const id of content.thumbIds) {
        const from = join(content.thumbsDir, thumbnailName(id));
        if (existsSync(from)) await copyFile(from, join(tmp, 'thumbs', thumbnailName(id)));
      }
    } else await cp(content.thumbsDir, join(tmp, 'thumbs'), { recursive: true });
    manifest.thumbnails = 'thumbs';
  }
  writing(join(tmp, 'manifest.json'));
  await writeFile(join(tmp, 'manifest.json'), JSON.stringify(manifest, null, 2) + '\n');
  // every file was hashed from the bytes written: the first load need not hash them again
  await vouchFor(tmp, Object.keys(hashes));
  return manifest;
}
