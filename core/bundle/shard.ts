/**
 * One HNSW shard of a collection with its metadata, filter allow-lists, text anchors and stored vectors, and the
 * search over shards: filters planned by selectivity (exact scan or filtered HNSW), text queries through anchors.
 */
import { readFileSync } from 'node:fs';
import { boundedCache, simdDotsSupported, stringBytes } from '../util/index.ts';
import { ANCHOR_DEPTH, AnchorLists, ANCHORS_PER_QUERY, GROUP_ANCHORS_PER_QUERY, groupKey } from './anchors.ts';
import { FilterBitsets } from './filter-bitsets.ts';
import { type SearchFilter, filterPredicate } from './filters.ts';
import type { Hit, ItemMeta } from './items.ts';
import type { LazyLines } from './lazy-lines.ts';
import { IndexError } from './manifest.ts';
import { type HnswGraph, type KnnResult, MappedHnsw } from './mapped-hnsw.ts';
import { type PackedSubset, StoredVectors } from './stored-vectors.ts';

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

/**
 * Filters planned by selectivity: a filter that allows at most this many of a shard's items is answered by an exact
 * scan of just those vectors (recall 1.0, and faster than HNSW calling the JS filter across the native boundary for
 * thousands of rejected nodes); a broader one by HNSW with the filter and an ef raised as the allowed share falls.
 * Measured with `npm run bench:filters` on this 2-core machine (see README).
 */
export const EXACT_SCAN_MAX_ALLOWED = 20_000;

/**
 * With the SIMD kernel (core/util/simd-dots.ts) and the filter's vectors packed, an exact scan of 50,000 128-d vectors
 * takes about as long as one filtered HNSW walk at 100k and never wanders (a walk's p99 was 5-15x its p50): every filter
 * allowing up to this many of a shard's items is scanned exactly.
 */
export const SIMD_EXACT_SCAN_MAX_ALLOWED = 250_000;

const filterKeys = new WeakMap<SearchFilter, string>();
const NO_FILTER_KEY = JSON.stringify([undefined, undefined, undefined, undefined]);

/** A filter's allow-list in a shard: which labels pass, how many, where they sit, and how often it was scanned. */
export interface AllowEntry {
  /** The filter's cache key. */
  key: string;
  list: Uint8Array;
  count: number;
  positions?: Int32Array;
  scans?: number;
}

export class Shard<M extends ItemMeta> {
  constructor(
    /** The graph as loaded: mapped (its records are also the exact scans' vectors; core/bundle/mapped-hnsw.ts), or
     * hnswlib-node's. */
    private readonly graph: HnswGraph,
    readonly meta: LazyLines<M>,
    /** Whether any item is marked deleted (from the manifest), so unfiltered searches need no allow-list. */
    private readonly hasDeleted: boolean,
    /** The verified HNSW file, read again only when a selective filter needs its vectors. */
    readonly file: string,
    private readonly dim: number,
    /** The shard's verified filter bitsets, read on the first filtered query (none: filters read the metadata). */
    private readonly filtersFile?: string,
    /** The shard's verified text anchors, read on the first text query (none: a wider HNSW beam instead). */
    private readonly anchorsFile?: string,
    /**
     * hnswlib-node's copy of a mapped graph, read in the background from the first search on: its native walk is
     * ~1.2x faster than the WebAssembly one (`npm run bench:mapped`), and takes over the walks once read; the mapped graph
     * answers until then, and keeps serving exact scans.
     */
    private readonly nativeWalks?: () => Promise<HnswGraph>,
  ) {}

  private walker?: HnswGraph;
  private walkerRequested = false;

  /** The graph that walks now: hnswlib-node's copy once read, else the graph as loaded. */
  get index(): HnswGraph {
    return this.walker ?? this.graph;
  }

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

  /** The exact top-k of the vectors a filter allows, gathered in place (`packedFilterSearch` packs them). */
  exactTopK(query: Float32Array, k: number, entry: AllowEntry) {
    return this.vectors().topK(query, k, this.allowedPositions(entry));
  }

