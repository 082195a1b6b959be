/**
 * Loading one version of a bundle: the model it must come from, verification (hashed on a worker thread for a
 * large bundle), and the verified shards, distinct texts and reports the version holds.
 */
import { resolve, sep, join } from 'node:path';
import { readFile } from 'node:fs/promises';
import { readFileSync, statSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { hashFiles, FileHashError, readWhole, simdDotsSupported } from '../util/index.ts';
import { hnswlib } from './hnswlib.ts';
import { type HnswGraph, MappedHnsw } from './mapped-hnsw.ts';
import { COLLECTIONS, INDEX_FORMAT, INDEX_FORMAT_V1, type IndexManifest, IndexError } from './manifest.ts';
import type { ImageMeta, ItemMeta, SentenceMeta, StoredReport, TextMeta } from './items.ts';
import { hnswHeader, readHead } from './hnsw-file.ts';
import { LazyLines, parseJsonl, parseLineIndex } from './lazy-lines.ts';
import { Shard } from './shard.ts';
import { StoredVectors } from './stored-vectors.ts';
import { prefetchVectors } from './vector-prefetch.ts';
import { markerMatches, type Signature, signature, writeMarker } from './verified-marker.ts';

/** Bundles at least this large are hashed on a worker thread while the rest loads. */
export const HASH_IN_WORKER_BYTES = 32 << 20;

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
  /** Skip hashing files a verified-at-write marker vouches for (core/bundle/verified-marker.ts; default true). */
  trustMarker?: boolean;
  /**
   * Read a large bundle's image vectors on a worker thread while it loads (core/bundle/vector-prefetch.ts); default:
   * a bundle of 32 MB or more on a machine with a second core (on one, the worker's overhead is not hidden and the
   * vectors are read at first use).
   */
  prefetchVectors?: boolean;
  /** Hash on a worker thread (default: when the bundle's files total 32 MB or more). */
  hashInWorker?: boolean;
  /**
   * How HNSW files are read. Default (where the SIMD kernel runs): each file once into the kernel's memory, searched
   * there from the first query (core/bundle/mapped-hnsw.ts), while hnswlib-node reads its own copy in the background
   * from a shard's first search and takes over its walks once read (faster, native); `mapped`: that copy is never read;
   * `hnswlib`: hnswlib-node reads every graph before the load completes (benchmarks compare).
   */
  graphs?: 'mapped' | 'hnswlib';
  /**
   * Called once the load has asked for every large read it needs (graphs, metadata), before it waits for the model:
   * a caller can start work that keeps this thread busy (making model sessions) then, while the reads proceed on the
   * thread pool, instead of holding up the requests for them.
   */
  onReading?: () => void;
  /** Load a format-1 bundle (only `medclip index --upgrade` does, to rewrite it). */
  allowV1?: boolean;
}

export function bundleFile(dir: string, name: string): string {
  const abs = resolve(dir, name);
  if (!abs.startsWith(resolve(dir) + sep)) throw new IndexError(`${dir}: manifest names a file outside the bundle (${name})`);
  return abs;
}

/** A promise awaited later: a failure before then must not be an unhandled rejection. */
function settledLater<T>(p: Promise<T>): Promise<T> {
  p.catch(() => {});
  return p;
}

/** What one version folder holds, read and verified. */
export interface LoadedVersion {
  dir: string;
  manifest: IndexManifest;
  images: Shard<ImageMeta>[];
  reports: Shard<SentenceMeta>[];
  texts?: Shard<TextMeta>;
  storedReports: Map<string, StoredReport>;
}

/**
 * Read and verify one version folder (its files directly inside): every file against the manifest's sha256 before its
 * content is used, an HNSW file before hnswlib reads it, each HNSW header's dimension and count against the manifest.
 */
