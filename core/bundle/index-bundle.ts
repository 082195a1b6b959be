/**
 * Index bundles (`indexes/NAME/`, DESIGN.md): per collection (images, report sentences) one or more HNSW
 * shards with a metadata line per vector, plus the reports themselves. Loading verifies the format, the
 * model the vectors came from, every file's sha256 and each HNSW file's dimension (hnswlib does not check
 * it on load); search merges the shards' top-k and applies metadata filters computed up front, so the
 * callback handed to the native code can never throw.
 *
 *   const index = await IndexBundle.load('indexes/sample', { model });
 *   index.search('images', queryVector, { k: 10, filter: { must: ['Pneumonia'], view: ['PA'] } });
 */
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { closeSync, openSync, readFileSync, readSync, statSync } from 'node:fs';
import { join, resolve, sep } from 'node:path';
import hnswlib, { type HierarchicalNSW } from './hnswlib.ts';
import { OBSERVATIONS, isObservation, type Observation } from '../labeler/labels.ts';
import { FileHashError, hashFiles } from '../util/file-hash.ts';
import { thumbnailName } from '../image/thumbnail.ts';
import { VersionedDirError, currentVersion } from './versioned-dir.ts';
import { boundedCache, stringBytes } from '../util/cache.ts';
import { ANCHOR_DEPTH, AnchorLists, ANCHORS_PER_QUERY, GROUP_ANCHORS_PER_QUERY, groupKey } from './anchors.ts';
import type { DicomUids } from '../dicom/header.ts';
import { MedclipError, type ErrorKind } from '../errors.ts';
import { LEXICAL_VERSION, LexicalIndex } from './lexical.ts';
import { FilterBitsets } from './filter-bitsets.ts';
import { MAX_HITS } from '../util/limits.ts';

/**
 * v2 stores each sentence's text at build time and records the labeler and prompt versions, so serving never
 * re-splits a report (a changed labeler would have highlighted the wrong sentence in every older bundle).
 * A v1 bundle is refused, with how to upgrade it (`medclip index --upgrade --out DIR`).
 */
export const INDEX_FORMAT = 'medclip-index/2';
export const INDEX_FORMAT_V1 = 'medclip-index/1';
export const COLLECTIONS = ['images', 'reports'] as const;
export type CollectionName = (typeof COLLECTIONS)[number];

/** A bundle that cannot be used (data), or a search asked wrongly (input). */
export class IndexError extends MedclipError {
  constructor(message: string, kind: ErrorKind = 'data') {
    super(message, kind);
  }
}

export interface ShardManifest {
  /** HNSW file and its metadata file (one JSON line per vector, label = line number). */
  file: string;
  meta: string;
  count: number;
  /** Filter bitsets (core/bundle/filter-bitsets.ts); absent in bundles written before them (filters then read the metadata). */
  filters?: string;
  /** Text anchors with their exact image lists (core/bundle/anchors.ts), for text queries; image shards written since. */
  anchors?: string;
}

export interface CollectionManifest {
  count: number;
  deleted: number;
  dim: number;
  space: 'ip';
  M: number;
  efConstruction: number;
  efSearch: number;
  shards: ShardManifest[];
}

/** Where a PACS-built bundle came from and how far it got (no credentials). */
export interface DicomwebCursor {
  url: string;
  /** The latest StudyDate indexed (YYYYMMDD): the next `--append` run asks for studies from this date on. */
  studyDate?: string;
  allModalities: boolean;
  updatedAt: string;
}

export interface IndexManifest {
  format: string;
  version: number;
  createdAt: string;
  model: { name: string; sha256: string; embedDim: number };
  collections: Partial<Record<CollectionName, CollectionManifest>>;
  /** Reports, one JSON line each: { id, text: { findings, impression, ... }, labels }. */
  reports?: string;
  /** Items that could not be indexed: { collection, id, reason }. */
  errors?: string;
  /** Folder of image thumbnails (`thumbnailName(id)`), when the builder made them. */
  thumbnails?: string;
  /** Versions of what labelled and split the sentences, and of the built-in prompts (format v2). */
  labeler?: { version: string };
  prompts?: { version: string };
  /**
   * One vector per distinct live sentence text (HNSW + metadata lines), so report search ranks wordings and
   * collapses identical sentences without fetching thousands of copies; absent in older bundles (`--upgrade`).
   */
  texts?: {
    file: string;
    meta: string;
    count: number;
    dim: number;
    M: number;
    efConstruction: number;
    efSearch: number;
    /** Whether each text carries its hubness against this bundle's images (`TextMeta.hub`). */
    hubs?: boolean;
  };
  /** BM25 over the distinct sentence texts (core/bundle/lexical.ts), read on the first text query; absent in older bundles. */
  lexical?: { file: string; version: number };
  /** A bundle built from a DICOMweb server: where from, and the cursor an `--append` run continues from. */
  dicomweb?: DicomwebCursor;
  sha256: Record<string, string>;
}

/** Labels as stored in metadata: observation -> 1 | 0 | -1 (unmentioned observations omitted). */
export type StoredLabels = Partial<Record<Observation, 1 | 0 | -1>>;

export interface ImageMeta {
  id: string;
  /** Where the image was read from (as given to the builder). */
  path: string;
  labels: StoredLabels;
  view?: string;
  source?: string;
  meta?: Record<string, string>;
  /** The DICOM UIDs of an image read from DICOM (a PACS or DICOM files): links back to the archive. */
  dicom?: DicomUids;
  deleted?: boolean;
}

export interface SentenceMeta {
  id: string;
  reportId: string;
  /** Sentence number within the report (the labeler's split). */
  index: number;
  /** The sentence as split at build time (format v2). */
  text?: string;
  labels: StoredLabels;
  deleted?: boolean;
}

export interface StoredReport {
  id: string;
  text: Record<string, string>;
  labels: StoredLabels;
  /** The UIDs of the structured report it was read from (its study links it to that study's images). */
  dicom?: DicomUids;
  deleted?: boolean;
}

/** A distinct sentence text of the reports (the `texts` index: one vector per wording, for collapsed search). */
export interface TextMeta {
  id: string;
  text: string;
  /** The labeler's labels of the sentence (a function of its text). */
  labels: StoredLabels;
  /** Mean cosine to its 10 nearest images of the bundle (hubness; image -> reports subtracts it), when it has images. */
  hub?: number;
  deleted?: boolean;
}

export type ItemMeta = ImageMeta | SentenceMeta | TextMeta;

/** What an image collection holds, for building filters: values seen with their counts, most frequent first. */
export interface ImageFacets {
  images: number;
  views: { value: string; count: number }[];
  sources: { value: string; count: number }[];
  /** Every observation with the number of images positive (1) for it (0 included), most frequent first. */
  findings: { name: string; count: number }[];
}

