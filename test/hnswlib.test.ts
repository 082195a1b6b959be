// hnswlib-node's two builds: the AVX2 one (scripts/build-hnswlib-avx2.mjs) is chosen only on a CPU with AVX2 and FMA,
// can be turned off, and answers exactly as the portable SSE build on the same index file.
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { avx2AddonPath, chooseVariant, cpuHasAvx2, HNSWLIB_VARIANT } from '../core/bundle/index.ts';
import { Rng } from '../core/util/index.ts';

const require = createRequire(import.meta.url);

test('the AVX2 build is chosen only with AVX2 and FMA, when built, unless MEDCLIP_HNSW_SIMD=sse', () => {
  assert.equal(cpuHasAvx2('flags\t\t: fpu sse sse2 avx avx2 fma bmi2\n'), true);
  assert.equal(cpuHasAvx2('flags\t\t: fpu sse sse2 avx fma\n'), false, 'AVX without AVX2');
  assert.equal(cpuHasAvx2('flags\t\t: fpu sse sse2 avx2\n'), false, 'no FMA');
  assert.equal(cpuHasAvx2(''), false);
  assert.equal(chooseVariant({ cpu: true, built: true }), 'avx2');
  assert.equal(chooseVariant({ cpu: false, built: true }), 'sse');
  assert.equal(chooseVariant({ cpu: true, built: false }), 'sse');
  assert.equal(chooseVariant({ env: 'sse', cpu: true, built: true }), 'sse');
  assert.equal(chooseVariant({ env: 'auto', cpu: true, built: true }), 'avx2');
  assert.equal(chooseVariant({ env: 'avx512', cpu: true, built: true }), 'sse', 'an unknown value: the portable build');
  assert.equal(
    HNSWLIB_VARIANT,
    chooseVariant({ env: process.env.MEDCLIP_HNSW_SIMD, cpu: cpuHasAvx2(), built: existsSync(avx2AddonPath()) }),
  );
});

test('both builds read the same index file and return the same neighbours', {
  skip: !existsSync(avx2AddonPath()) && 'no AVX2 build here',
}, () => {
  type Lib = typeof import('hnswlib-node');
  const sse = require('hnswlib-node') as Lib;
  const avx = require(avx2AddonPath()) as Lib;
  const dim = 64;
  const rng = new Rng(7);
  const random = () => rng.next();
  const unit = () => {
    const v = Array.from({ length: dim }, () => random() - 0.5);
    const n = Math.hypot(...v);
    return v.map((x) => x / n);
  };
  const built = new sse.HierarchicalNSW('ip', dim);
  built.initIndex(2000, 16, 100, 1);
  for (let i = 0; i < 2000; i++) built.addPoint(unit(), i);
  const file = join(mkdtempSync(join(tmpdir(), 'medclip-hnsw-')), 'x.hnsw');
  built.writeIndexSync(file);
  const a = new sse.HierarchicalNSW('ip', dim);
  a.readIndexSync(file);
  const b = new avx.HierarchicalNSW('ip', dim);
  b.readIndexSync(file);
  for (const ix of [a, b]) ix.setEf(64);
  if (!cpuHasAvx2()) return; // the AVX2 code cannot run here
  for (let q = 0; q < 100; q++) {
    const query = unit();
    const x = a.searchKnn(query, 10);
    const y = b.searchKnn(query, 10);
    assert.deepEqual(y.neighbors, x.neighbors);
    y.distances.forEach((d, i) => assert.ok(Math.abs(d - x.distances[i]!) < 1e-5));
  }
});

test('shards built on worker threads are the very files built one after another in process', async () => {
  const { buildHnsw, buildShardFiles } = await import('../index-builder/hnsw-build.ts');
  const { readFileSync } = await import('node:fs');
  const dim = 32;
  const n = 3000;
  const rng = new Rng(3);
  const vectors = new Float32Array(n * dim).map(() => rng.next() - 0.5);
  const params = { M: 8, efConstruction: 50, efSearch: 50, shardSize: 1000, seed: 100 };
  const deleted = (i: number) => i % 97 === 0;
  const dir = mkdtempSync(join(tmpdir(), 'medclip-shards-'));
  const jobs = [0, 1, 2].map((s) => ({ from: s * 1000, to: (s + 1) * 1000, file: join(dir, `images.${s}.hnsw`) }));
  await buildShardFiles(vectors, dim, jobs, params, deleted, 2);
  for (const job of jobs) {
    const sequential = join(dir, `seq-${job.from}.hnsw`);
    buildHnsw(vectors, dim, job.from, job.to, params, deleted).writeIndexSync(sequential);
    assert.ok(readFileSync(job.file).equals(readFileSync(sequential)), `${job.file} differs`);
  }
});
