/**
 * Writes an index bundle from collected vectors and metadata: HNSW shards built on unit vectors (inner
 * product), metadata lines, reports and errors, and a manifest with every file's sha256. Written into a
 * temporary folder and renamed over the target, so readers see the old bundle or the new one, never a mix.
 */
import { cp, mkdir, rename, rm, writeFile, readFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import hnswlib from 'hnswlib-node';
import { INDEX_FORMAT, type CollectionManifest, type CollectionName, type IndexManifest, type ItemMeta, type StoredReport } from '../core/index.ts';
import { sha256 } from '../core/model.ts';
import { thumbnailName } from '../core/image/index.ts';
import type { BuildError } from './partial.ts';

export interface HnswParams {
  M: number;
  efConstruction: number;
  efSearch: number;
  /** Vectors per HNSW shard; a larger collection is split into several shards searched together. */
  shardSize: number;
  seed: number;
}

/** Chosen with bench/index: recall@10 0.997 against exact search on the sample's real embeddings at efSearch 128. */
export const DEFAULT_HNSW: HnswParams = { M: 16, efConstruction: 200, efSearch: 128, shardSize: 1_000_000, seed: 100 };

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
}

/** Build one HNSW index over rows [from, to) of `vectors` (labels 0..n-1 in that order). */
export function buildHnsw(vectors: Float32Array, dim: number, from: number, to: number, p: HnswParams, deleted?: (i: number) => boolean): hnswlib.HierarchicalNSW {
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

const jsonl = (rows: unknown[]) => rows.map((r) => JSON.stringify(r) + '\n').join('');

export async function writeBundle(out: string, content: BundleContent): Promise<IndexManifest> {
  const tmp = `${out}.tmp-${process.pid}`;
  await rm(tmp, { recursive: true, force: true });
  await mkdir(tmp, { recursive: true });
  const hashes: Record<string, string> = {};
  const put = async (name: string, data: string | Uint8Array) => {
    await writeFile(join(tmp, name), data);
    hashes[name] = sha256(typeof data === 'string' ? Buffer.from(data) : data);
  };
  const collections: IndexManifest['collections'] = {};
  for (const [name, c] of Object.entries(content.collections) as [CollectionName, CollectionData][]) {
    const n = c.items.length;
    if (n === 0) continue;
    const shards: CollectionManifest['shards'] = [];
    const shardCount = Math.ceil(n / content.hnsw.shardSize);
    for (let s = 0; s < shardCount; s++) {
      const from = s * content.hnsw.shardSize;
      const to = Math.min(n, from + content.hnsw.shardSize);
      const base = shardCount === 1 ? name : `${name}.${s}`;
      const index = buildHnsw(c.vectors, c.dim, from, to, content.hnsw, (i) => !!c.items[i]!.deleted);
      index.writeIndexSync(join(tmp, `${base}.hnsw`));
      hashes[`${base}.hnsw`] = sha256(await readFile(join(tmp, `${base}.hnsw`)));
      await put(`${base}.meta.jsonl`, jsonl(c.items.slice(from, to)));
      shards.push({ file: `${base}.hnsw`, meta: `${base}.meta.jsonl`, count: to - from });
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
  const manifest: IndexManifest = {
    format: INDEX_FORMAT,
    version: content.version,
    createdAt: new Date().toISOString(),
    model: content.model,
    collections,
    ...(content.reports ? { reports: 'reports.jsonl' } : {}),
    errors: 'errors.jsonl',
    sha256: hashes,
  };
  if (content.thumbsDir) {
    await cp(content.thumbsDir, join(tmp, 'thumbs'), { recursive: true });
    manifest.thumbnails = 'thumbs';
    // deleted images keep no preview in the new version
    const images = content.collections.images?.items ?? [];
    for (const item of images) if (item.deleted) await rm(join(tmp, 'thumbs', thumbnailName(item.id)), { force: true });
  }
  await writeFile(join(tmp, 'manifest.json'), JSON.stringify(manifest, null, 2) + '\n');
  const old = `${out}.old-${process.pid}`;
  if (existsSync(out)) await rename(out, old);
  await rename(tmp, out);
  await rm(old, { recursive: true, force: true });
  return manifest;
}