/** Facets of a set of image metadata (deleted items skipped). */
export function imageFacets(items: Iterable<ImageMeta>): ImageFacets {
  const views = new Map<string, number>();
  const sources = new Map<string, number>();
  const findings = new Map<string, number>();
  let images = 0;
  for (const m of items) {
    if (m.deleted) continue;
    images++;
    if (m.view) views.set(m.view, (views.get(m.view) ?? 0) + 1);
    if (m.source) sources.set(m.source, (sources.get(m.source) ?? 0) + 1);
    for (const [name, v] of Object.entries(m.labels)) if (v === 1) findings.set(name, (findings.get(name) ?? 0) + 1);
  }
  const sorted = (m: Map<string, number>) =>
    [...m].map(([value, count]) => ({ value, count })).sort((a, b) => b.count - a.count || a.value.localeCompare(b.value));
  for (const name of OBSERVATIONS) if (!findings.has(name)) findings.set(name, 0);
  return {
    images,
    views: sorted(views),
    sources: sorted(sources),
    findings: sorted(findings).map(({ value, count }) => ({ name: value, count })),
  };
}

/** Facets from several shards' facets (counts added). */
export function mergeFacets(parts: ImageFacets[]): ImageFacets {
  const flat = (pick: (f: ImageFacets) => { value: string; count: number }[]) => {
    const m = new Map<string, number>();
    for (const p of parts) for (const { value, count } of pick(p)) m.set(value, (m.get(value) ?? 0) + count);
    return [...m].map(([value, count]) => ({ value, count })).sort((a, b) => b.count - a.count || a.value.localeCompare(b.value));
  };
  return {
    images: parts.reduce((s, p) => s + p.images, 0),
    views: flat((f) => f.views),
    sources: flat((f) => f.sources),
    findings: flat((f) => f.findings.map((x) => ({ value: x.name, count: x.count }))).map(({ value, count }) => ({ name: value, count })),
  };
}

export interface SearchFilter {
  /** Findings that must be positive (1). */
  must?: string[];
  /** Findings that must not be positive. */
  mustNot?: string[];
  /** Allowed views / sources (case-insensitive); images only. */
  view?: string[];
  source?: string[];
}

export interface SearchOptions {
  k: number;
  efSearch?: number;
  filter?: SearchFilter;
  /** How a filtered search runs: by selectivity (default), or forced (benchmarks and tests compare the two). */
  plan?: 'auto' | 'exact' | 'hnsw';
  /** A text query over images: candidates from the shard's text anchors too (or a wider beam without them). */
  crossModal?: boolean;
}

/**
 * Without text anchors (shards written before them), a text query over images widens the HNSW beam 3x: recall@10
 * 0.38 -> 0.71 at 100k (docs/performance.md); with them it is exact on the measured sets.
 */
export const TEXT_QUERY_EF_SCALE = 3;

export interface Hit<M extends ItemMeta = ItemMeta> {
  /** Inner product of unit vectors (cosine similarity). */
  score: number;
  meta: M;
}

/** Read the dimension and element count from an hnswlib index file's header. */
export function hnswHeader(bytes: Uint8Array): { dim: number; count: number; maxElements: number } {
  if (bytes.length < 96) throw new IndexError('HNSW file is too short to hold a header');
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const u64 = (o: number) => Number(view.getBigUint64(o, true));
  const maxElements = u64(8);
  const count = u64(16);
  const labelOffset = u64(32);
  const offsetData = u64(40);
  const dim = (labelOffset - offsetData) / 4;
  if (!Number.isInteger(dim) || dim <= 0 || count > maxElements) throw new IndexError('HNSW file header is not valid');
  return { dim, count, maxElements };
}

/**
 * Whether an hnswlib index file is whole: the 96-byte header, `count` fixed-size level-0 records, then per element
 * a 4-byte length and that many bytes of upper-level links, ending exactly at the end of the file. hnswlib writes
 * through a C++ stream that never reports a failed write (a full disk leaves a short file).
 */
export function hnswFileComplete(bytes: Uint8Array): boolean {
  if (bytes.length < 96) return false;
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const count = Number(view.getBigUint64(16, true));
  const perElement = Number(view.getBigUint64(24, true));
  let pos = 96 + count * perElement;
  for (let i = 0; i < count; i++) {
    if (pos + 4 > bytes.length) return false;
    pos += 4 + view.getUint32(pos, true);
  }
  return pos === bytes.length;
}

/** Bundles at least this large are hashed on a worker thread while the rest loads. */
const HASH_IN_WORKER_BYTES = 32 << 20;

export interface ModelIdentity {
  name: string;
  manifestSha256: string;
  embedDim: number;
}

export interface IndexLoadOptions {
  /** The model that made the vectors (or a promise of it, loading meanwhile); omitted = not checked. */
  model?: ModelIdentity | Promise<ModelIdentity>;
  /** Check every file against the manifest's sha256 (default true). */
  verify?: boolean;
  /** Hash on a worker thread (default: when the bundle's files total 32 MB or more). */
  hashInWorker?: boolean;
  /** Load a format-1 bundle (only `medclip index --upgrade` does, to rewrite it). */
  allowV1?: boolean;
}

function readHead(path: string, bytes: number): Uint8Array {
  const fd = openSync(path, 'r');
  try {
    const buf = Buffer.alloc(bytes);
    return buf.subarray(0, readSync(fd, buf, 0, bytes, 0));
  } finally {
    closeSync(fd);
  }
}

function bundleFile(dir: string, name: string): string {
  const abs = resolve(dir, name);
  if (!abs.startsWith(resolve(dir) + sep)) throw new IndexError(`${dir}: manifest names a file outside the bundle (${name})`);
  return abs;
}

function parseJsonl<T>(text: string, file: string): T[] {
  const out: T[] = [];
  let line = 0;
  for (const raw of text.split('\n')) {
    line++;
    if (!raw.trim()) continue;
    try {
      out.push(JSON.parse(raw) as T);
    } catch {
      throw new IndexError(`${file}: line ${line} is not valid JSON`);
    }
  }
  return out;
}

export function checkFilter(filter: SearchFilter | undefined): void {
  for (const name of [...(filter?.must ?? []), ...(filter?.mustNot ?? [])])
    if (!isObservation(name)) throw new IndexError(`unknown finding "${name}" in filter (choose from ${OBSERVATIONS.join(', ')})`, 'input');
}

