/**
 * sha256 of bundle files, read in 8 MB chunks (memory stays flat for a multi-GB index). In a worker thread the
 * hashing of a large bundle overlaps with what the main thread loads meanwhile (the model's sessions, metadata):
 * at 100k vectors that is ~150 ms off a cold start. Each file's digest resolves as soon as it is done, so a caller
 * can wait for exactly the file it is about to hand to native code.
 *
 *   const digests = hashFiles(['a.hnsw', 'a.meta.jsonl'], { worker: true });
 *   if ((await digests.get('a.hnsw')) !== expected) throw new Error('corrupted');
 */
import { createHash } from 'node:crypto';
import { closeSync, openSync, readSync } from 'node:fs';
import { Worker } from 'node:worker_threads';
import { MedclipError } from '../errors.ts';

export class FileHashError extends MedclipError {
  constructor(
    readonly path: string,
    readonly code: string,
  ) {
    super(`${path}: ${code === 'ENOENT' ? 'missing' : `cannot be read (${code})`}`, 'data');
  }
}

const CHUNK = 8 << 20;

/** sha256 (hex) of one file, on this thread. Throws `FileHashError`. */
export function hashFileSync(path: string, buffer: Buffer = Buffer.allocUnsafe(CHUNK)): string {
  let fd: number;
  try {
    fd = openSync(path, 'r');
  } catch (err) {
    throw new FileHashError(path, (err as NodeJS.ErrnoException).code ?? 'EIO');
  }
  try {
    const h = createHash('sha256');
    for (;;) {
      const n = readSync(fd, buffer, 0, buffer.length, null);
      if (n <= 0) break;
      h.update(buffer.subarray(0, n));
    }
    return h.digest('hex');
  } catch (err) {
    throw new FileHashError(path, (err as NodeJS.ErrnoException).code ?? 'EIO');
  } finally {
    closeSync(fd);
  }
}

// The worker is self-contained source (no module resolution), so it runs the same from the repository and from the
// esbuild bundle in a Lambda package.
const WORKER_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads');
const { createHash } = require('node:crypto');
const fs = require('node:fs');
const buffer = Buffer.allocUnsafe(${CHUNK});
for (const path of workerData) {
  let fd;
  try {
    fd = fs.openSync(path, 'r');
    const h = createHash('sha256');
    for (let n; (n = fs.readSync(fd, buffer, 0, buffer.length, null)) > 0; ) h.update(buffer.subarray(0, n));
    parentPort.postMessage({ path, sha256: h.digest('hex') });
  } catch (err) {
    parentPort.postMessage({ path, code: err.code || 'EIO' });
  } finally {
    if (fd !== undefined) fs.closeSync(fd);
  }
}
`;

/**
 * Start hashing `paths` (in that order); returns one promise per path. With `worker`, the reads and hashing happen
 * on a worker thread and this call returns at once; without, on this thread from the next microtask.
 */
export function hashFiles(paths: string[], options: { worker?: boolean } = {}): Map<string, Promise<string>> {
  const out = new Map<string, Promise<string>>();
  // A caller may stop at the first failure: the other promises must not become unhandled rejections.
  const guard = (p: Promise<string>) => {
    p.catch(() => {});
    return p;
  };
  if (!options.worker) {
    for (const p of paths) out.set(p, guard(Promise.resolve().then(() => hashFileSync(p))));
    return out;
  }
  const pending = new Map<string, { resolve: (h: string) => void; reject: (e: Error) => void }>();
  for (const p of paths) out.set(p, guard(new Promise<string>((resolve, reject) => pending.set(p, { resolve, reject }))));
  // Not unref'd: a process whose only pending work is this hashing must wait for it (the worker exits when done).
  const worker = new Worker(WORKER_SOURCE, { eval: true, workerData: paths });
  worker.on('message', (m: { path: string; sha256?: string; code?: string }) => {
    const p = pending.get(m.path);
    pending.delete(m.path);
    if (m.sha256) p?.resolve(m.sha256);
    else p?.reject(new FileHashError(m.path, m.code ?? 'EIO'));
  });
  const failAll = (err: Error) => {
    for (const [path, p] of pending) p.reject(new FileHashError(path, err.message));
    pending.clear();
  };
  worker.on('error', failAll);
  worker.on('exit', () => failAll(new Error('hashing worker exited early')));
  return out;
}
