/**
 * HNSW files walked where they lie (core/bundle/mapped-hnsw.ts) against hnswlib-node (the build this CPU loads) on the
 * same shard files of a 100k-vector bundle: time to open a shard (read, parse) and walk p50 (ef = the bundle's
 * efSearch, k 10, 500 text queries and 500 queries near stored vectors, the two engines alternated query by query
 * over 3 rounds), and how many neighbours they share.
 *
 *   npm run bench:mapped [-- --n 100000 --json]
 */
import { join } from 'node:path';
import { currentVersionSync, hnswlib, MappedHnsw, readLiveManifest } from '../core/bundle/index.ts';
import { MedClipModel } from '../core/model/index.ts';
import { Rng } from '../core/util/index.ts';
import { buildPerturbedIndex } from './perturbed-index.ts';
import { benchArgs, p50 } from './harness.ts';

const here = import.meta.dirname;
const { args, say, result } = benchArgs({ n: { type: 'string', default: '100000' } });
const dir = join(here, '../.bench-output', `filters-${args.n}`);
const model = await MedClipModel.load(join(here, '../models/medclip-tiny'));
if (!currentVersionSync(dir, 'manifest.json')) await buildPerturbedIndex(model, join(here, '../indexes/sample'), Number(args.n), dir);
const manifest = (await readLiveManifest(dir))!;
const live = currentVersionSync(dir, 'manifest.json')!;
const images = manifest.collections.images!;
const files = images.shards.map((s) => join(live, s.file));

// opening: each engine 5 times per file, alternated (the OS file cache holds the files after the first)
const openNative: number[] = [];
const openMapped: number[] = [];
for (let round = 0; round < 5; round++)
  for (const file of files) {
    let t = performance.now();
    const native = new hnswlib.HierarchicalNSW('ip', images.dim);
    await native.readIndex(file);
    openNative.push(performance.now() - t);
    t = performance.now();
    await MappedHnsw.read(file, images.dim);
    openMapped.push(performance.now() - t);
  }

const natives = await Promise.all(
  files.map(async (file) => {
    const index = new hnswlib.HierarchicalNSW('ip', images.dim);
    await index.readIndex(file);
    index.setEf(images.efSearch);
    return index;
  }),
);
const mapped = await Promise.all(files.map((file) => MappedHnsw.read(file, images.dim)));
for (const m of mapped) m!.setEf(images.efSearch);
const texts = ['pneumonia', 'normal chest', 'pleural effusion', 'cardiomegaly', 'no acute disease', 'right lower lobe opacity'];
const textQueries = await model.embedTexts(Array.from({ length: 500 }, (_, i) => texts[i % texts.length]!));
// image-like queries: stored vectors of the first shard, perturbed
const rng = new Rng(3);
const imageQueries = Array.from({ length: 500 }, () => {
  const v = Float32Array.from(mapped[0]!.getPoint(rng.int(images.shards[0]!.count)), (x) => x + rng.uniform(-0.02, 0.02));
  const norm = Math.hypot(...v);
  return v.map((x) => x / norm);
});
const rows: Record<string, number | string>[] = [];
for (const [kind, queries] of [
  ['text', textQueries],
  ['image', imageQueries],
] as const) {
  const tNative: number[] = [];
  const tMapped: number[] = [];
  let shared = 0;
  let total = 0;
  for (let round = 0; round < 3; round++)
    for (const q of queries) {
      const plain = Array.from(q);
      const s = rng.int(files.length);
      let t = performance.now();
      const a = natives[s]!.searchKnn(plain, 10);
      tNative.push(performance.now() - t);
      t = performance.now();
      const b = mapped[s]!.searchKnn(q, 10);
      tMapped.push(performance.now() - t);
      total += a.neighbors.length;
      shared += b.neighbors.filter((l) => a.neighbors.includes(l)).length;
    }
  const row = { kind, nativeP50Us: p50(tNative) * 1000, mappedP50Us: p50(tMapped) * 1000, shared: shared / total };
  rows.push(row);
  say(
    `${kind} queries, one ${images.shards[0]!.count}-vector shard, ef ${images.efSearch}: hnswlib-node p50 ${row.nativeP50Us.toFixed(0)} µs, mapped ${row.mappedP50Us.toFixed(0)} µs (${(row.mappedP50Us / row.nativeP50Us).toFixed(2)}x), neighbours shared ${(100 * row.shared).toFixed(1)}%`,
  );
}
say(
  `opening a shard (${files.length} files, p50 of 5 rounds): hnswlib-node ${p50(openNative).toFixed(1)} ms, mapped ${p50(openMapped).toFixed(1)} ms (${(p50(openMapped) / p50(openNative)).toFixed(2)}x)`,
);
result({ openNativeMs: p50(openNative), openMappedMs: p50(openMapped), walks: rows });
await model.close();