/**
 * JSON lines parsed on demand: at 100k items, parsing every metadata line up front was half of a cold start, while
 * an unfiltered query needs only its k hits. The bytes stay a Buffer (no 40 MB UTF-8 decode up front); a line is
 * decoded when first read. Content was verified by sha256 at load.
 */
export class LazyLines<T> {
  private readonly starts: number[] = [];
  private readonly cache: (T | undefined)[];

  constructor(
    private readonly bytes: Buffer,
    private readonly file: string,
  ) {
    let pos = 0;
    while (pos < bytes.length) {
      const end = bytes.indexOf(0x0a, pos);
      const stop = end < 0 ? bytes.length : end;
      if (stop > pos) this.starts.push(pos);
      pos = stop + 1;
    }
    this.cache = new Array<T | undefined>(this.starts.length);
  }

  get length(): number {
    return this.starts.length;
  }

  get(i: number): T | undefined {
    if (i < 0 || i >= this.starts.length) return undefined;
    let v = this.cache[i];
    if (v === undefined) {
      const start = this.starts[i]!;
      const end = this.bytes.indexOf(0x0a, start);
      try {
        v = JSON.parse(this.bytes.toString('utf8', start, end < 0 ? this.bytes.length : end)) as T;
      } catch {
        throw new IndexError(`${this.file}: line ${i + 1} is not valid JSON`);
      }
      this.cache[i] = v;
    }
    return v;
  }

  *[Symbol.iterator](): IterableIterator<T> {
    for (let i = 0; i < this.starts.length; i++) yield this.get(i)!;
  }
}

/**
 * Filters planned by selectivity: a filter that allows at most this many of a shard's items is answered by an exact
 * scan of just those vectors (recall 1.0, and faster than HNSW calling the JS filter across the native boundary for
 * thousands of rejected nodes); a broader one by HNSW with the filter and an ef raised as the allowed share falls.
 * Measured with `npm run bench:filters` on this 2-core machine (see README).
 */
export const EXACT_SCAN_MAX_ALLOWED = 20_000;

/** An HNSW file's vectors read straight from its level-0 records (the file was verified at load). */
class StoredVectors {
  private constructor(
    private readonly f32: Float32Array,
    /** Floats from one record to the next, and from a record's start to its vector. */
    private readonly stride: number,
    private readonly offset: number,
    readonly dim: number,
    /** Internal id -> label (our builder inserts label i as internal id i; any other order is read from the file). */
    private readonly labels: Uint32Array,
  ) {}

  static read(file: string, dim: number): StoredVectors {
    const bytes = readFileSync(file);
    const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    const u64 = (o: number) => Number(view.getBigUint64(o, true));
    const count = u64(16);
    const perElement = u64(24);
    const labelOffset = u64(32);
    const offsetData = u64(40);
    // an aligned copy of the level-0 block (records are multiples of 4 bytes)
    const level0 = new Float32Array(bytes.buffer.slice(bytes.byteOffset + 96, bytes.byteOffset + 96 + count * perElement));
    const labels = new Uint32Array(count);
    for (let i = 0; i < count; i++) labels[i] = u64(96 + i * perElement + labelOffset);
    return new StoredVectors(level0, perElement / 4, offsetData / 4, dim, labels);
  }

  /** Positions of the given labels (our builder writes label i as record i; other files are mapped once). */
  positionsOfLabels(labels: number[]): Int32Array {
    if (!this.byLabel) {
      this.identity = this.labels.every((l, i) => l === i);
      if (!this.identity) {
        this.byLabel = new Map();
        this.labels.forEach((l, i) => this.byLabel!.set(l, i));
      } else this.byLabel = new Map();
    }
    return Int32Array.from(labels, (l) => (this.identity ? l : (this.byLabel!.get(l) ?? -1))).filter(
      (p) => p >= 0 && p < this.labels.length,
    );
  }

  private identity = false;
  private byLabel?: Map<number, number>;

  /** Positions (records in the file) of the allowed labels: an exact scan then touches only those. */
  positionsOf(allowed: Uint8Array, count: number): Int32Array {
    const out = new Int32Array(count);
    let j = 0;
    for (let i = 0; i < this.labels.length && j < count; i++) if (allowed[this.labels[i]!] === 1) out[j++] = i;
    return out.subarray(0, j);
  }

  /** The k best of the records at `positions` by inner product, exactly (a size-k min-heap, the worst at the root). */
  topK(query: Float32Array, k: number, positions: Int32Array): { labels: number[]; scores: number[] } {
    const heapScore = new Float64Array(k);
    const heapLabel = new Int32Array(k);
    let size = 0;
    const dim = this.dim;
    for (let j = 0; j < positions.length; j++) {
      const i = positions[j]!;
      const label = this.labels[i]!;
      const base = i * this.stride + this.offset;
      let s = 0;
      for (let d = 0; d < dim; d++) s += this.f32[base + d]! * query[d]!;
      // a total order: score, then the smaller label first (ties resolve the same whatever k is)
      if (size < k) {
        // sift up
        let c = size++;
        while (c > 0) {
          const p = (c - 1) >> 1;
          if (heapScore[p]! < s || (heapScore[p] === s && heapLabel[p]! > label)) break;
          heapScore[c] = heapScore[p]!;
          heapLabel[c] = heapLabel[p]!;
          c = p;
        }
        heapScore[c] = s;
        heapLabel[c] = label;
      } else if (s > heapScore[0]! || (s === heapScore[0] && label < heapLabel[0]!)) {
        // replace the root (the worst kept), sift down
        let c = 0;
        for (;;) {
          const l = 2 * c + 1;
          if (l >= size) break;
          const r = l + 1;
          const m = r < size && (heapScore[r]! < heapScore[l]! || (heapScore[r] === heapScore[l] && heapLabel[r]! > heapLabel[l]!)) ? r : l;
          if (heapScore[m]! > s || (heapScore[m] === s && heapLabel[m]! < label)) break;
          heapScore[c] = heapScore[m]!;
          heapLabel[c] = heapLabel[m]!;
          c = m;
        }
        heapScore[c] = s;
        heapLabel[c] = label;
      }
    }
    const order = Array.from({ length: size }, (_, i) => i).sort((a, b) => heapScore[b]! - heapScore[a]! || heapLabel[a]! - heapLabel[b]!);
    return { labels: order.map((i) => heapLabel[i]!), scores: order.map((i) => heapScore[i]!) };
  }
}

