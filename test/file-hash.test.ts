// core/file-hash: digests on this thread and on a worker thread agree with hashing the whole file at once.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { FileHashError, hashFileSync, hashFiles } from '../core/util/index.ts';
import { NIH_PNG, IU_REPORTS, outputDir } from './helpers/paths.ts';

const whole = (path: string) => createHash('sha256').update(readFileSync(path)).digest('hex');

test('file hashes match a one-shot sha256, across chunk boundaries, on this thread and on a worker', async () => {
  const dir = outputDir('file-hash');
  // 8 MB chunks: a file of 2 chunks + 3 bytes, built from real report text
  const big = join(dir, 'big.bin');
  const text = readFileSync(IU_REPORTS);
  const bytes = Buffer.alloc((16 << 20) + 3);
  for (let o = 0; o < bytes.length; o += text.length) text.copy(bytes, o, 0, Math.min(text.length, bytes.length - o));
  writeFileSync(big, bytes);
  const empty = join(dir, 'empty.bin');
  writeFileSync(empty, '');
  const files = [NIH_PNG, big, empty];
  for (const f of files) assert.equal(hashFileSync(f), whole(f));
  for (const worker of [false, true]) {
    const digests = hashFiles(files, { worker });
    for (const f of files) assert.equal(await digests.get(f), whole(f), `${f} (worker ${worker})`);
  }
});

test('a missing file rejects with its path and ENOENT; the other files still hash', async () => {
  const missing = join(outputDir('file-hash'), 'no-such-file.hnsw');
  assert.throws(
    () => hashFileSync(missing),
    (e: unknown) => e instanceof FileHashError && e.code === 'ENOENT' && e.path === missing,
  );
  for (const worker of [false, true]) {
    const digests = hashFiles([missing, NIH_PNG], { worker });
    await assert.rejects(digests.get(missing)!, (e: unknown) => e instanceof FileHashError && e.code === 'ENOENT');
    assert.equal(await digests.get(NIH_PNG), whole(NIH_PNG));
  }
});
