// hnswlib index files searched where they lie (core/bundle/mapped-hnsw.ts) against hnswlib-node reading the same file:
// the same neighbours on seeded graphs (with deletions, labels out of order, filters, several M and ef), the same
// stored vectors, malformed files refused with an IndexError, and a bundle that answers from the mapped graph at once
// and from hnswlib-node's copy once it is read.
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { hnswlib, IndexBundle, IndexError, MappedHnsw } from '../core/bundle/index.ts';
import { Rng } from '../core/util/index.ts';
import { outputDir } from './helpers/paths.ts';

const dir = outputDir('mapped-hnsw');

function unitRows(n: number, dim: number, rng: Rng): Float32Array {
  const data = new Float32Array(n * dim);
  for (let i = 0; i < n; i++) {
    let norm = 0;
    for (let d = 0; d < dim; d++) {
      const v = rng.uniform(-1, 1);
      data[i * dim + d] = v;
      norm += v * v;
    }
    for (let d = 0; d < dim; d++) data[i * dim + d]! /= Math.sqrt(norm);
  }
  return data;
}

/** An hnswlib file of n seeded vectors; labels 3i + 1 when `shuffled`, every 9th item marked deleted when `deletions`. */
function writeGraph(o: { n: number; dim: number; m: number; seed: number; shuffled?: boolean; deletions?: boolean }) {
  const rng = new Rng(o.seed);
  const data = unitRows(o.n, o.dim, rng);
  const label = (i: number) => (o.shuffled ? 3 * i + 1 : i);
  const index = new hnswlib.HierarchicalNSW('ip', o.dim);
  index.initIndex(o.n, o.m, 100, o.seed);
  for (let i = 0; i < o.n; i++) index.addPoint(Array.from(data.subarray(i * o.dim, (i + 1) * o.dim)), label(i));
  const deleted = new Set<number>();
  if (o.deletions)
    for (let i = 0; i < o.n; i += 9) {
      index.markDelete(label(i));
      deleted.add(label(i));
    }
  const file = join(dir, `g-${o.n}-${o.dim}-${o.m}-${o.seed}.hnsw`);
  index.writeIndexSync(file);
  return { file, data, label, deleted, rng };
}

test('a mapped graph returns what hnswlib-node returns from the same file: deletions, shuffled labels, filters, M and ef', async () => {
  for (const c of [
    { n: 3000, dim: 32, m: 8, seed: 1, shuffled: true, deletions: true },
    { n: 2500, dim: 128, m: 16, seed: 2, deletions: false },
    { n: 2000, dim: 64, m: 24, seed: 3, shuffled: false, deletions: true },
  ]) {
    const { file, label, deleted, rng } = writeGraph(c);
    const native = new hnswlib.HierarchicalNSW('ip', c.dim);
    native.readIndexSync(file);
    const mapped = await MappedHnsw.read(file, c.dim);
    assert.ok(mapped, 'the SIMD kernel runs here');
    let same = 0;
    let total = 0;
    for (const ef of [10, 64, 200]) {
      native.setEf(ef);
      mapped.setEf(ef);
      const allowed = new Set<number>();
      for (let i = 0; i < c.n; i++) if (rng.next() < 0.3) allowed.add(label(i));
      for (let q = 0; q < 40; q++) {
        const query = unitRows(1, c.dim, rng);
        for (const filter of [undefined, (l: number) => allowed.has(l)]) {
          const a = native.searchKnn(Array.from(query), 10, filter);
          const b = mapped.searchKnn(query, 10, filter);
          assert.equal(b.neighbors.length, a.neighbors.length);
          for (const l of b.neighbors) {
            assert.ok(!deleted.has(l), `deleted label ${l} returned`);
            if (filter) assert.ok(allowed.has(l), `label ${l} not allowed by the filter`);
          }
          // closest first, with hnswlib's distances (1 - dot) up to float rounding
          for (let j = 1; j < b.distances.length; j++) assert.ok(b.distances[j]! >= b.distances[j - 1]!);
          b.neighbors.forEach((l, j) => {
            const at = a.neighbors.indexOf(l);
            if (at >= 0) assert.ok(Math.abs(a.distances[at]! - b.distances[j]!) < 1e-5);
          });
          total += a.neighbors.length;
          same += b.neighbors.filter((l) => a.neighbors.includes(l)).length;
        }
      }
    }
    assert.ok(same / total >= 0.995, `${JSON.stringify(c)}: ${same}/${total} neighbours shared with hnswlib-node`);
  }
});

