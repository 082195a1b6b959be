/**
 * Building HNSW shards: one in process, or several at once on worker threads (one shard per thread, piscina), so a
 * collection larger than the shard size is built on every core. hnswlib inserts on one thread per index; shards are
 * independent indexes that search merges by top-k, so building them side by side changes nothing they contain.
 */
import { availableParallelism } from 'node:os';
import { Piscina } from 'piscina';
import { type AnchorGroups, type ShardAnchorLists, shardGroups, hnswlib, type HierarchicalNSW } from '../core/bundle/index.ts';
import { taskFile } from '../core/util/index.ts';

export interface HnswParams {
  M: number;
  efConstruction: number;
  efSearch: number;
  /**
   * Vectors per HNSW shard: larger collections are split into several files (searched and merged). 0 = automatic
   * (`shardSizeFor`): on a machine with several cores a collection of AUTO_SPLIT_MIN vectors or more is cut into one
   * shard per core, so the build uses every core.
   */
  shardSize: number;
  seed: number;
}

/** Most vectors in one shard (automatic sizing): a shard's verified load grows ~1.6 ms per 1,000 vectors. */
export const MAX_SHARD_SIZE = 1_000_000;
/** Below this many vectors a collection stays one shard: its build takes seconds on one core. */
export const AUTO_SPLIT_MIN = 40_000;

/**
 * The shard size a build uses for `n` vectors: the one asked for, or automatically the fewest shards of at most
 * MAX_SHARD_SIZE whose count is a multiple of the cores (one shard per core builds on every core at once).
 */
export function shardSizeFor(n: number, requested: number, cores = availableParallelism()): number {
  if (requested > 0) return requested;
  if (cores < 2 || n < AUTO_SPLIT_MIN) return Math.max(1, Math.ceil(n / Math.max(1, Math.ceil(n / MAX_SHARD_SIZE))));
  const shards = cores * Math.ceil(n / (cores * MAX_SHARD_SIZE));
  return Math.ceil(n / shards);
}

/** Build one HNSW index over rows [from, to) of `vectors` (labels 0..n-1 in that order). */
export function buildHnsw(
  vectors: Float32Array,
  dim: number,
  from: number,
  to: number,
  p: HnswParams,
  deleted?: (i: number) => boolean,
): HierarchicalNSW {
  const index = new hnswlib.HierarchicalNSW('ip', dim);
  index.initIndex({ maxElements: Math.max(1, to - from), m: p.M, efConstruction: p.efConstruction, randomSeed: p.seed });
  const row = new Array<number>(dim);
  for (let i = from; i < to; i++) {
    for (let d = 0; d < dim; d++) row[d] = vectors[i * dim + d]!;
    index.addPoint(row, i - from);
    if (deleted?.(i)) index.markDelete(i - from);
  }
  return index;
}

/** One shard for a worker: its own rows (moved, not copied), which of them are deleted, and the file to write. */
export interface ShardTask {
  vectors: Float32Array;
  dim: number;
  deleted: Uint8Array;
  params: HnswParams;
  file: string;
  /** Text anchors (core/bundle/anchors.ts): the worker also returns each one's exact top list over this shard. */
  anchors?: Float32Array;
  /** With anchors: the shard's rows' filter groups (core/bundle/anchors.ts `anchorGroups`), for per-group lists. */
  groups?: AnchorGroups;
}

export interface ShardJob {
  from: number;
  to: number;
  file: string;
}

/** Build shards [from, to) of `vectors` into their files, `threads` at a time (default: one per core, at most one per shard). */
export async function buildShardFiles(
  vectors: Float32Array,
  dim: number,
  jobs: ShardJob[],
  params: HnswParams,
  deleted: (i: number) => boolean,
  threads = Math.min(jobs.length, availableParallelism()),
  anchors?: Float32Array,
  /** With anchors: the rows' filter groups, over the whole collection (sliced per shard). */
  groups?: AnchorGroups,
): Promise<(ShardAnchorLists | undefined)[]> {
  const { filename, workerData } = taskFile(import.meta.url, { source: './hnsw-worker.ts', compiled: 'hnsw-worker.mjs' });
  const pool = new Piscina({ filename, workerData, minThreads: 1, maxThreads: Math.max(1, threads), idleTimeout: 1000 });
  try {
    return await Promise.all(
      jobs.map((job) => {
        const rows = vectors.slice(job.from * dim, job.to * dim);
        const mask = new Uint8Array(job.to - job.from);
        for (let i = job.from; i < job.to; i++) mask[i - job.from] = deleted(i) ? 1 : 0;
        const task: ShardTask = {
          vectors: rows,
          dim,
          deleted: mask,
          params,
          file: job.file,
          ...(anchors ? { anchors } : {}),
          ...(anchors && groups ? { groups: shardGroups(groups, job.from, job.to) } : {}),
        };
        return pool.run(task, { transferList: [rows.buffer, mask.buffer] }) as Promise<ShardAnchorLists | undefined>;
      }),
    );
  } finally {
    await pool.destroy();
  }
}
