// The verified-at-write marker: a version folder whose files were hashed when written (or fetched, or first loaded)
// is not hashed again on the next load, and any change to a file, or a copy of the folder, brings the hashing back.
import assert from 'node:assert/strict';
import { cpSync, existsSync, openSync, readFileSync, rmSync, statSync, utimesSync, writeSync, closeSync } from 'node:fs';
import { join } from 'node:path';
import { before, test } from 'node:test';
import { IndexBundle, VERIFIED_MARKER, currentVersionSync, markerMatches } from '../core/bundle/index.ts';
import { outputDir } from './helpers/paths.ts';
import { tinyIndexBundle } from './helpers/tiny-model.ts';

const dir = outputDir('verified-marker');
let indexDir: string;

before(async () => {
  ({ indexDir } = await tinyIndexBundle(dir, { images: 12 }));
});

/** Overwrite one byte in place, then put the modification time back (a change that keeps size and mtime). */
function flipKeepingTime(file: string, at: number): void {
  const { atime, mtime } = statSync(file);
  const fd = openSync(file, 'r+');
  const byte = Buffer.alloc(1);
  byte[0] = readFileSync(file)[at]! ^ 0xff;
  writeSync(fd, byte, 0, 1, at);
  closeSync(fd);
  utimesSync(file, atime, mtime);
}

test('the writer vouches for what it wrote; a changed file or a copied folder is hashed again and refused', async () => {
  const live = currentVersionSync(indexDir, 'manifest.json')!;
  assert.ok(existsSync(join(live, VERIFIED_MARKER)), 'the bundle writer left a marker');
  const manifest = JSON.parse(readFileSync(join(live, 'manifest.json'), 'utf8')) as { sha256: Record<string, string> };
  const names = Object.keys(manifest.sha256);
  assert.ok(await markerMatches(live, names));
  await IndexBundle.load(indexDir);

  // a copy of the folder (new inodes) with a byte changed but size and mtime kept: the marker does not vouch for it
  const copy = join(dir, 'copy');
  rmSync(copy, { recursive: true, force: true });
  cpSync(live, copy, { recursive: true, preserveTimestamps: true });
  const meta = names.find((n) => n.endsWith('.meta.jsonl'))!;
  flipKeepingTime(join(copy, meta), 5);
  assert.equal(await markerMatches(copy, names), false);
  await assert.rejects(IndexBundle.load(copy), /does not match its sha256/);

  // in place, an ordinary write (the modification time moves): hashed again and refused
  const original = readFileSync(join(live, meta));
  const fd = openSync(join(live, meta), 'r+');
  writeSync(fd, Buffer.from([original[5]! ^ 0xff]), 0, 1, 5);
  closeSync(fd);
  utimesSync(join(live, meta), new Date(), new Date(Date.now() + 5000));
  assert.equal(await markerMatches(live, names), false);
  await assert.rejects(IndexBundle.load(indexDir), /does not match its sha256/);
  // put back: a full verification passes and writes a fresh marker
  const fd2 = openSync(join(live, meta), 'r+');
  writeSync(fd2, original, 0, original.length, 0);
  closeSync(fd2);
  rmSync(join(live, VERIFIED_MARKER));
  await IndexBundle.load(indexDir);
  assert.ok(existsSync(join(live, VERIFIED_MARKER)));
  assert.ok(await markerMatches(live, [meta, names.find((n) => n.endsWith('.hnsw'))!]), 'a load that verified its files leaves a marker');
});

test('vectors read ahead on a worker thread answer exactly as vectors read at the first query, and as mapped graphs', async () => {
  // read ahead only where hnswlib-node reads the graphs (a mapped graph's records are the exact scans' vectors)
  const ahead = await IndexBundle.load(indexDir, { prefetchVectors: true, graphs: 'hnswlib' });
  const lazy = await IndexBundle.load(indexDir, { prefetchVectors: false, graphs: 'hnswlib' });
  const mapped = await IndexBundle.load(indexDir, { graphs: 'mapped' });
  const [first] = [...lazy.entries('images')];
  const query = first!.vector;
  for (const options of [
    { k: 5, crossModal: true },
    { k: 5, filter: { source: ['nih'] }, plan: 'exact' as const },
    { k: 5, filter: { source: ['kermany', 'nih'] } },
  ]) {
    for (let round = 0; round < 2; round++) {
      // twice: the second use of a filter scans its packed copy
      const a = ahead.search('images', query, options).map((h) => [h.meta.id, h.score.toFixed(6)]);
      const b = lazy.search('images', query, options).map((h) => [h.meta.id, h.score.toFixed(6)]);
      assert.deepEqual(a, b, JSON.stringify(options));
      assert.deepEqual(
        mapped.search('images', query, options).map((h) => [h.meta.id, h.score.toFixed(6)]),
        a,
        JSON.stringify(options),
      );
      assert.ok(a.length > 0);
    }
  }
});
