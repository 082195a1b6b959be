/**
 * Filtered search at 100k vectors: for filters of decreasing selectivity, p50 of an exact scan of the allowed
 * vectors and of HNSW with the filter, HNSW's recall@10 against the exact answer, and what the planner picks.
 * Sets the planner's exact-scan limits (core/bundle/shard.ts). Ratios are measured in one run; each filter's planner
 * p50 is printed beside a SIMD exact scan of a packed copy of its allowed vectors (the floor, `simdScanP50Ms`).
 *
 *   npm run bench:filters [-- --n 100000 --queries 200 --json]
 */
import { cpSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  EXACT_SCAN_MAX_ALLOWED,
  SIMD_EXACT_SCAN_MAX_ALLOWED,
  IndexBundle,
  type IndexManifest,
  type SearchFilter,
  hnswlib,
  currentVersionSync,
  StoredVectors,
  FilterBitsets,
} from '../core/bundle/index.ts';
import { SimdDots } from '../core/util/index.ts';
import { MedClipModel } from '../core/model/index.ts';
import { buildPerturbedIndex } from './perturbed-index.ts';
import { benchArgs, p50, median, percentile } from './harness.ts';

const here = import.meta.dirname;
const { args } = benchArgs({
  n: { type: 'string', default: '100000' },
  queries: { type: 'string', default: '200' },
});
const n = Number(args.n);
const model = await MedClipModel.load(join(here, '../models/medclip-tiny'));
const dir = join(here, '../.bench-output', `filters-${n}`);
// (re)built when missing or written before filter bitsets existed
const live = currentVersionSync(dir, 'manifest.json');
if (!live || !readFileSync(join(live, 'manifest.json'), 'utf8').includes('"filters"'))
  await buildPerturbedIndex(model, join(here, '../indexes/sample'), n, dir);

// The first filtered query after a load: with the bundle's filter bitsets, and with the same bundle whose manifest
// names none (the filter then reads every metadata line), each a fresh load, alternated over 3 rounds.
const noBits = join(here, '../.bench-output', `filters-${n}-no-bitsets`);
rmSync(noBits, { recursive: true, force: true });
cpSync(currentVersionSync(dir, 'manifest.json')!, noBits, { recursive: true });
const m = JSON.parse(readFileSync(join(noBits, 'manifest.json'), 'utf8')) as IndexManifest;
for (const c of Object.values(m.collections)) for (const sh of c!.shards) delete sh.filters;
writeFileSync(join(noBits, 'manifest.json'), JSON.stringify(m));
const [probe] = await model.embedTexts(['pleural effusion']);
const firstFiltered: Record<'bitsets' | 'metadata', number[]> = { bitsets: [], metadata: [] };
for (let round = 0; round < 3; round++)
  for (const [name, where] of [
    ['bitsets', dir],
    ['metadata', noBits],
  ] as const) {
    const fresh = await IndexBundle.load(where, { model });
    const t = performance.now();
    fresh.search('images', probe!, { k: 10, filter: { must: ['Pleural Effusion'] } });
    firstFiltered[name].push(performance.now() - t);
  }
const coldBits = median(firstFiltered.bitsets);
const coldMeta = median(firstFiltered.metadata);
if (!args.json)
  console.log(
    `first filtered query after a load: ${coldBits.toFixed(1)} ms with filter bitsets vs ${coldMeta.toFixed(1)} ms reading the metadata (${(coldMeta / coldBits).toFixed(1)}x)`,
  );
rmSync(noBits, { recursive: true, force: true });
const index = await IndexBundle.load(dir, { model });
// the graphs are walked in place (mapped) until hnswlib-node's copies, read from the first search on, take over
index.search('images', probe!, { k: 10 });
await new Promise((resolve) => setTimeout(resolve, 1000));
const mappedOnly = await IndexBundle.load(dir, { model, graphs: 'mapped' });
const texts = [
  'pneumonia',
  'normal chest',
  'pleural effusion',
  'cardiomegaly',
  'atelectasis',
  'no acute disease',
  'right lower lobe opacity',
  'edema',
];
const queries = await model.embedTexts(Array.from({ length: Number(args.queries) }, (_, i) => texts[i % texts.length]!));
const filters: [string, SearchFilter][] = [
  ['must No Finding', { must: ['No Finding'] }],
  ['must Pneumonia', { must: ['Pneumonia'] }],
  ['source nih', { source: ['nih'] }],
  ['must Pleural Effusion', { must: ['Pleural Effusion'] }],
  ['must Cardiomegaly', { must: ['Cardiomegaly'] }],
  ['must Edema + Effusion', { must: ['Edema', 'Pleural Effusion'] }],
];
type Plan = 'exact' | 'hnsw' | 'auto';
const PLANS: Plan[] = ['exact', 'hnsw', 'auto'];
/** All queries by one plan in a block (a block of slow HNSW searches would otherwise evict the next plan's data
 * from the caches), the blocks' order rotating over `rounds` passes so that drift falls on every plan alike: p50 per
 * plan and each plan's answers (ids) from the last pass. */
