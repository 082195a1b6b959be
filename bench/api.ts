/**
 * API latency and throughput on loopback (autocannon), beside the in-process time of the encoders and of the
 * raw HNSW search measured in the same run, at the sample index and at a 100k-vector index made of perturbed
 * real embeddings.
 *
 *   node --import tsx bench/api.ts [--model models/medclip-tiny] [--index indexes/sample] [--n 100000] [--seconds 10]
 */
import { parseArgs } from 'node:util';
import { readdirSync } from 'node:fs';
import { readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import autocannon from 'autocannon';
import hnswlib from 'hnswlib-node';
import { IndexBundle, type ImageMeta } from '../core/index.ts';
import { MedClipModel } from '../core/model.ts';
import { Rng } from '../core/random.ts';
import { writeBundle, DEFAULT_HNSW } from '../index-builder/bundle-writer.ts';
import { startServer } from '../api/server.ts';

const here = import.meta.dirname;
const { values: args } = parseArgs({
  options: {
    model: { type: 'string', default: join(here, '../models/medclip-tiny') },
    index: { type: 'string', default: join(here, '../indexes/sample') },
    image: { type: 'string', default: join(here, '../../shared/data/samples/fullres') },
    n: { type: 'string', default: '100000' },
    seconds: { type: 'string', default: '10' },
  },
});
const seconds = Number(args.seconds);
const model = await MedClipModel.load(args.model!);
const fullres = args.image!.endsWith('.png') ? args.image! : join(args.image!, readdirSync(args.image!).find((f) => f.endsWith('.png'))!);
const bigPng = await readFile(fullres);
const textQuery = 'right lower lobe pneumonia';

function stats(times: number[]): string {
  const s = [...times].sort((a, b) => a - b);
  const q = (p: number) => s[Math.min(s.length - 1, Math.floor(p * s.length))]!;
  return `p50 ${q(0.5).toFixed(2)} ms, p99 ${q(0.99).toFixed(2)} ms`;
}

async function timeIt(n: number, f: () => Promise<unknown> | unknown): Promise<number[]> {
  const out: number[] = [];
  for (let w = 0; w < 5; w++) await f();
  for (let r = 0; r < n; r++) {
    const t = performance.now();
    await f();
    out.push(performance.now() - t);
  }
  return out;
}

async function benchIndex(indexDir: string, label: string): Promise<void> {
  const index = await IndexBundle.load(indexDir, { model });
  const [q] = await model.embedTexts([textQuery]);
  console.log(`\n== ${label}: ${index.count('images')} images, ${index.count('reports')} sentences`);
  console.log(`raw HNSW search (images, k 10): ${stats(await timeIt(500, () => index.search('images', q!, { k: 10 })))}`);
  const server = await startServer({ model: args.model!, index: indexDir, port: 0, host: '127.0.0.1', log: () => {} });
  try {
    const cases = [
      { name: 'text -> images', path: '/v1/search/text', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ query: textQuery, target: 'images', k: 10 }) },
      { name: 'text -> reports', path: '/v1/search/text', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ query: textQuery, target: 'reports', k: 10 }) },
      { name: 'image -> reports (1024 px PNG)', path: '/v1/search/image?target=reports&k=10', headers: { 'content-type': 'image/png' }, body: bigPng },
    ];
    for (const c of cases.filter((x) => !x.name.includes('reports') || index.count('reports') > 0)) {
      const r = await autocannon({ url: server.url + c.path, method: 'POST', headers: c.headers, body: c.body, connections: 4, duration: seconds });
      console.log(`HTTP ${c.name}: p50 ${r.latency.p50} ms, p99 ${r.latency.p99} ms, ${r.requests.average.toFixed(0)} requests/s, non-2xx ${r.non2xx}`);
    }
  } finally {
    await server.close();
  }
}

console.log(`in-process text encoder: ${stats(await timeIt(200, () => model.embedTexts([textQuery])))}`);
console.log(`in-process image path (decode + resize + encode, ${fullres.split('/').pop()}, ${bigPng.length} bytes): ${stats(await timeIt(50, () => model.embedImages([bigPng])))}`);
await benchIndex(args.index!, 'sample index');

// 100k index: perturbed copies of the sample's real image embeddings (metadata copied, ids made unique).
const n = Number(args.n);
const metas = (await readFile(join(args.index!, 'images.meta.jsonl'), 'utf8')).trim().split('\n').map((l) => JSON.parse(l) as ImageMeta);
const stored = new hnswlib.HierarchicalNSW('ip', model.embedDim);
stored.readIndexSync(join(args.index!, 'images.hnsw'));
const real = metas.map((_, label) => stored.getPoint(label));
const rng = new Rng(11);
const gauss = () => Math.sqrt(-2 * Math.log(Math.max(rng.next(), 1e-12))) * Math.cos(2 * Math.PI * rng.next());
const d = model.embedDim;
const flat = new Float32Array(n * d);
const items: ImageMeta[] = [];
for (let i = 0; i < n; i++) {
  const src = real[i % real.length]!;
  let norm = 0;
  for (let k = 0; k < d; k++) {
    const v = src[k]! + 0.1 * gauss();
    flat[i * d + k] = v;
    norm += v * v;
  }
  norm = Math.sqrt(norm);
  for (let k = 0; k < d; k++) flat[i * d + k]! /= norm;
  const m = metas[i % metas.length]!;
  items.push({ ...m, id: `${m.id}#${i}` });
}
const bigDir = join(here, '../.bench-output/index-100k');
await rm(bigDir, { recursive: true, force: true });
const t0 = performance.now();
await writeBundle(bigDir, { model: { name: model.name, sha256: model.manifestSha256, embedDim: d }, collections: { images: { dim: d, vectors: flat, items } }, errors: [], version: 1, hnsw: DEFAULT_HNSW });
console.log(`\nbuilt a ${n}-vector index in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
await benchIndex(bigDir, `${n}-vector index`);
await model.close();