/** Whether an item passes a filter (labels, and view / source for images; case-insensitive). */
export function filterPredicate(filter: SearchFilter | undefined): (m: ItemMeta) => boolean {
  if (!filter) return () => true;
  const views = filter.view?.map((v) => v.toLowerCase());
  const sources = filter.source?.map((s) => s.toLowerCase());
  return (m) => {
    const labels = m.labels;
    if (filter.must?.some((f) => labels[f as Observation] !== 1)) return false;
    if (filter.mustNot?.some((f) => labels[f as Observation] === 1)) return false;
    if (views && !views.includes(((m as ImageMeta).view ?? '').toLowerCase())) return false;
    if (sources && !sources.includes(((m as ImageMeta).source ?? '').toLowerCase())) return false;
    return true;
  };
}

/** Ids of collapsed reports listed per hit (`reportsWithSentence` gives the full count). */
export const MAX_COLLAPSED_IDS = 20;

/** A report hit with its fused score, and the other reports whose best sentence was the same text (collapsed). */
export type ReportSentenceHit = Hit<SentenceMeta> & { fused: number; same: string[] };

class Shard<M extends ItemMeta> {
  constructor(
    readonly index: HierarchicalNSW,
    readonly meta: LazyLines<M>,
    /** Whether any item is marked deleted (from the manifest), so unfiltered searches need no allow-list. */
    private readonly hasDeleted: boolean,
    /** The verified HNSW file, read again only when a selective filter needs its vectors. */
    private readonly file: string,
    private readonly dim: number,
    /** The shard's verified filter bitsets, read on the first filtered query (none: filters read the metadata). */
    private readonly filtersFile?: string,
    /** The shard's verified text anchors, read on the first text query (none: a wider HNSW beam instead). */
    private readonly anchorsFile?: string,
  ) {}

  private stored?: StoredVectors;
  private bitsets?: FilterBitsets;
  private anchorLists?: AnchorLists;

  /** The shard's text anchors, read on first use; undefined for shards written without them. */
  anchors(): AnchorLists | undefined {
    if (this.anchorsFile && !this.anchorLists) {
      try {
        this.anchorLists = AnchorLists.parse(readFileSync(this.anchorsFile));
      } catch (err) {
        throw new IndexError(`${this.anchorsFile}: text anchors unreadable (${(err as Error).message})`);
      }
    }
    return this.anchorLists;
  }

  /** The shard's vectors for exact scans, read on first use. */
  vectors(): StoredVectors {
    this.stored ??= StoredVectors.read(this.file, this.dim);
    return this.stored;
  }

  /** How many items an allow-list lets through. */
  static countAllowed(list: Uint8Array): number {
    let n = 0;
    for (let i = 0; i < list.length; i++) n += list[i]!;
    return n;
  }

  /** Allow-lists of recent filters: a shard's metadata never changes once loaded, and at 100k items building one
   * took ~15 ms per request (a UI repeats the same few filters). Kept within the 'filter-allow-lists' budget. */
  private readonly allowCache = boundedCache<string, { list: Uint8Array; count: number; positions?: Int32Array }>(
    'filter-allow-lists',
    (v, k) => v.list.byteLength + (v.positions?.byteLength ?? 0) + stringBytes(k),
  );

  private static key(filter: SearchFilter | undefined): string {
    return JSON.stringify([filter?.must, filter?.mustNot, filter?.view, filter?.source]);
  }

  /** Which labels pass the filter (and how many), computed in JS before the native search. */
  allowed(filter: SearchFilter | undefined): { list: Uint8Array; count: number } | undefined {
    if (!filter && !this.hasDeleted) return undefined;
    const key = Shard.key(filter);
    let entry = this.allowCache.get(key);
    if (!entry) {
      const list = this.computeAllowed(filter);
      entry = { list, count: Shard.countAllowed(list) };
      this.allowCache.set(key, entry);
    }
    return entry;
  }

  /** Where the allowed vectors sit in the stored file (for an exact scan that reads only them), kept with the list. */
  allowedPositions(filter: SearchFilter | undefined, entry: { list: Uint8Array; count: number; positions?: Int32Array }): Int32Array {
    if (!entry.positions) {
      entry.positions = this.vectors().positionsOf(entry.list, entry.count);
      this.allowCache.set(Shard.key(filter), entry); // again, so the budget counts the positions too
    }
    return entry.positions;
  }

  private computeAllowed(filter: SearchFilter | undefined): Uint8Array {
    if (this.filtersFile) {
      this.bitsets ??= FilterBitsets.parse(readFileSync(this.filtersFile, 'utf8'));
      return this.bitsets.allowed(filter);
    }
    const pass = filterPredicate(filter);
    const out = new Uint8Array(this.meta.length);
    let i = -1;
    for (const m of this.meta) {
      i++;
      if (!m.deleted && pass(m)) out[i] = 1;
    }
    return out;
  }
}

/** The live version's manifest of a bundle location, unverified and unloaded (for writers deciding what to do and
 * tools that only report it); undefined where there is no bundle. */
export async function readLiveManifest(location: string): Promise<IndexManifest | undefined> {
  const dir = await currentVersion(location, 'manifest.json').catch(() => undefined);
  if (!dir) return undefined;
  try {
    return JSON.parse(await readFile(join(dir, 'manifest.json'), 'utf8')) as IndexManifest;
  } catch {
    throw new IndexError(`${dir}: manifest.json is not valid JSON`, 'data');
  }
}

export class IndexBundle {
  private readonly shards: { images: Shard<ImageMeta>[]; reports: Shard<SentenceMeta>[] } = { images: [], reports: [] };
  readonly reports = new Map<string, StoredReport>();
  private imageIds?: Map<string, ImageMeta>;

  /** id -> image metadata, built on first use (after the first answer, not during the cold start). */
  private get imageById(): Map<string, ImageMeta> {
    if (!this.imageIds) {
      this.imageIds = new Map();
      for (const s of this.shards.images) for (const im of s.meta) if (!im.deleted) this.imageIds.set(im.id, im);
    }
    return this.imageIds;
  }

  private constructor(
    /** The version folder this bundle was loaded from (inside the bundle location). */
    readonly dir: string,
    readonly manifest: IndexManifest,
  ) {}

  /**
   * Load and verify a bundle. `model` (name, manifest sha256, embedDim) must be the model that made the
   * vectors: a bundle built with another model is refused, since its vectors live in another space. It may be a
   * promise, so that a caller loads the model and the index at once:
   *
   *   const model = MedClipModel.load(modelDir);
   *   const [m, index] = await Promise.all([model, IndexBundle.load(indexDir, { model })]);
   *
   * Every file is checked against the manifest's sha256 before its content is used; an HNSW file before hnswlib
   * reads it (native code must never see a corrupted file). A large bundle is hashed on a worker thread while the
   * model and the metadata load.
   */
  static async load(location: string, options: IndexLoadOptions = {}): Promise<IndexBundle> {
    const live = async () => {
      try {
        const dir = await currentVersion(location, 'manifest.json');
        if (!dir) throw new IndexError(`${location}: no manifest.json (not an index bundle)`);
        return dir;
      } catch (err) {
        if (err instanceof VersionedDirError) throw new IndexError(err.message);
        throw err;
      }
    };
    const dir = await live();
    try {
      return await IndexBundle.loadVersion(dir, options);
    } catch (err) {
      // A writer published twice while this load ran and pruned the version it was reading: load the new one.
      const now = await live().catch(() => dir);
      if (now === dir) throw err;
      return IndexBundle.loadVersion(now, options);
    }
  }