const time = (filter: SearchFilter, rounds = 3) => {
  const t: Record<Plan, number[]> = { exact: [], hnsw: [], auto: [] };
  const samples = t;
  const out: Record<Plan, string[][]> = { exact: [], hnsw: [], auto: [] };
  for (let round = 0; round < rounds; round++)
    for (let j = 0; j < PLANS.length; j++) {
      const plan = PLANS[(j + round) % PLANS.length]!;
      queries.forEach((q, i) => {
        const t0 = performance.now();
        const ids = index.search('images', q, { k: 10, filter, plan, crossModal: true }).map((h) => h.meta.id);
        t[plan].push(performance.now() - t0);
        out[plan][i] = ids;
      });
    }
  return Object.fromEntries(
    PLANS.map((plan) => [plan, { p50: p50(samples[plan]), p99: percentile(samples[plan], 0.99), out: out[plan] }]),
  ) as Record<Plan, { p50: number; p99: number; out: string[][] }>;
};

/**
 * The floor: a SIMD exact scan over a packed copy of just the allowed vectors (the kernel of core/util/simd-dots.ts
 * reading a contiguous copy made outside the timing, in order) and a top-10 pass over its scores; no metadata, no hits.
 */
const liveDir = currentVersionSync(dir, 'manifest.json')!;
const shardFiles = index.manifest.collections.images!.shards.map((sh) => ({
  stored: StoredVectors.read(join(liveDir, sh.file), index.manifest.collections.images!.dim),
  bitsets: FilterBitsets.parse(readFileSync(join(liveDir, sh.filters!), 'utf8')),
}));
function simdFloor(filter: SearchFilter): number {
  // every shard's allowed vectors in one packed copy
  const parts = shardFiles.map(({ stored, bitsets }) => {
    const list = bitsets.allowed(filter);
    return stored.packedRows(
      stored.positionsOf(
        list,
        list.reduce((a, b) => a + b, 0),
      ),
    );
  });
  const dim = shardFiles[0]!.stored.dim;
  const count = parts.reduce((a, p) => a + p.length / dim, 0);
  const kernel = SimdDots.create(dim, count)!;
  let at = 0;
  for (const p of parts) {
    kernel.vectors.set(p, at);
    at += p.length;
  }
  const best = new Float32Array(10);
  const times: number[] = [];
  for (let round = 0; round < 3; round++)
    for (const q of queries) {
      const t0 = performance.now();
      const scores = kernel.scanAll(q);
      best.fill(-Infinity);
      for (let j = 0; j < scores.length; j++) {
        const s = scores[j]!;
        if (s <= best[9]!) continue;
        let c = 9;
        while (c > 0 && best[c - 1]! < s) {
          best[c] = best[c - 1]!;
          c--;
        }
        best[c] = s;
      }
      times.push(performance.now() - t0);
    }
  return p50(times);
}
const rows: {
  name: string;
  allowed: number;
  p50Ms: number;
  p99Ms: number;
  simdScanP50Ms: number;
  exactScanP50Ms: number;
  hnswFilterP50Ms: number;
  recall: number;
}[] = [];
for (const [name, filter] of filters) {
  time(filter, 1); // warm: allow-list and stored vectors
  const allowed = index.search('images', queries[0]!, { k: n, filter, plan: 'exact' }).length;
  const { exact, hnsw, auto } = time(filter);
  let hit = 0;
  let total = 0;
  hnsw.out.forEach((ids, i) => {
    const truth = new Set(exact.out[i]);
    total += truth.size;
    hit += ids.filter((id) => truth.has(id)).length;
  });
  const recallAuto = auto.out.reduce((s, ids, i) => s + ids.filter((id) => exact.out[i]!.includes(id)).length, 0) / Math.max(1, total);
  const floor = simdFloor(filter);
  rows.push({
    name,
    allowed,
    p50Ms: auto.p50,
    p99Ms: auto.p99,
    simdScanP50Ms: floor,
    exactScanP50Ms: exact.p50,
    hnswFilterP50Ms: hnsw.p50,
    recall: recallAuto,
  });
  if (!args.json)
    console.log(
      `${name.padEnd(24)} allowed ${String(allowed).padStart(6)} (${((100 * allowed) / n).toFixed(1)}%): exact ${exact.p50.toFixed(4)} ms, HNSW+filter ${hnsw.p50.toFixed(3)} ms (recall ${(hit / Math.max(1, total)).toFixed(3)}), planner p50 ${auto.p50.toFixed(4)} ms p99 ${auto.p99.toFixed(3)} ms, recall ${recallAuto.toFixed(3)}; SIMD scan of a packed copy ${floor.toFixed(4)} ms: planner ${(auto.p50 / floor).toFixed(2)}x`,
    );
}
// unfiltered text -> images, alternating: the default (native walks once read) and the graphs walked in place only
const unfilteredTimes: number[] = [];
const mappedTimes: number[] = [];
for (let round = 0; round < 3; round++)
  for (const q of queries) {
    let t0 = performance.now();
    index.search('images', q, { k: 10, crossModal: true });
    unfilteredTimes.push(performance.now() - t0);
    t0 = performance.now();
    mappedOnly.search('images', q, { k: 10, crossModal: true });
    mappedTimes.push(performance.now() - t0);
  }
