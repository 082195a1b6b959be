// Metadata line indexes (core/bundle/lazy-lines.ts): a load reads where each line starts instead of the metadata,
// a line is read by its offsets until the whole file has arrived in the background, and a wrong index is refused.
import assert from 'node:assert/strict';
import { cpSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { IndexBundle, IndexError, type IndexManifest, LazyLines, lineIndex, parseLineIndex } from '../core/bundle/index.ts';
import { sha256 } from '../core/model/index.ts';
import { buildIndex } from '../index-builder/build.ts';
import { DATA, IMAGES_CSV, IU_REPORTS, liveDir, outputDir } from './helpers/paths.ts';
import { tinyModelBundle } from './helpers/tiny-model.ts';

const dir = outputDir('line-index');

test('an indexed file reads the same lines as one held in memory, before and after the whole file arrives', async () => {
  const rows = Array.from({ length: 500 }, (_, i) => ({
    id: `img-${i}`,
    note: i % 7 === 0 ? 'épanchement pleural — ü' : 'x'.repeat(i % 40),
  }));
  const lines = rows.map((r) => JSON.stringify(r));
  const file = join(dir, 'meta.jsonl');
  writeFileSync(file, lines.map((l) => `${l}\n`).join(''));
  const index = lineIndex(lines);
  const starts = parseLineIndex(index, readFileSync(file).length, rows.length, 'meta.idx');
  const inMemory = new LazyLines<{ id: string; note: string }>(readFileSync(file), 'meta.jsonl');
  const indexed = new LazyLines<{ id: string; note: string }>({ path: file, starts }, 'meta.jsonl');
  assert.equal(indexed.length, rows.length);
  // read by offsets first (the whole file is asked for in the background by the first read)
  for (const i of [0, 7, 250, 499]) assert.deepEqual(indexed.get(i), rows[i]);
  assert.equal(indexed.get(500), undefined);
  await new Promise((resolve) => setTimeout(resolve, 50));
  for (let i = 0; i < rows.length; i++) assert.deepEqual(indexed.get(i), inMemory.get(i));
  assert.deepEqual(
    [...indexed].map((r) => r.id),
    rows.map((r) => r.id),
  );
  assert.equal(indexed.mayContain('épanchement'), true);
  assert.equal(indexed.mayContain('absent-text'), false);
  // iteration before anything was read takes the file whole at once
  const fresh = new LazyLines<{ id: string }>({ path: file, starts }, 'meta.jsonl');
  assert.equal([...fresh].length, rows.length);
});

test('a line index that does not match its metadata or the manifest is refused', () => {
  const lines = ['{"a":1}', '{"b":2}', '{"c":3}'];
  const index = lineIndex(lines);
  const size = lines.join('\n').length + 1;
  assert.deepEqual(Array.from(parseLineIndex(index, size, 3, 'm')), [0, 8, 16, 24]);
  assert.throws(
    () => parseLineIndex(index, size, 4, 'm'),
    (e: unknown) => e instanceof IndexError && /holds 3 lines, the manifest 4/.test(e.message),
  );
  assert.throws(() => parseLineIndex(index, size + 1, 3, 'm'), /does not span its metadata/);
  const bad = new Uint32Array([0, 8, 8, 24]);
  assert.throws(() => parseLineIndex(new Uint8Array(bad.buffer), size, 3, 'm'), /not increasing at line 2/);
});

test('a bundle is written with a line index per shard, answers as without it, and refuses a wrong one', async () => {
  const modelDir = await tinyModelBundle(dir);
  const rows = readFileSync(IMAGES_CSV, 'utf8').trim().split('\n');
  const table = join(dir, 'images.csv');
  writeFileSync(table, [rows[0], ...rows.filter((l) => l.includes(',val,')).slice(0, 12)].join('\n') + '\n');
  const out = join(dir, 'bundle');
  rmSync(out, { recursive: true, force: true });
  await buildIndex({ model: modelDir, images: table, root: DATA, reports: IU_REPORTS, reportSplit: 'val', out, batchSize: 8 });
  const live = liveDir(out);
  const manifest = JSON.parse(readFileSync(join(live, 'manifest.json'), 'utf8')) as IndexManifest;
  for (const c of Object.values(manifest.collections))
    for (const shard of c!.shards) {
      assert.ok(shard.metaIndex && manifest.sha256[shard.metaIndex], `${shard.meta} has a verified line index`);
      const lines = readFileSync(join(live, shard.meta), 'utf8').trim().split('\n');
      assert.deepEqual(readFileSync(join(live, shard.metaIndex)), Buffer.from(lineIndex(lines)));
    }
  // the same version without its line indexes (as written before them): read whole, the same answers
  const plain = join(dir, 'plain');
  rmSync(plain, { recursive: true, force: true });
  cpSync(live, plain, { recursive: true });
  rmSync(join(plain, '.verified.json'), { force: true });
  const old = structuredClone(manifest);
  for (const c of Object.values(old.collections))
    for (const shard of c!.shards) {
      delete old.sha256[shard.metaIndex!];
      delete shard.metaIndex;
    }
  writeFileSync(join(plain, 'manifest.json'), JSON.stringify(old));
  const [indexed, whole] = [await IndexBundle.load(out), await IndexBundle.load(plain)];
  const dim = manifest.collections.images!.dim;
  for (let q = 0; q < 5; q++) {
    const query = Float32Array.from({ length: dim }, (_, i) => Math.sin(i * (q + 1)));
    const top = (b: IndexBundle) => [
      ...b.search('images', query, { k: 5 }).map((h) => h.meta.id),
      ...b.search('reports', query, { k: 5 }).map((h) => h.meta.id),
    ];
    assert.deepEqual(top(indexed), top(whole));
  }
  assert.deepEqual(
    [...indexed.entries('images')].map((e) => e.meta.id),
    [...whole.entries('images')].map((e) => e.meta.id),
  );
  // a line index that lies about the metadata (its sha256 updated to match): refused at load
  const shard = manifest.collections.images!.shards[0]!;
  const raw = readFileSync(join(live, shard.metaIndex!));
  const wrong = new Uint32Array(raw.byteLength / 4);
  new Uint8Array(wrong.buffer).set(raw);
  wrong[wrong.length - 1]! += 1;
  const lying = join(dir, 'lying');
  rmSync(lying, { recursive: true, force: true });
  cpSync(live, lying, { recursive: true });
  rmSync(join(lying, '.verified.json'), { force: true });
  writeFileSync(join(lying, shard.metaIndex!), new Uint8Array(wrong.buffer));
  const edited = structuredClone(manifest);
  edited.sha256[shard.metaIndex!] = sha256(new Uint8Array(wrong.buffer));
  writeFileSync(join(lying, 'manifest.json'), JSON.stringify(edited));
  await assert.rejects(
    IndexBundle.load(lying),
    (e: unknown) => e instanceof IndexError && /line index does not span its metadata/.test(e.message),
  );
});