  /** Load one version folder (its files directly inside). */
  private static async loadVersion(dir: string, options: IndexLoadOptions): Promise<IndexBundle> {
    let manifest: IndexManifest;
    try {
      manifest = JSON.parse(await readFile(join(dir, 'manifest.json'), 'utf8')) as IndexManifest;
    } catch (err) {
      throw new IndexError(
        `${dir}: ${(err as NodeJS.ErrnoException).code === 'ENOENT' ? 'no manifest.json (not an index bundle)' : 'manifest.json is not valid JSON'}`,
      );
    }
    if (manifest?.format === INDEX_FORMAT_V1 && !options.allowV1)
      throw new IndexError(
        `${dir}: index format ${INDEX_FORMAT_V1} stores no sentence text; upgrade it in place with \`medclip index --upgrade --model MODEL --out ${dir}\`, or rebuild it`,
      );
    if (manifest?.format !== INDEX_FORMAT && manifest?.format !== INDEX_FORMAT_V1)
      throw new IndexError(`${dir}: unsupported index format "${String(manifest?.format)}" (expected ${INDEX_FORMAT})`);
    if (!manifest.model || typeof manifest.model.sha256 !== 'string') throw new IndexError(`${dir}: manifest does not name its model`);
    const verify = options.verify !== false;
    const collections = COLLECTIONS.flatMap((name) => (manifest.collections?.[name] ? [[name, manifest.collections[name]] as const] : []));
    // Every file the load reads, in the order it needs them.
    const names = [
      ...collections.flatMap(([, c]) =>
        c.shards.flatMap((s) => [s.file, s.meta, ...(s.filters ? [s.filters] : []), ...(s.anchors ? [s.anchors] : [])]),
      ),
      ...(manifest.reports ? [manifest.reports] : []),
      ...(manifest.texts ? [manifest.texts.file, manifest.texts.meta] : []),
    ];
    let totalBytes = 0;
    for (const name of names) {
      if (verify && !manifest.sha256?.[name]) throw new IndexError(`${dir}: manifest has no sha256 for ${name}`);
      try {
        totalBytes += statSync(bundleFile(dir, name)).size;
      } catch (err) {
        if (err instanceof IndexError) throw err;
        throw new IndexError(`${dir}: missing ${name}`);
      }
    }
    const digests = verify
      ? hashFiles(
          names.map((n) => bundleFile(dir, n)),
          { worker: options.hashInWorker ?? totalBytes >= HASH_IN_WORKER_BYTES },
        )
      : undefined;
    const verified = async (name: string): Promise<void> => {
      if (!digests) return;
      let actual: string;
      try {
        actual = await digests.get(bundleFile(dir, name))!;
      } catch (err) {
        throw new IndexError(`${dir}: ${err instanceof FileHashError && err.code === 'ENOENT' ? 'missing' : 'cannot read'} ${name}`);
      }
      if (actual !== manifest.sha256[name]) throw new IndexError(`${dir}: ${name} does not match its sha256 (corrupted or modified)`);
    };

    // Metadata files are read on the thread pool meanwhile (the model may be loading on this thread).
    const readMeta = (name: string) =>
      readFile(bundleFile(dir, name)).catch((err: NodeJS.ErrnoException) => {
        throw new IndexError(`${dir}: ${err.code === 'ENOENT' ? 'missing' : 'cannot read'} ${name}`);
      });
    const metaBytes = new Map([
      ...collections.flatMap(([, c]) => c.shards.map((sh) => [sh.meta, readMeta(sh.meta)] as const)),
      ...(manifest.texts ? [[manifest.texts.meta, readMeta(manifest.texts.meta)] as const] : []),
    ]);
    for (const p of metaBytes.values()) p.catch(() => {}); // awaited below, unless an earlier check throws
    const m = await options.model;
    if (m && manifest.model.sha256 !== m.manifestSha256)
      throw new IndexError(
        `${dir}: built with model "${manifest.model.name}" (${manifest.model.sha256.slice(0, 12)}), not the loaded model "${m.name}" (${m.manifestSha256.slice(0, 12)}); rebuild the index with this model`,
      );
    const bundle = new IndexBundle(dir, manifest);
    for (const [name, c] of collections) {
      if (m && c.dim !== m.embedDim)
        throw new IndexError(`${dir}: ${name} vectors have dimension ${c.dim}, the model embeds to ${m.embedDim}`);
      for (const shard of c.shards) {
        // Metadata lines are only located here (parsed on demand, after verification completes below).
        const meta = new LazyLines<ItemMeta>(await metaBytes.get(shard.meta)!, shard.meta);
        await verified(shard.file);
        const header = hnswHeader(readHead(bundleFile(dir, shard.file), 96));
        if (header.dim !== c.dim)
          throw new IndexError(`${dir}: ${shard.file} holds ${header.dim}-dimensional vectors, the manifest says ${c.dim}`);
        if (meta.length !== header.count || header.count !== shard.count)
          throw new IndexError(
            `${dir}: ${shard.file} holds ${header.count} vectors but ${shard.meta} has ${meta.length} lines (manifest: ${shard.count})`,
          );
        const index = new hnswlib.HierarchicalNSW('ip', c.dim);
        index.readIndexSync(bundleFile(dir, shard.file));
        index.setEf(c.efSearch);
        await verified(shard.meta);
        if (shard.filters) await verified(shard.filters);
        if (shard.anchors) await verified(shard.anchors);
        const file = bundleFile(dir, shard.file);
        const filters = shard.filters ? bundleFile(dir, shard.filters) : undefined;
        const deleted = (c.deleted ?? 0) > 0;
        if (name === 'images')
          bundle.shards.images.push(
            new Shard(
              index,
              meta as LazyLines<ImageMeta>,
              deleted,
              file,
              c.dim,
              filters,
              shard.anchors ? bundleFile(dir, shard.anchors) : undefined,
            ),
          );
        else bundle.shards.reports.push(new Shard(index, meta as LazyLines<SentenceMeta>, deleted, file, c.dim, filters));
      }
    }
    const t = manifest.texts;
    if (t) {
      const meta = new LazyLines<TextMeta>(await metaBytes.get(t.meta)!, t.meta);
      await verified(t.file);
      const header = hnswHeader(readHead(bundleFile(dir, t.file), 96));
      if (header.dim !== t.dim || header.count !== t.count || meta.length !== t.count)
        throw new IndexError(
          `${dir}: ${t.file} holds ${header.count} ${header.dim}-d vectors, ${t.meta} ${meta.length} lines, the manifest ${t.count}`,
        );
      const index = new hnswlib.HierarchicalNSW('ip', t.dim);
      index.readIndexSync(bundleFile(dir, t.file));
      index.setEf(t.efSearch);
      await verified(t.meta);
      bundle.textShard = new Shard(index, meta, false, bundleFile(dir, t.file), t.dim);
    }
    if (manifest.reports) {
      await verified(manifest.reports);
      for (const r of parseJsonl<StoredReport>(readFileSync(bundleFile(dir, manifest.reports), 'utf8'), manifest.reports))
        if (!r.deleted) bundle.reports.set(r.id, r);
    }
    return bundle;
  }

