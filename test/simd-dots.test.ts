// The SIMD inner-product kernel of exact scans (core/util/simd-dots.ts) against a float64 JavaScript reference on
// seeded vectors, and exact top-k over a real HNSW file against brute force.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import { hnswlib, StoredVectors } from '../core/bundle/index.ts';
import { Rng, SimdDots, simdDotsSupported } from '../core/util/index.ts';
import { outputDir } from './helpers/paths.ts';

const dir = outputDir('simd-dots');

function seeded(n: number, dim: number, seed: number): Float32Array {
  const rng = new Rng(seed);
  return Float32Array.from({ length: n * dim }, () => rng.uniform(-1, 1));
}

test('SIMD dots equal a float64 reference for every dimension the kernel takes, any positions, and grow as scans do', () => {
  assert.ok(simdDotsSupported(128), 'Node runs WebAssembly SIMD');
  assert.equal(SimdDots.create(100, 10), undefined, 'a dimension that is not a multiple of 16 falls back to JavaScript');
  for (const dim of [16, 32, 128, 512, 768, 1024]) {
    const n = 300;
    const data = seeded(n, dim, dim);
    const kernel = SimdDots.create(dim, n)!;
    kernel.vectors.set(data);
    const rng = new Rng(dim + 1);
    for (const m of [0, 1, 7, n, 3 * n]) {
      const query = Float32Array.from({ length: dim }, () => rng.uniform(-1, 1));
      const positions = Int32Array.from({ length: m }, () => rng.int(n));
      const got = kernel.scan(query, positions);
      assert.equal(got.length, m);
      positions.forEach((p, j) => {
        let ref = 0;
        for (let d = 0; d < dim; d++) ref += data[p * dim + d]! * query[d]!;
        assert.ok(Math.abs(got[j]! - ref) < 1e-4 * Math.sqrt(dim), `dim ${dim} m ${m} row ${p}: ${got[j]} vs ${ref}`);
      });
    }
    // the vectors survive the scratch memory growing
    assert.deepEqual(kernel.vectors.subarray(0, dim), data.subarray(0, dim));
  }
});

test('exact top-k over a real HNSW file equals brute force, ties broken by the smaller label', () => {
  const dim = 128;
  const n = 2000;
  const data = seeded(n, dim, 5);
  // duplicates: rows 10 and 1500 equal row 3, so ties must resolve by label
  data.copyWithin(10 * dim, 3 * dim, 4 * dim);
  data.copyWithin(1500 * dim, 3 * dim, 4 * dim);
  const index = new hnswlib.HierarchicalNSW('ip', dim);
  index.initIndex(n, 16, 100, 1);
  for (let i = 0; i < n; i++) index.addPoint(Array.from(data.subarray(i * dim, (i + 1) * dim)), i);
  const file = join(dir, 'vectors.hnsw');
  index.writeIndexSync(file);
  const stored = StoredVectors.read(file, dim);
  assert.ok(stored.usesSimd);
  const rng = new Rng(9);
  for (let q = 0; q < 20; q++) {
    const query = q === 0 ? data.slice(3 * dim, 4 * dim) : Float32Array.from({ length: dim }, () => rng.uniform(-1, 1));
    const allowed = new Uint8Array(n);
    for (let i = 0; i < n; i++) allowed[i] = rng.next() < 0.3 || i === 3 || i === 10 || i === 1500 ? 1 : 0;
    const count = allowed.reduce((a, b) => a + b, 0);
    const got = stored.topK(query, 10, stored.positionsOf(allowed, count));
    const brute = [...Array(n).keys()]
      .filter((i) => allowed[i])
      .map((i) => {
        let s = 0;
        for (let d = 0; d < dim; d++) s += data[i * dim + d]! * query[d]!;
        return { i, s };
      })
      .sort((a, b) => b.s - a.s || a.i - b.i)
      .slice(0, 10);
    assert.deepEqual(
      got.labels.slice(0, 3),
      brute.slice(0, 3).map((b) => b.i),
      `query ${q}`,
    );
    assert.deepEqual(new Set(got.labels), new Set(brute.map((b) => b.i)), `query ${q}`);
    if (q === 0) assert.deepEqual(got.labels.slice(0, 3), [3, 10, 1500]);
  }
});