export async function readVersion(dir: string, options: IndexLoadOptions): Promise<LoadedVersion> {
  let manifest: IndexManifest;
  const manifestSignature = await signature(join(dir, 'manifest.json'));
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
      c.shards.flatMap((s) => [
        s.file,
        s.meta,
        ...(s.metaIndex ? [s.metaIndex] : []),
        ...(s.filters ? [s.filters] : []),
        ...(s.anchors ? [s.anchors] : []),
      ]),
    ),
    ...(manifest.reports ? [manifest.reports] : []),
    ...(manifest.texts ? [manifest.texts.file, manifest.texts.meta] : []),
  ];
  let totalBytes = 0;
  const signatures: Record<string, Signature> = manifestSignature ? { 'manifest.json': manifestSignature } : {};
  for (const name of names) {
    if (verify && !manifest.sha256?.[name]) throw new IndexError(`${dir}: manifest has no sha256 for ${name}`);
    try {
      const s = statSync(bundleFile(dir, name));
      totalBytes += s.size;
      signatures[name] = [s.size, s.mtimeMs, s.ino];
    } catch (err) {
      if (err instanceof IndexError) throw err;
      throw new IndexError(`${dir}: missing ${name}`);
    }
  }
  // a graph searched where it lies is also the exact scans' vectors; hnswlib-node's copy is not (see readGraph)
  const mapped = (dim: number) => options.graphs !== 'hnswlib' && simdDotsSupported(dim);
  // a large bundle's image vectors (for exact scans and the text anchors' re-ranking) are read on a worker thread
  // meanwhile, instead of at the first query, where hnswlib-node reads the graphs
  const imageDim = manifest.collections.images?.dim ?? 0;
  const prefetched =
    !mapped(imageDim) && (options.prefetchVectors ?? (totalBytes >= HASH_IN_WORKER_BYTES && availableParallelism() > 1))
      ? prefetchVectors(
          (manifest.collections.images?.shards ?? []).map((sh) => ({
            file: bundleFile(dir, sh.file),
            dim: manifest.collections.images!.dim,
          })),
        )
      : undefined;
  // verified before (by the writer, the S3 fetch or an earlier load) and unchanged since: no second hashing pass
  const vouched = verify && options.trustMarker !== false && (await markerMatches(dir, names));
  const digests =
    verify && !vouched
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
    readWhole(bundleFile(dir, name)).catch((err: NodeJS.ErrnoException) => {
      throw new IndexError(`${dir}: ${err.code === 'ENOENT' ? 'missing' : 'cannot read'} ${name}`);
    });
  // (a shard with a line index: only the index, the metadata in the background from its first use)
  const metaBytes = new Map([
    ...collections.flatMap(([, c]) => c.shards.map((sh) => [sh.metaIndex ?? sh.meta, readMeta(sh.metaIndex ?? sh.meta)] as const)),
    ...(manifest.texts ? [[manifest.texts.meta, readMeta(manifest.texts.meta)] as const] : []),
  ]);
  for (const p of metaBytes.values()) p.catch(() => {}); // awaited below, unless an earlier check throws
  // Graphs are read on the thread pool: several shards load side by side (and with the metadata and the model).
  const nativeGraph = async (file: string, dim: number, efSearch: number): Promise<HnswGraph> => {
    const index = new hnswlib.HierarchicalNSW('ip', dim);
    await index.readIndex(file);
    index.setEf(efSearch);
    return index;
  };
  type Graph = { graph: HnswGraph; native?: () => Promise<HnswGraph> };
  const readGraph = (file: string, dim: number, efSearch: number): Promise<Graph> => {
    const read = async (): Promise<Graph> => {
      let graph: MappedHnsw | undefined;
      try {
        graph = mapped(dim) ? await MappedHnsw.read(file, dim) : undefined;
      } catch (err) {
        // a malformed file is the bundle's error; anything else (no memory for the kernel) leaves it to hnswlib-node
        if (err instanceof IndexError) throw err;
      }
      if (!graph) return { graph: await nativeGraph(file, dim, efSearch) }; // no SIMD kernel, too large, or no memory
      graph.setEf(efSearch);
      return options.graphs === 'mapped' ? { graph } : { graph, native: () => nativeGraph(file, dim, efSearch) };
    };
    return settledLater(read());
  };
  // Each verified graph starts reading now, while the model loads (only its header was needed to check it).
  const graphs = new Map<string, Promise<Graph>>();
  const graphFiles = [
    ...collections.flatMap(([, c]) => c.shards.map((sh) => ({ name: sh.file, dim: c.dim, count: sh.count, efSearch: c.efSearch }))),
    ...(manifest.texts
      ? [{ name: manifest.texts.file, dim: manifest.texts.dim, count: manifest.texts.count, efSearch: manifest.texts.efSearch }]
      : []),
  ];
  // A header that disagrees with the manifest is reported after the model check (a wrong model is the likelier cause).
  let headerError: IndexError | undefined;
  for (const g of graphFiles) {
    await verified(g.name);
    const header = hnswHeader(readHead(bundleFile(dir, g.name), 96));
    if (header.dim !== g.dim)
      headerError ??= new IndexError(`${dir}: ${g.name} holds ${header.dim}-dimensional vectors, the manifest says ${g.dim}`);
    else if (header.count !== g.count)
      headerError ??= new IndexError(`${dir}: ${g.name} holds ${header.count} vectors, the manifest says ${g.count}`);
    else graphs.set(g.name, readGraph(bundleFile(dir, g.name), g.dim, g.efSearch));
  }
  options.onReading?.();
  const m = await options.model;
  if (m && manifest.model.sha256 !== m.manifestSha256)
    throw new IndexError(
      `${dir}: built with model "${manifest.model.name}" (${manifest.model.sha256.slice(0, 12)}), not the loaded model "${m.name}" (${m.manifestSha256.slice(0, 12)}); rebuild the index with this model`,
    );
  for (const [name, c] of collections)
    if (m && c.dim !== m.embedDim)
      throw new IndexError(`${dir}: ${name} vectors have dimension ${c.dim}, the model embeds to ${m.embedDim}`);
  if (headerError) throw headerError;
  const bundle = {
    images: [] as Shard<ImageMeta>[],
    reports: [] as Shard<SentenceMeta>[],
    texts: undefined as Shard<TextMeta> | undefined,
    storedReports: new Map<string, StoredReport>(),
  };
  const shards: Promise<void>[] = [];
  for (const [name, c] of collections) {
    const list: Shard<ItemMeta>[] = name === 'images' ? bundle.images : bundle.reports;
    for (const [at, shard] of c.shards.entries()) {
      // Metadata lines are only located here (parsed on demand, after verification completes below).
      let meta: LazyLines<ItemMeta>;
      if (shard.metaIndex) {
        const index = await metaBytes.get(shard.metaIndex)!;
        await verified(shard.metaIndex);
        const starts = parseLineIndex(index, signatures[shard.meta]![0], shard.count, `${dir}: ${shard.metaIndex}`);
        meta = new LazyLines<ItemMeta>({ path: bundleFile(dir, shard.meta), starts }, shard.meta);
      } else meta = new LazyLines<ItemMeta>(await metaBytes.get(shard.meta)!, shard.meta);
      if (meta.length !== shard.count)
        throw new IndexError(`${dir}: ${shard.file} holds ${shard.count} vectors but ${shard.meta} has ${meta.length} lines`);
      const file = bundleFile(dir, shard.file);
      const graph = graphs.get(shard.file)!;
      await verified(shard.meta);
      if (shard.filters) await verified(shard.filters);
      if (shard.anchors) await verified(shard.anchors);
      const filters = shard.filters ? bundleFile(dir, shard.filters) : undefined;
      const anchors = name === 'images' && shard.anchors ? bundleFile(dir, shard.anchors) : undefined;
      const deleted = (c.deleted ?? 0) > 0;
      shards.push(
        graph.then(({ graph, native }) => {
          list[at] = new Shard(graph, meta, deleted, file, c.dim, filters, anchors, native);
        }),
      );
    }
  }
  const t = manifest.texts;
  if (t) {
    const meta = new LazyLines<TextMeta>(await metaBytes.get(t.meta)!, t.meta);
    if (meta.length !== t.count) throw new IndexError(`${dir}: ${t.file} holds ${t.count} vectors but ${t.meta} has ${meta.length} lines`);
    const graph = graphs.get(t.file)!;
    await verified(t.meta);
    shards.push(
      graph.then(({ graph, native }) => {
        bundle.texts = new Shard(graph, meta, false, bundleFile(dir, t.file), t.dim, undefined, undefined, native);
      }),
    );
  }
  if (manifest.reports) {
    await verified(manifest.reports);
    for (const r of parseJsonl<StoredReport>(readFileSync(bundleFile(dir, manifest.reports), 'utf8'), manifest.reports))
      if (!r.deleted) bundle.storedReports.set(r.id, r);
  }
  try {
    await Promise.all(shards);
  } catch (err) {
    if (err instanceof IndexError) throw err;
    throw new IndexError(`${dir}: an HNSW file cannot be read (${(err as Error).message})`);
  }
  if (prefetched)
    for (const shard of bundle.images) {
      const got = await prefetched.get(shard.file);
      if (got) shard.useVectors(StoredVectors.fromPacked(got.packed, got.labels, manifest.collections.images!.dim));
    }
  if (verify && !vouched) await writeMarker(dir, signatures);
  return { dir, manifest, ...bundle };
}