  /**
   * Every live item of a collection with its vector, in order (hnswlib keeps the raw vectors of an inner-product
   * index). Append and delete rebuild a new version from these, so only this module reads bundle files.
   */
  *entries(collection: CollectionName): Generator<{ meta: ItemMeta; vector: Float32Array }> {
    for (const shard of this.shards[collection] as Shard<ItemMeta>[])
      for (let label = 0; label < shard.meta.length; label++) {
        const meta = shard.meta.get(label)!;
        if (!meta.deleted) yield { meta, vector: Float32Array.from(shard.index.getPoint(label)) };
      }
  }

  /** The build's list of skipped items (`errors.jsonl`), checked against its sha256. */
  async buildErrors<E = { collection: CollectionName; id: string; reason: string }>(): Promise<E[]> {
    const name = this.manifest.errors;
    if (!name) return [];
    const bytes = await readFile(bundleFile(this.dir, name)).catch(() => {
      throw new IndexError(`${this.dir}: missing ${name}`);
    });
    const want = this.manifest.sha256?.[name];
    if (want && createHash('sha256').update(bytes).digest('hex') !== want)
      throw new IndexError(`${this.dir}: ${name} does not match its sha256 (corrupted or modified)`);
    return parseJsonl<E>(bytes.toString('utf8'), name);
  }

  /** Whether every image shard has text anchors with per-group lists (anchors format 2; `--upgrade` adds them). */
  textAnchorsCurrent(): boolean {
    return this.shards.images.every((shard) => shard.anchors()?.grouped ?? false);
  }

  count(collection: CollectionName): number {
    const c = this.manifest.collections[collection];
    return c ? c.count - (c.deleted ?? 0) : 0;
  }

  image(id: string): ImageMeta | undefined {
    return this.imageById.get(id);
  }

  private facetsOfImages?: ImageFacets;

  /** Views, sources and positive findings of the live images with counts (computed once; a bundle never changes). */
  facets(): ImageFacets {
    this.facetsOfImages ??= imageFacets(this.imageById.values());
    return this.facetsOfImages;
  }

  /** Path of an image's stored thumbnail, if the bundle has thumbnails and the image exists. */
  thumbnailFile(id: string): string | undefined {
    if (!this.manifest.thumbnails || !this.imageById.has(id)) return undefined;
    return join(this.dir, this.manifest.thumbnails, thumbnailName(id));
  }

  report(id: string): StoredReport | undefined {
    return this.reports.get(id);
  }

  private lexicalIndex?: LexicalIndex;

  /**
   * BM25 over the distinct sentence texts: the bundle's stored index (verified against its sha256), or, for a
   * bundle written before it existed, one built from the stored sentences now (`medclip index --upgrade` stores it).
   */
  lexical(): LexicalIndex {
    if (!this.lexicalIndex) {
      const stored = this.manifest.lexical;
      let parsed: LexicalIndex | undefined;
      if (stored && stored.version === LEXICAL_VERSION) {
        let bytes: Buffer;
        try {
          bytes = readFileSync(bundleFile(this.dir, stored.file));
        } catch {
          throw new IndexError(`${this.dir}: missing ${stored.file}`, 'data');
        }
        if (createHash('sha256').update(bytes).digest('hex') !== this.manifest.sha256[stored.file])
          throw new IndexError(`${this.dir}: ${stored.file} does not match its sha256 (corrupted or modified)`, 'data');
        parsed = LexicalIndex.parse(bytes.toString('utf8'));
      }
      this.lexicalIndex = parsed ?? LexicalIndex.build(this.sentenceGroups().keys());
    }
    return this.lexicalIndex;
  }

  private groups?: Map<string, { members: { shard: number; label: number }[]; reports: number }>;

  /** Live sentences (of live reports) by their exact text, with how many reports hold each; built on first use. */
  private sentenceGroups(): Map<string, { members: { shard: number; label: number }[]; reports: number }> {
    if (!this.groups) {
      const groups = new Map<string, { members: { shard: number; label: number }[]; reports: number; last: string }>();
      const byReport = new Map<string, { shard: number; label: number }[]>();
      this.shards.reports.forEach((shard, s) => {
        let label = -1;
        for (const m of shard.meta) {
          label++;
          if (m.deleted || !this.reports.has(m.reportId)) continue;
          const mine = byReport.get(m.reportId);
          if (mine) mine.push({ shard: s, label });
          else byReport.set(m.reportId, [{ shard: s, label }]);
          if (m.text === undefined) continue;
          const g = groups.get(m.text);
          if (!g) groups.set(m.text, { members: [{ shard: s, label }], reports: 1, last: m.reportId });
          else {
            g.members.push({ shard: s, label });
            // a report's sentences are consecutive: a repeat inside one report is not another report
            if (g.last !== m.reportId) {
              g.reports++;
              g.last = m.reportId;
            }
          }
        }
      });
      this.groups = groups;
      this.sentencesOfReport = byReport;
    }
    return this.groups;
  }

  private sentencesOfReport?: Map<string, { shard: number; label: number }[]>;
  private readonly reportVectors = boundedCache<string, Float32Array>('report-vectors', (v, k) => v.byteLength + stringBytes(k));

  /** A report's own vector: the normalised mean of its live sentences' vectors (computed on first use, cached). */
  reportVector(reportId: string): Float32Array | undefined {
    let v = this.reportVectors.get(reportId);
    if (v) return v;
    this.sentenceGroups();
    const members = this.sentencesOfReport?.get(reportId);
    if (!members?.length) return undefined;
    const dim = this.manifest.collections.reports!.dim;
    v = new Float32Array(dim);
    for (const m of members) {
      const p = this.shards.reports[m.shard]!.index.getPoint(m.label);
      for (let d = 0; d < dim; d++) v[d]! += p[d]!;
    }
    let norm = 0;
    for (let d = 0; d < dim; d++) norm += v[d]! * v[d]!;
    norm = Math.sqrt(norm) || 1;
    for (let d = 0; d < dim; d++) v[d]! /= norm;
    this.reportVectors.set(reportId, v);
    return v;
  }