test('a mapped graph gives back stored vectors as hnswlib does, and refuses deleted or unknown labels', async () => {
  const { file, data, label, deleted } = writeGraph({ n: 500, dim: 32, m: 8, seed: 4, shuffled: true, deletions: true });
  const mapped = (await MappedHnsw.read(file, 32))!;
  for (const i of [1, 2, 250, 499]) {
    assert.deepEqual(Array.from(mapped.getPoint(label(i))), Array.from(data.subarray(i * 32, (i + 1) * 32)));
  }
  assert.ok(deleted.has(label(9)));
  assert.throws(() => mapped.getPoint(label(9)), /Label not found/);
  assert.throws(() => mapped.getPoint(2), /Label not found/, 'label 2 is not in a graph labelled 3i + 1');
  // k beyond the live items: every live item, once
  mapped.setEf(600);
  const all = mapped.searchKnn(unitRows(1, 32, new Rng(5)), 500);
  assert.equal(all.neighbors.length, 500 - deleted.size);
  assert.equal(new Set(all.neighbors).size, all.neighbors.length);
  // exact scans read the same records: the stored vectors' top 1 of a stored vector is itself
  const stored = mapped.storedVectors();
  const q = data.slice(7 * 32, 8 * 32);
  assert.equal(
    stored.topK(
      q,
      1,
      Int32Array.from({ length: 500 }, (_, i) => i),
    ).labels[0],
    label(7),
  );
});

test('a malformed HNSW file is an IndexError (truncated, wrong dimension, a link past the records), never a wild read', async () => {
  const { file } = writeGraph({ n: 300, dim: 32, m: 8, seed: 6 });
  const bytes = readFileSync(file);
  const truncated = join(dir, 'truncated.hnsw');
  writeFileSync(truncated, bytes.subarray(0, bytes.length - 10));
  await assert.rejects(MappedHnsw.read(truncated, 32), (err: unknown) => err instanceof IndexError && /truncated/.test(err.message));
  await assert.rejects(MappedHnsw.read(file, 64), (err: unknown) => err instanceof IndexError && /64-dimensional/.test(err.message));
  // record 0's first link pointed past the last record
  const bad = Buffer.from(bytes);
  const perElement = Number(bad.readBigUInt64LE(24));
  for (let i = 0; i < 300; i++) bad.writeUInt32LE(1_000_000, 96 + i * perElement + 4);
  const badLinks = join(dir, 'bad-links.hnsw');
  writeFileSync(badLinks, bad);
  const mapped = (await MappedHnsw.read(badLinks, 32))!;
  assert.throws(
    () => mapped.searchKnn(unitRows(1, 32, new Rng(1)), 5),
    (err: unknown) => err instanceof IndexError && /links to element/.test(err.message),
  );
  // every record claiming more links than a list holds
  const long = Buffer.from(bytes);
  for (let i = 0; i < 300; i++) long.writeUInt16LE(0xffff, 96 + i * perElement);
  const longLists = join(dir, 'long-lists.hnsw');
  writeFileSync(longLists, long);
  const tooLong = (await MappedHnsw.read(longLists, 32))!;
  assert.throws(
    () => tooLong.searchKnn(unitRows(1, 32, new Rng(1)), 5),
    (err: unknown) => err instanceof IndexError && /malformed link list/.test(err.message),
  );
});

test('a bundle answers from its mapped graphs at once, then from hnswlib-node once its copy is read, with the same hits', async () => {
  const sample = join(import.meta.dirname, '../indexes/sample');
  const mappedOnly = await IndexBundle.load(sample, { graphs: 'mapped' });
  const native = await IndexBundle.load(sample, { graphs: 'hnswlib' });
  const both = await IndexBundle.load(sample);
  const images = (b: IndexBundle) => (b as unknown as { shards: { images: { index: object }[] } }).shards.images;
  assert.ok(images(both)[0]!.index instanceof MappedHnsw, 'mapped before the first search');
  const rng = new Rng(8);
  const dim = native.manifest.collections.images!.dim;
  const queries = Array.from({ length: 30 }, () => unitRows(1, dim, rng));
  const ids = (b: IndexBundle, q: Float32Array) => b.search('images', q, { k: 10 }).map((h) => h.meta.id);
  const first = queries.map((q) => ids(both, q));
  // the native copy is read after the first search's answer
  for (let i = 0; i < 100 && !(images(both)[0]!.index instanceof hnswlib.HierarchicalNSW); i++) await new Promise((r) => setTimeout(r, 20));
  assert.ok(images(both)[0]!.index instanceof hnswlib.HierarchicalNSW, 'hnswlib-node walks once its copy is read');
  assert.ok(!(images(mappedOnly)[0]!.index instanceof hnswlib.HierarchicalNSW), "graphs: 'mapped' never reads a copy");
  let same = 0;
  queries.forEach((q, i) => {
    const truth = ids(native, q);
    for (const got of [first[i]!, ids(both, q), ids(mappedOnly, q)]) same += got.filter((id) => truth.includes(id)).length;
  });
  assert.ok(same / (3 * 10 * queries.length) >= 0.99, `${same} of ${3 * 10 * queries.length} hits shared`);
});
