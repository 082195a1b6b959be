/**
 * A file read whole by one request to the thread pool (looping only on a short read), into a buffer of the caller's or
 * a new one. `fs.promises.readFile` reads in 512 KB pieces, each issued from this thread: while this thread is busy
 * (a model session being made, a shard being parsed) a large file's read stalls between pieces. One request runs to its
 * end on the pool meanwhile.
 */
import { open } from 'node:fs/promises';

/** The most one read call takes (libuv's limit is just under 2 GiB). */
const MAX_READ = 2 ** 30;

/** Read `path` whole, into `target` (given the file's size; it must hold it) when given: the bytes read, as a view. */
export async function readWhole(path: string): Promise<Buffer>;
export async function readWhole(path: string, target: (size: number) => Uint8Array): Promise<Uint8Array>;
export async function readWhole(path: string, target?: (size: number) => Uint8Array): Promise<Uint8Array> {
  const handle = await open(path, 'r');
  try {
    const size = (await handle.stat()).size;
    const into = target ? target(size) : Buffer.allocUnsafe(size);
    if (into.length < size) throw new RangeError(`${path}: ${size} bytes do not fit in ${into.length}`);
    let at = 0;
    while (at < size) {
      const { bytesRead } = await handle.read(into, at, Math.min(MAX_READ, size - at), at);
      if (bytesRead === 0) break; // shorter than its size: it changed while read (the caller's checks find that out)
      at += bytesRead;
    }
    return into.subarray(0, at);
  } finally {
    await handle.close();
  }
}