  /** How many live items of a collection pass a filter (the allow-lists are cached per filter). */
  countMatching(collection: CollectionName, filter: SearchFilter): number {
    checkFilter(filter);
    let n = 0;
    for (const shard of this.shards[collection] as Shard<ItemMeta>[]) n += shard.allowed(filter)?.count ?? shard.meta.length;
    return n;
  }

  /** A distinct sentence text's embedding, read from the HNSW index once (a native call per read otherwise). */
  private readonly textVectors = boundedCache<string, Float32Array>('sentence-vectors', (v, k) => v.byteLength + stringBytes(k));

  /** How many live reports hold a sentence with exactly this text. */
  reportsWithSentence(text: string): number {
    return this.sentenceGroups().get(text)?.reports ?? 0;
  }

  /**
   * Sentences with these exact texts (lexical candidates) scored against the query: one dot product per text (the
   * same text has the same embedding), at most `perText` sentences of each, those passing the filter.
   */
  sentencesWithTexts(texts: string[], query: Float32Array, filter?: SearchFilter, perText = 5): Hit<SentenceMeta>[] {
    const pass = filterPredicate(filter);
    const out: Hit<SentenceMeta>[] = [];
    for (const text of texts) {
      const members = this.sentenceGroups().get(text)?.members;
      if (!members?.length) continue;
      let vector = this.textVectors.get(text);
      if (!vector) {
        const first = members[0]!;
        vector = Float32Array.from(this.shards.reports[first.shard]!.index.getPoint(first.label));
        this.textVectors.set(text, vector);
      }
      let score = 0;
      for (let d = 0; d < query.length; d++) score += vector[d]! * query[d]!;
      let taken = 0;
      for (const m of members) {
        const meta = this.shards.reports[m.shard]!.meta.get(m.label)!;
        if (!pass(meta)) continue;
        out.push({ score, meta });
        if (++taken >= perText) break;
      }
    }
    return out;
  }

  /**
   * Report search: the best-matching sentence of each report, k distinct reports whenever the index holds k
   * (matching the filter). Sentences are fetched in widening rounds (k * 5, then 4x more) until k reports are found
   * or every sentence has been considered: a report with many similar sentences cannot crowd the others out.
   * `rerank` replaces a candidate's dense score for ordering (e.g. core/search-rank's negation-aware fusion).
   * `extra` candidates (lexical ones, affirming ones: core/search/report-search.ts) join the dense ones. With `collapse`, reports whose best sentence has the same text as a better-ranked one are folded
   * into it (`same`): k hits are then k distinct sentences, not a page of "Lungs are clear.".
   */
  searchReports(
    query: Float32Array,
    options: SearchOptions & { rerank?: (meta: SentenceMeta, dense: number) => number; extra?: Hit<SentenceMeta>[]; collapse?: boolean },
  ): ReportSentenceHit[] {
    const total = this.count('reports');
    // ranked to the deepest request's depth whatever k asks (the first k hits are those of any larger k)
    const depth = Math.max(options.k, MAX_HITS);
    let want = Math.min(total, depth * 5);
    const score = (h: Hit<SentenceMeta>) => ({
      ...h,
      fused: options.rerank ? options.rerank(h.meta, h.score) : h.score,
      same: [] as string[],
    });
    const extra = (options.extra ?? []).map(score);
    for (;;) {
      const candidates = this.search('reports', query, { ...options, k: want }).map(score);
      const seen = new Set(candidates.map((c) => c.meta.id));
      for (const e of extra) if (!seen.has(e.meta.id)) candidates.push({ ...e, same: [] });
      candidates.sort((a, b) => b.fused - a.fused);
      const best = new Map<string, ReportSentenceHit>();
      for (const h of candidates) if (!best.has(h.meta.reportId) && this.reports.has(h.meta.reportId)) best.set(h.meta.reportId, h);
      let hits = [...best.values()];
      if (options.collapse) {
        const byText = new Map<string, ReportSentenceHit>();
        for (const h of hits) {
          const key = h.meta.text ?? h.meta.id;
          const first = byText.get(key);
          if (first) {
            if (first.same.length < MAX_COLLAPSED_IDS) first.same.push(h.meta.reportId);
          } else byText.set(key, h);
        }
        hits = [...byText.values()];
      }
      if (hits.length >= depth || want >= total) return hits.slice(0, options.k);
      want = Math.min(total, want * 4);
    }
  }

  search(collection: 'images', query: Float32Array, options: SearchOptions): Hit<ImageMeta>[];
  search(collection: 'reports', query: Float32Array, options: SearchOptions): Hit<SentenceMeta>[];
  search(collection: CollectionName, query: Float32Array, options: SearchOptions): Hit[] {
    const c = this.manifest.collections[collection];
    if (!c) throw new IndexError(`this index has no ${collection} collection`, 'input');
    if (query.length !== c.dim) throw new IndexError(`query has dimension ${query.length}, the ${collection} collection ${c.dim}`, 'input');
    if (!Number.isInteger(options.k) || options.k < 1) throw new IndexError('k must be a positive integer', 'input');
    checkFilter(options.filter);
    return searchShards(this.shards[collection] as Shard<ItemMeta>[], c.efSearch, query, options);
  }

  private textShard?: Shard<TextMeta>;

  /** Whether this bundle has the distinct-text index (bundles written before it existed do not; `--upgrade`). */
  get hasTextIndex(): boolean {
    return this.textShard !== undefined;
  }

  /** Distinct sentence texts nearest the query (filter on their labels), from the `texts` index. */
  searchTexts(query: Float32Array, options: SearchOptions): Hit<TextMeta>[] {
    const t = this.manifest.texts;
    if (!this.textShard || !t) throw new IndexError(`${this.dir}: no distinct-text index; run \`medclip index --upgrade\``, 'input');
    if (query.length !== t.dim) throw new IndexError(`query has dimension ${query.length}, the texts index ${t.dim}`, 'input');
    checkFilter(options.filter);
    return searchShards([this.textShard], t.efSearch, query, options);
  }