  /** The most allowed items an exact scan takes on (planner): more with the SIMD kernel. Reads no vectors. */
  exactScanLimit(): number {
    return simdDotsSupported(this.dim) ? SIMD_EXACT_SCAN_MAX_ALLOWED : EXACT_SCAN_MAX_ALLOWED;
  }

  /** Vectors read ahead (while the bundle loaded) instead of on first use. */
  useVectors(vectors: StoredVectors): void {
    this.stored ??= vectors;
  }

  /** The shard's vectors for exact scans: a mapped graph's own records, or read from the file on first use. */
  vectors(): StoredVectors {
    this.stored ??= this.graph instanceof MappedHnsw ? this.graph.storedVectors() : StoredVectors.read(this.file, this.dim);
    return this.stored;
  }

  /** The graph's k nearest (a mapped graph takes the query as it is; hnswlib-node wants a plain array). */
  knn(query: Float32Array, plain: () => number[], k: number, filter?: (label: number) => boolean): KnnResult {
    if (this.nativeWalks && !this.walkerRequested) {
      this.walkerRequested = true;
      // after this request's answer (not competing with it for the cores); a failed read leaves the mapped graph
      // walking: nothing is lost
      setImmediate(() =>
        this.nativeWalks!().then(
          (g) => {
            this.walker = g;
          },
          () => {},
        ),
      );
    }
    const g = this.index;
    return g instanceof MappedHnsw ? g.searchKnn(query, k, filter) : g.searchKnn(plain(), k, filter);
  }

  /** How many items an allow-list lets through. */
  static countAllowed(list: Uint8Array): number {
    let n = 0;
    for (let i = 0; i < list.length; i++) n += list[i]!;
    return n;
  }

  /** Allow-lists of recent filters: a shard's metadata never changes once loaded, and at 100k items building one
   * took ~15 ms per request (a UI repeats the same few filters). Kept within the 'filter-allow-lists' budget. */
  private readonly allowCache = boundedCache<string, AllowEntry>(
    'filter-allow-lists',
    (v, k) => v.list.byteLength + (v.positions?.byteLength ?? 0) + stringBytes(k),
  );

  /** A filter's cache key, computed once per filter object (a request's filter is looked up in every shard). */
  private static key(filter: SearchFilter | undefined): string {
    if (!filter) return NO_FILTER_KEY;
    let key = filterKeys.get(filter);
    if (key === undefined) {
      key = JSON.stringify([filter.must, filter.mustNot, filter.view, filter.source]);
      filterKeys.set(filter, key);
    }
    return key;
  }

  /** Which labels pass the filter (and how many), computed in JS before the native search. */
  allowed(filter: SearchFilter | undefined): AllowEntry | undefined {
    if (!filter && !this.hasDeleted) return undefined;
    const key = Shard.key(filter);
    let entry = this.allowCache.get(key);
    if (!entry) {
      const list = this.computeAllowed(filter);
      entry = { key, list, count: Shard.countAllowed(list) };
      this.allowCache.set(key, entry);
    }
    return entry;
  }