const unfiltered = p50(unfilteredTimes);
const unfilteredMapped = p50(mappedTimes);
// hnswlib-node alone on the same shard file and queries, at the bundle's efSearch (no anchors: lower recall for
// text queries, which is what the anchors add)
const manifest = index.manifest;
const images = manifest.collections.images!;
const raw = new hnswlib.HierarchicalNSW('ip', images.dim);
raw.readIndexSync(join(currentVersionSync(dir, 'manifest.json')!, images.shards[0]!.file));
raw.setEf(images.efSearch);
const rawIds = readFileSync(join(currentVersionSync(dir, 'manifest.json')!, images.shards[0]!.meta), 'utf8')
  .split('\n')
  .filter(Boolean)
  .map((line) => (JSON.parse(line) as { id: string }).id);
const unfilteredIds = queries.map((q) => index.search('images', q, { k: 10, crossModal: true }).map((h) => h.meta.id));
let rawHit = 0;
const rawP50 = p50(
  queries.map((q, i) => {
    const plain = Array.from(q);
    const t0 = performance.now();
    const r = raw.searchKnn(plain, 10);
    const ms = performance.now() - t0;
    rawHit += r.neighbors.filter((label) => unfilteredIds[i]!.includes(rawIds[label]!)).length;
    return ms;
  }),
);
const rawRecall = rawHit / (10 * queries.length);
if (args.json)
  console.log(
    JSON.stringify({
      filters: rows,
      unfilteredP50Ms: unfiltered,
      unfilteredMappedP50Ms: unfilteredMapped,
      rawHnswP50Ms: rawP50,
      rawHnswRecall: rawRecall,
      exactScanMaxAllowed: shardFiles[0]!.stored.usesSimd ? SIMD_EXACT_SCAN_MAX_ALLOWED : EXACT_SCAN_MAX_ALLOWED,
      firstFilteredMs: { bitsets: coldBits, metadata: coldMeta },
    }),
  );
else {
  console.log(
    `unfiltered p50 ${unfiltered.toFixed(2)} ms (graphs walked in place only: ${unfilteredMapped.toFixed(2)} ms); exact scan up to ${shardFiles[0]!.stored.usesSimd ? SIMD_EXACT_SCAN_MAX_ALLOWED : EXACT_SCAN_MAX_ALLOWED} allowed items per shard`,
  );
  console.log(
    `raw hnswlib-node, same file and text queries, ef ${images.efSearch}: p50 ${rawP50.toFixed(2)} ms, recall@10 ${rawRecall.toFixed(3)} against the bundle's answers`,
  );
}
await model.close();