  /** A distinct text's metadata and vector (from the texts index), for scoring a lexical candidate. */
  textEntry(text: string): { meta: TextMeta; vector: Float32Array } | undefined {
    const label = this.textLabels().get(text);
    if (label === undefined || !this.textShard) return undefined;
    let vector = this.textVectors.get(text);
    if (!vector) {
      vector = Float32Array.from(this.textShard.index.getPoint(label));
      this.textVectors.set(text, vector);
    }
    return { meta: this.textShard.meta.get(label)!, vector };
  }

  /** Distinct texts in the texts index. */
  textCount(): number {
    return this.textShard?.meta.length ?? 0;
  }

  /** How many distinct texts pass a filter (on their labels; allow-lists cached). */
  countMatchingTexts(filter: SearchFilter): number {
    checkFilter(filter);
    return this.textShard ? (this.textShard.allowed(filter)?.count ?? this.textShard.meta.length) : 0;
  }

  private textLabelMap?: Map<string, number>;
  private textLabels(): Map<string, number> {
    if (!this.textLabelMap) {
      this.textLabelMap = new Map();
      let label = 0;
      for (const m of this.textShard?.meta ?? []) this.textLabelMap.set(m.text, label++);
    }
    return this.textLabelMap;
  }

  /** Live sentences with exactly this text, in index order (at most `limit`). */
  sentencesWithText(text: string, limit = Number.POSITIVE_INFINITY): SentenceMeta[] {
    const members = this.sentenceGroups().get(text)?.members ?? [];
    return members.slice(0, limit).map((m) => this.shards.reports[m.shard]!.meta.get(m.label)!);
  }
}

/**
 * The filter clause that allows the fewest of a shard's items and that the anchors have group lists for: one `must`
 * finding, or the values of `source` or of `view` (any of them). Its groups' anchor lists then hold the query's best
 * allowed images even where the filter cuts against the query's sense. Undefined: no such clause.
 */
function selectiveClause<M extends ItemMeta>(shard: Shard<M>, filter: SearchFilter, anchors: AnchorLists): string[] | undefined {
  const clauses: { keys: string[]; filter: SearchFilter; values: SearchFilter[] }[] = (filter.must ?? []).map((f) => ({
    keys: [groupKey('finding', f)],
    filter: { must: [f] },
    values: [{ must: [f] }],
  }));
  for (const kind of ['source', 'view'] as const) {
    const values = filter[kind];
    if (values?.length)
      clauses.push({
        keys: values.map((v) => groupKey(kind, v)),
        filter: { [kind]: values },
        values: values.map((v) => ({ [kind]: [v] })),
      });
  }
  // usable: every value has lists, or (a value of an OR clause) no item of this shard has it
  const usable = clauses.filter((c) =>
    c.keys.every((key, i) => anchors.hasGroup(key) || (c.keys.length > 1 && shard.allowed(c.values[i])?.count === 0)),
  );
  if (usable.length <= 1) return usable[0]?.keys;
  let best: { keys: string[]; count: number } | undefined;
  for (const c of usable) {
    const count = shard.allowed(c.filter)?.count ?? Number.POSITIVE_INFINITY;
    if (!best || count < best.count) best = { keys: c.keys, count };
  }
  return best?.keys;
}

/** k nearest items over shards of one collection, each searched by the planner: an exact scan of the allowed
 * vectors for a selective filter, HNSW otherwise. */
function searchShards<M extends ItemMeta>(shards: Shard<M>[], efSearch: number, query: Float32Array, options: SearchOptions): Hit<M>[] {
  const q = Array.from(query);
  const hits: Hit<M>[] = [];
  for (const shard of shards) {
    const entry = shard.allowed(options.filter);
    const allowed = entry?.list;
    const k = Math.min(options.k, shard.meta.length);
    if (k === 0) continue;
    const ef = options.efSearch ?? efSearch;
    let result: { neighbors: number[]; distances: number[] };
    const allowedCount = entry ? entry.count : shard.meta.length;
    if (allowed && allowedCount === 0) continue;
    const exactScan = options.plan === 'exact' || (options.plan !== 'hnsw' && allowedCount <= EXACT_SCAN_MAX_ALLOWED);
    if (allowed && options.filter && exactScan) {
      // selective filter: exact scan of the allowed vectors
      const exact = shard.vectors().topK(query, k, shard.allowedPositions(options.filter, entry!));
      result = { neighbors: exact.labels, distances: exact.scores.map((s) => 1 - s) };
    } else {
      // broad filter (or only deletions): HNSW with the filter; a rarer match needs a wider beam to find k
      const share = allowedCount / Math.max(1, shard.meta.length);
      // a text query (the other modality): its anchors' exact lists join its HNSW hits, or else a wider beam
      const anchors = options.crossModal ? shard.anchors() : undefined;
      const widen = options.crossModal && !anchors ? TEXT_QUERY_EF_SCALE : 1;
      shard.index.setEf(Math.max(k, Math.min(4096, Math.ceil((ef * widen) / Math.max(share, 1 / 8)))));
      // The filter only reads a precomputed array: it cannot throw inside the native search.
      result = allowed ? shard.index.searchKnn(q, k, (label: number) => allowed[label] === 1) : shard.index.searchKnn(q, k);
      if (anchors) {
        const candidates = new Set(result.neighbors);
        // a filter leaves fewer of each list: whole lists, more anchors as the allowed share falls, and further ones
        // until enough allowed candidates are found
        const found = allowed
          ? anchors.candidates(query, {
              a: Math.min(4 * ANCHORS_PER_QUERY, Math.ceil((2 * ANCHORS_PER_QUERY) / Math.max(share, 1 / 4))),
              allow: (label) => allowed[label] === 1,
              enough: 8 * anchors.m,
              maxAnchors: 8 * ANCHORS_PER_QUERY,
            })
          : anchors.candidates(query, { depth: ANCHOR_DEPTH });
        for (const label of found) candidates.add(label);
        // a filter: the group lists (exact top images of each anchor among the group's items) of its most selective
        // clause, which a filter against the query's sense leaves whole
        const clause = allowed && options.filter ? selectiveClause(shard, options.filter, anchors) : undefined;
        if (clause)
          for (const label of anchors.groupCandidates(query, clause, GROUP_ANCHORS_PER_QUERY, (l) => allowed![l] === 1))
            candidates.add(label);
        const stored = shard.vectors();
        const exact = stored.topK(query, k, stored.positionsOfLabels([...candidates]));
        result = { neighbors: exact.labels, distances: exact.scores.map((s) => 1 - s) };
      }
    }
    result.neighbors.forEach((label, i) => {
      const meta = shard.meta.get(label);
      if (meta && !meta.deleted) hits.push({ score: 1 - result.distances[i]!, meta });
    });
  }
  hits.sort((a, b) => b.score - a.score);
  return hits.slice(0, options.k);
}