  /** Where the allowed vectors sit in the stored file (for an exact scan that reads only them), kept with the list. */
  allowedPositions(entry: AllowEntry): Int32Array {
    if (!entry.positions) {
      entry.positions = this.vectors().positionsOf(entry.list, entry.count);
      this.allowCache.set(entry.key, entry); // again, so the budget counts the positions too
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

/**
 * The filter clause that allows the fewest of a shard's items and that the anchors have group lists for: one `must`
 * finding, or the values of `source` or of `view` (any of them). Its groups' anchor lists then hold the query's best
 * allowed images even where the filter cuts against the query's sense. Undefined: no such clause.
 */
export function selectiveClause<M extends ItemMeta>(shard: Shard<M>, filter: SearchFilter, anchors: AnchorLists): string[] | undefined {
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
export function searchShards<M extends ItemMeta>(
  shards: Shard<M>[],
  efSearch: number,
  query: Float32Array,
  options: SearchOptions,
): Hit<M>[] {
  // a filter scanned exactly over every shard: one packed copy of its vectors from its second use on
  const packed =
    options.filter && options.plan !== 'hnsw'
      ? packedFilterSearch(shards, query, options.k, options.filter, options.plan === 'exact')
      : undefined;
  if (packed) return packed;
  let plain: number[] | undefined;
  const q = () => (plain ??= Array.from(query));
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
    const exactScan = options.plan === 'exact' || (options.plan !== 'hnsw' && !!options.filter && allowedCount <= shard.exactScanLimit());
    if (allowed && options.filter && exactScan) {
      // a filter: exact scan of the allowed vectors
      const exact = shard.exactTopK(query, k, entry!);
      result = { neighbors: exact.labels, distances: exact.scores.map((s) => 1 - s) };
    } else {
      // broad filter (or only deletions): HNSW with the filter; a rarer match needs a wider beam to find k
      const share = allowedCount / Math.max(1, shard.meta.length);
      // a text query (the other modality): its anchors' exact lists join its HNSW hits, or else a wider beam
      const anchors = options.crossModal ? shard.anchors() : undefined;
      const widen = options.crossModal && !anchors ? TEXT_QUERY_EF_SCALE : 1;
      shard.index.setEf(Math.max(k, Math.min(4096, Math.ceil((ef * widen) / Math.max(share, 1 / 8)))));
      // The filter only reads a precomputed array: it cannot throw inside the native search.
      result = allowed ? shard.knn(query, q, k, (label: number) => allowed[label] === 1) : shard.knn(query, q, k);
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

/**
 * Filters answered by one packed scan: the vectors a filter allows in every shard of a collection, copied once into
 * one contiguous block (the SIMD kernel's memory), from the filter's second use on. A scan then reads them in order
 * (2-3x faster than gathering them from the shards) and one top-k covers the collection. Recent filters' copies are
 * kept within the 'filter-packed-vectors' budget; a one-off filter is scanned in place, shard by shard.
 */
/** Per collection (its shards array): the packed copies of recent filters. */
const packs = new WeakMap<object, ReturnType<typeof newCache>>();
const newCache = () => boundedCache<string, PackedSubset>('filter-packed-vectors', (v, k) => v.bytes + stringBytes(k));

/**
 * The k best items a filter allows over all shards, exactly, from the filter's packed copy; undefined when the planner
 * would walk HNSW in some shard (a filter allowing more than its exact-scan limit) or on a filter's first use.
 */
export function packedFilterSearch<M extends ItemMeta>(
  shards: Shard<M>[],
  query: Float32Array,
  k: number,
  filter: SearchFilter,
  forceExact: boolean,
): Hit<M>[] | undefined {
  const entries: AllowEntry[] = [];
  let total = 0;
  for (const shard of shards) {
    const e = shard.allowed(filter);
    if (!e || (!forceExact && e.count > shard.exactScanLimit())) return undefined;
    entries.push(e);
    total += e.count;
  }
  const key = entries[0]!.key;
  let cache = packs.get(shards);
  if (!cache) {
    cache = newCache();
    packs.set(shards, cache);
  }
  let pack = cache.get(key);
  if (!pack) {
    const first = entries[0]!;
    first.scans = (first.scans ?? 0) + 1;
    if (first.scans < 2) return undefined;
    let base = 0;
    const parts = shards.map((shard, i) => {
      const part = { stored: shard.vectors(), positions: shard.allowedPositions(entries[i]!), base };
      base += shard.meta.length;
      return part;
    });
    pack = StoredVectors.packAcross(parts);
    cache.set(key, pack);
  }
  if (total === 0) return [];
  const best = pack.topK(query, Math.min(k, total));
  const hits: Hit<M>[] = [];
  for (let j = 0; j < best.labels.length; j++) {
    // the shard whose label range holds it (few shards: a linear walk)
    let s = 0;
    let local = best.labels[j]!;
    while (local >= shards[s]!.meta.length) local -= shards[s++]!.meta.length;
    const meta = shards[s]!.meta.get(local);
    if (meta && !meta.deleted) hits.push({ score: best.scores[j]!, meta });
  }
  return hits;
}
