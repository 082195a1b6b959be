/**
 * hnswlib-node's portable SSE build against the AVX2 + FMA build (scripts/build-hnswlib-avx2.mjs) in the same run:
 * search p50 on the 100k-vector bundle (ef 128, k 10, 1,000 queries near the stored vectors, builds alternated over
 * 5 rounds, the median round), whether they return the same neighbours, and inserts (20k vectors, M 16, efC 200).
 *
 *   node --import tsx bench/hnsw-simd.ts [--n 100000] [--json]
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { avx2AddonPath, cpuHasAvx2, readLiveManifest } from '../core/bundle/index.ts';
import { MedClipModel } from '../core/model/index.ts';
import { Rng } from '../core/util/index.ts';
import { buildPerturbedIndex } from './perturbed-index.ts';
import { benchArgs, p50 } from './harness.ts';

type Lib = typeof import('hnswlib-node');
const here = import.meta.dirname;
const { args, say, result } = benchArgs({ n: { type: 'string', default: '100000' } });
if (!existsSync(avx2AddonPath()) || !cpuHasAvx2()) {
  say('no AVX2 build, or no AVX2 on this CPU: nothing to compare (npm ci builds it; scripts/build-hnswlib-avx2.mjs)');
  process.exit(0);
}
const require = createRequire(import.meta.url);
const builds: Record<'sse' | 'avx2', Lib> = { sse: require('hnswlib-node') as Lib, avx2: require(avx2AddonPath()) as Lib };

const n = Number(args.n);
const dir = join(here, '../.bench-output/index-100k');
const model = await MedClipModel.load(join(here, '../models/medclip-tiny'));
const manifest = await readLiveManifest(dir);
if (manifest?.model.sha256 !== model.manifestSha256 || manifest.collections.images?.count !== n)
  await buildPerturbedIndex(model, join(here, '../indexes/sample'), n, dir);
await model.close();
const live = join(dir, readFileSync(join(dir, 'CURRENT'), 'utf8').trim());
const file = join(live, readdirSync(live).find((f) => f.startsWith('images') && f.endsWith('.hnsw'))!);
const dim = (await readLiveManifest(dir))!.collections.images!.dim;

const load = (lib: Lib) => {
  const ix = new lib.HierarchicalNSW('ip', dim);
  ix.readIndexSync(file);
  ix.setEf(128);
  return ix;
};
const indexes = { sse: load(builds.sse), avx2: load(builds.avx2) };
// queries near stored vectors (as real queries are near the archive's images): a stored vector plus noise
const rng = new Rng(11);
const unit = (v: number[]) => {
  const norm = Math.hypot(...v);
  return v.map((x) => x / norm);
};
const queries = Array.from({ length: 1000 }, () =>
  unit(indexes.sse.getPoint(rng.int(n)).map((x: number) => x + (rng.next() - 0.5) * 0.05)),
);
const round = (ix: (typeof indexes)['sse']) =>
  p50(
    queries.map((q) => {
      const t = performance.now();
      ix.searchKnn(q, 10);
      return performance.now() - t;
    }),
  );
const times = { sse: [] as number[], avx2: [] as number[] };
for (let r = 0; r < 5; r++) for (const b of ['sse', 'avx2'] as const) times[b].push(round(indexes[b]));
const same = queries.filter((q) => indexes.sse.searchKnn(q, 10).neighbors.join() === indexes.avx2.searchKnn(q, 10).neighbors.join()).length;

const insert = (lib: Lib) => {
  const ix = new lib.HierarchicalNSW('ip', dim);
  ix.initIndex(20_000, 16, 200, 100);
  const t = performance.now();
  for (let i = 0; i < 20_000; i++) ix.addPoint(indexes.sse.getPoint(i), i);
  return performance.now() - t;
};
const inserts = { sse: insert(builds.sse), avx2: insert(builds.avx2) };

const out = {
  searchP50Ms: { sse: p50(times.sse), avx2: p50(times.avx2) },
  searchSpeedup: Math.round((p50(times.sse) / p50(times.avx2)) * 100) / 100,
  sameNeighbours: same / queries.length,
  insert20kMs: { sse: Math.round(inserts.sse), avx2: Math.round(inserts.avx2) },
  insertSpeedup: Math.round((inserts.sse / inserts.avx2) * 100) / 100,
};
say(
  `search p50 (${n} vectors, ef 128, k 10): SSE ${out.searchP50Ms.sse.toFixed(3)} ms, AVX2 ${out.searchP50Ms.avx2.toFixed(3)} ms -> ${out.searchSpeedup}x; same neighbours ${(out.sameNeighbours * 100).toFixed(1)}%`,
);
say(`insert 20k: SSE ${out.insert20kMs.sse} ms, AVX2 ${out.insert20kMs.avx2} ms -> ${out.insertSpeedup}x`);
result(out);
