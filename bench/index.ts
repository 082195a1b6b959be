/**
 * Index-building performance, all measured in this run:
 *  - raw encoder throughput (images/s on preprocessed tensors, batch 32) — the baseline;
 *  - end-to-end build throughput (files -> bundle) and its ratio to the baseline (target >= 0.85);
 *  - the ceiling decoding and encoding leave when they share the cores (1 / (1/decode + 1/encode), each measured
 *    alone on every core) and the build's steady state as a share of it (target >= 0.9);
 *  - HNSW insert rate, and recall@10 against exact search at the default efSearch, on the sample's real
 *    embeddings and on a 100k-vector set made by perturbing them;
 *  - a 100k-vector bundle write with the defaults (one shard per core) and on one core (one shard), with recall.
 *
 * `--json`: imagesPerSec, ceilingPerSec, build100kSeconds, build100kOneCoreSeconds and the recalls, one line.
 *
 * With `--config configs/base.json` the encoder is that architecture, randomly initialised (speed does not depend on
 * the weights): how the pipeline does when the encoder, not decoding, is the slow stage.
 *
 *   node --import tsx bench/index.ts [--model models/medclip-tiny | --config configs/base.json] [--images samples/corpus/images.csv [--split val]] [--n 100000]
 */
import pLimit from 'p-limit';
import { DECODE_CONCURRENCY, MedClipModel } from '../core/model/index.ts';
import { readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { readImageTable } from '../core/tables/index.ts';
import { imageToTensor } from '../core/image/index.ts';
import { Rng } from '../core/util/index.ts';
import { buildIndex } from '../index-builder/build.ts';
import { buildHnsw, DEFAULT_HNSW } from '../index-builder/bundle-writer.ts';
import { reportItems } from '../index-builder/corpus.ts';
import { existsSync, rmSync } from 'node:fs';
import { parseModelConfig } from '../train/config.ts';
import { writeRandomRun } from '../train/random-run.ts';
import { exportRun } from '../train/export.ts';
import { selectBackend } from '../train/backend.ts';
import { benchArgs } from './harness.ts';
import { buildPerturbedIndex } from './perturbed-index.ts';
import { IndexBundle } from '../core/bundle/index.ts';

const figures: Record<string, number> = {};

/** A randomly initialised bundle of an architecture (for speed only), exported once into .bench-output. */
async function untrainedModel(configFile: string): Promise<string> {
  const config = parseModelConfig(JSON.parse(await readFile(configFile, 'utf8')));
  const dir = join(here, `../.bench-output/untrained-${config.name}`);
  if (existsSync(join(dir, 'model/manifest.json'))) return join(dir, 'model');
  await selectBackend('wasm');
  const sentences: string[] = [];
  for await (const r of reportItems(args.reports!)) sentences.push(...r.sentences.map((x) => x.text));
  await writeRandomRun(join(dir, 'run'), config, sentences);
  const images: Uint8Array[] = [];
  for await (const r of readImageTable(args.images!)) if (images.length < 2) images.push(await readFile(r.file));
  await exportRun({ run: join(dir, 'run'), out: join(dir, 'model'), parityImages: images, paritySentences: sentences.slice(0, 4) });
  return join(dir, 'model');
}

const here = import.meta.dirname;
const { args, say, result } = benchArgs({
  model: { type: 'string', default: join(here, '../models/medclip-tiny') },
  images: { type: 'string', default: join(here, '../samples/corpus/images.csv') },
  reports: { type: 'string', default: join(here, '../samples/corpus/reports.csv') },
  n: { type: 'string', default: '100000' },
  threads: { type: 'string', default: '2' },
  config: { type: 'string' },
  split: { type: 'string' },
});
if (args.config) args.model = await untrainedModel(args.config);
const threads = Number(args.threads);
const model = await MedClipModel.load(args.model!, { threads });
const files: string[] = [];
for await (const r of readImageTable(args.images!, { split: args.split })) files.push(r.file);
say(`model ${model.name} (${model.imageSpec.size}px, dim ${model.embedDim}), ${files.length} images, onnxruntime threads ${threads}`);

// 1. raw encoder throughput on preprocessed tensors
const s = model.imageSpec.size;
const tensors = await Promise.all(files.map(async (f) => (await imageToTensor(await readFile(f), model.imageSpec)).data));
const batch = 32;
const embedAll = async () => {
  const out: Float32Array[] = [];
  for (let i = 0; i < tensors.length; i += batch) {
    const part = tensors.slice(i, i + batch);
    const px = new Float32Array(part.length * s * s);
    part.forEach((t, k) => px.set(t, k * s * s));
    const flat = await model.embedPixels(px, part.length);
    for (let k = 0; k < part.length; k++) out.push(flat.slice(k * model.embedDim, (k + 1) * model.embedDim));
  }
  return out;
};
await embedAll(); // warm-up
let t = performance.now();
const imageVectors = await embedAll();
const raw = (files.length * 1000) / (performance.now() - t);
say(`raw encoder:        ${raw.toFixed(1)} images/s (batch ${batch}, preprocessed tensors)`);

// 1b. decode-only throughput (read + decode + resize + normalise, 8 in flight): the other bound on a build
async function decodeAll(): Promise<void> {
  const limit = pLimit(DECODE_CONCURRENCY);
  await Promise.all(files.map((f) => limit(async () => imageToTensor(await readFile(f), model.imageSpec))));
}
await decodeAll(); // warm-up
t = performance.now();
await decodeAll();
const decodeOnly = (files.length * 1000) / (performance.now() - t);
say(`decode only:        ${decodeOnly.toFixed(1)} images/s (read + decode + resize, 8 in flight)`);

// 2. end-to-end build: files -> bundle (images only, so the two figures compare the same work)
const out = join(here, '../.bench-output/index-e2e');
await rm(out, { recursive: true, force: true });
t = performance.now();
const commits: { ms: number; done: number }[] = [];
const summary = await buildIndex({
  model: args.model!,
  images: args.images!,
  split: args.split,
  out,
  batchSize: batch,
  threads,
  onProgress: (_, done) => commits.push({ ms: performance.now() - t, done }),
});
const e2e = (summary.images.indexed * 1000) / (performance.now() - t);
// the ceiling two cores leave: decode and encode each measured alone on every core, so one image costs the sum of
// both times when they share the cores
const ceiling = 1 / (1 / raw + 1 / decodeOnly);
// after the first batch: without the model load and the pipeline filling up, which a large build amortises
const steady = commits.length > 1 ? ((commits.at(-1)!.done - commits[0]!.done) * 1000) / (commits.at(-1)!.ms - commits[0]!.ms) : e2e;
figures.imagesPerSec = steady;
figures.ceilingPerSec = ceiling;
say(
  `ceiling (decode + encode sharing the cores): ${ceiling.toFixed(1)} images/s; the build's steady state is ${(steady / ceiling).toFixed(2)} of it (target >= 0.9)`,
);
say(
  `end-to-end build:   ${e2e.toFixed(1)} images/s (${summary.images.indexed} indexed) = ${(e2e / raw).toFixed(2)} x raw encoder (target >= 0.85), ${(e2e / Math.min(raw, decodeOnly)).toFixed(2)} x the slower of decode and encode`,
);
say(
  `  steady state:     ${steady.toFixed(1)} images/s after the first batch = ${(steady / raw).toFixed(2)} x raw encoder, ${(steady / Math.min(raw, decodeOnly)).toFixed(2)} x the slower of decode and encode`,
);

// 3. HNSW insert rate and recall@10 at the default efSearch
const texts: string[] = [];
for await (const r of reportItems(args.reports!)) texts.push(...r.sentences.map((x) => x.text));
const textVectors = await model.embedTexts(texts);
const d = model.embedDim;
/** Recall@10 against exact search; a returned item counts when its score reaches the exact 10th score (ties). */
function recallAt10(base: Float32Array[], queries: Float32Array[], label: string): void {
  const n = base.length;
  const flat = new Float32Array(n * d);
  base.forEach((v, i) => flat.set(v, i * d));
  const t0 = performance.now();
  const index = buildHnsw(flat, d, 0, n, DEFAULT_HNSW);
  const insertRate = (n * 1000) / (performance.now() - t0);
  const scores = queries.map((q) => {
    const s = new Float32Array(n);
    for (let i = 0; i < n; i++) {
      let dot = 0;
      for (let k = 0; k < d; k++) dot += flat[i * d + k]! * q[k]!;
      s[i] = dot;
    }
    return s;
  });
  const top10 = scores.map((s) =>
    Array.from(s)
      .sort((a, b) => b - a)
      .slice(0, 10),
  );
  const tenth = top10.map((t) => t[9]!);
  const topMean = top10.map((t) => t.reduce((a, b) => a + b, 0) / 10);
  const row: string[] = [];
  for (const ef of [64, DEFAULT_HNSW.efSearch, 256, 400]) {
    index.setEf(ef);
    let hits = 0;
    let shortfall = 0;
    const ts = performance.now();
    const found = queries.map((q) => index.searchKnn(Array.from(q), 10).neighbors);
    const ms = (performance.now() - ts) / queries.length;
    found.forEach((neighbors, i) => {
      hits += neighbors.filter((g) => scores[i]![g]! >= tenth[i]! - 1e-6).length;
      // how much worse the returned ten are than the true ten, in cosine similarity (0 = as good)
      shortfall += (topMean[i]! - neighbors.reduce((sum, g) => sum + scores[i]![g]!, 0) / 10) / queries.length;
    });
    row.push(
      `efSearch ${ef}${ef === DEFAULT_HNSW.efSearch ? ' (default)' : ''}: recall@10 ${(hits / (queries.length * 10)).toFixed(4)}, mean top-10 cosine ${shortfall.toFixed(5)} below exact, ${ms.toFixed(3)} ms/query`,
    );
  }
  say(
    `${label}: ${n} vectors, insert ${insertRate.toFixed(0)} vectors/s (M ${DEFAULT_HNSW.M}, efConstruction ${DEFAULT_HNSW.efConstruction})\n  ${row.join('\n  ')}`,
  );
}
const sampleBase = [...imageVectors, ...textVectors];
const rng = new Rng(7);
const gauss = () => Math.sqrt(-2 * Math.log(Math.max(rng.next(), 1e-12))) * Math.cos(2 * Math.PI * rng.next());
const perturb = (v: Float32Array, sigma: number) => {
  const o = Float32Array.from(v, (x) => x + sigma * gauss());
  const norm = Math.hypot(...o);
  return o.map((x) => x / norm);
};
const textQueries = textVectors.filter((_, i) => i % Math.max(1, Math.floor(textVectors.length / 200)) === 0).slice(0, 200);
recallAt10(
  sampleBase,
  textQueries.map((q) => perturb(q, 0.02)),
  'sample (real embeddings)',
);
const big = Number(args.n);
const bigBase = Array.from({ length: big }, (_, i) => perturb(sampleBase[i % sampleBase.length]!, 0.03));
recallAt10(
  bigBase,
  textQueries.slice(0, 100).map((q) => perturb(q, 0.05)),
  `perturbed set`,
);
// 4. a 100k-vector bundle written with the defaults (shards sized for every core) and on one core (one shard): the
// whole write (HNSW, text anchors, metadata, hashes), and each bundle's recall@10 for image queries against exact
{
  const sample = join(here, '../indexes/sample');
  const timeWrite = async (dir: string, shardSize?: number) => {
    const t0 = performance.now();
    await buildPerturbedIndex(model, sample, big, dir, 0.03, shardSize ? { shardSize } : {});
    return (performance.now() - t0) / 1000;
  };
  const dirs = { defaults: join(here, '../.bench-output/build-100k'), oneCore: join(here, '../.bench-output/build-100k-1core') };
  figures.build100kSeconds = await timeWrite(dirs.defaults);
  figures.build100kOneCoreSeconds = await timeWrite(dirs.oneCore, big);
  const recall: Record<string, number> = {};
  for (const [name, dir] of Object.entries(dirs)) {
    const bundle = await IndexBundle.load(dir, { model });
    const entries = [...bundle.entries('images')];
    const queryRows = entries.filter((_, i) => i % 997 === 0).slice(0, 100);
    let hit = 0;
    for (const q of queryRows) {
      const query = perturb(q.vector, 0.05);
      const exact = entries
        .map((e) => {
          let dot = 0;
          for (let k = 0; k < d; k++) dot += e.vector[k]! * query[k]!;
          return dot;
        })
        .sort((a, b) => b - a)[9]!;
      hit += bundle.search('images', query, { k: 10 }).filter((h) => h.score >= exact - 1e-5).length;
    }
    recall[name] = hit / (10 * queryRows.length);
    figures[`shards_${name}`] = bundle.manifest.collections.images!.shards.length;
  }
  figures.recall100k = recall.defaults!;
  figures.recall100kOneCore = recall.oneCore!;
  for (const dir of Object.values(dirs)) rmSync(dir, { recursive: true, force: true });
  say(
    `100k-vector bundle write: defaults ${figures.build100kSeconds.toFixed(1)} s (${figures.shards_defaults} shards, recall@10 ${recall.defaults!.toFixed(3)}) vs one core ${figures.build100kOneCoreSeconds.toFixed(1)} s (one shard, recall@10 ${recall.oneCore!.toFixed(3)}) = ${(figures.build100kOneCoreSeconds / figures.build100kSeconds).toFixed(2)}x`,
  );
}
result({
  imagesPerSec: figures.imagesPerSec,
  ceilingPerSec: figures.ceilingPerSec,
  ofCeiling: figures.imagesPerSec! / figures.ceilingPerSec!,
  rawEncoderPerSec: raw,
  decodePerSec: decodeOnly,
  build100kSeconds: figures.build100kSeconds,
  build100kOneCoreSeconds: figures.build100kOneCoreSeconds,
  shards100k: figures.shards_defaults,
  recall100k: figures.recall100k,
  recall100kOneCore: figures.recall100kOneCore,
});
await model.close();
