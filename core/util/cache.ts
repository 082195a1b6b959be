/**
 * Every in-memory cache of the project, each with an explicit budget (lru-cache: least recently used entries go
 * first once the budget is reached). A server answering arbitrary requests must not grow with them.
 *
 *   const cache = boundedCache<string, Float32Array>('class-prompts', (v, k) => v.byteLength + k.length * 2);
 */
import { LRUCache } from 'lru-cache';

/** Budgets in bytes (approximate: what the values and keys hold). */
export const CACHE_BUDGETS = {
  /** Class-prompt embeddings (core/model/medclip-model.ts): the built-in classes and recent custom ones; ~0.5 KB each at 128-d. */
  'class-prompts': 4 << 20,
  /** Report sentences split at serve time (core/search/report-search.ts): report text is a few KB; 8 MB holds thousands. */
  'report-sentences': 8 << 20,
  /** Which shard holds an image id (core/search/shard-fanout.ts), learned from search results; ~100 B an id. */
  'shard-owners': 4 << 20,
  /** Filter allow-lists of an index shard (core/bundle/index-bundle.ts): 1 byte per item; 64 MB = 64 filters at 1M items. */
  'filter-allow-lists': 64 << 20,
  /**
   * A shard's allowed vectors of recent filters, packed for contiguous SIMD scans (core/bundle/shard.ts): 4 bytes per
   * dimension per allowed item; 128 MB holds five filters allowing half of 100k 128-d vectors.
   */
  'filter-packed-vectors': 128 << 20,
  /** Embedding of a distinct sentence text (core/bundle/index-bundle.ts, lexical candidates): 0.5 KB at 128-d; 16 MB holds ~30k texts. */
  'sentence-vectors': 16 << 20,
  /** A report's mean sentence vector (core/bundle/index-bundle.ts), to choose which report shows a shared sentence: 0.5 KB each. */
  'report-vectors': 16 << 20,
  /** The first sentences holding a distinct text, with their reports' labels (core/search/report-search.ts): ~1.5 KB a text. */
  'text-members': 16 << 20,
  /** What a text query says (core/search/search-service.ts: spelling, findings with polarity, warnings): ~0.5 KB a query. */
  'query-analysis': 2 << 20,
} as const;

export type CacheName = keyof typeof CACHE_BUDGETS;

export function boundedCache<K extends NonNullable<unknown>, V extends NonNullable<unknown>>(
  name: CacheName,
  sizeOf: (value: V, key: K) => number,
): LRUCache<K, V> {
  return new LRUCache<K, V>({ maxSize: CACHE_BUDGETS[name], sizeCalculation: (v, k) => Math.max(1, Math.ceil(sizeOf(v, k))) });
}

/** Bytes a string key or value holds in memory (UTF-16). */
export const stringBytes = (s: string): number => s.length * 2;
