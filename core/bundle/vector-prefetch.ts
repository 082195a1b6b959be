/**
 * The exact scans' vectors read while the bundle loads: a worker thread reads each image shard's HNSW file and packs
 * its vectors and labels (what `StoredVectors.read` does on this thread at the first text query), while this thread
 * has hnswlib read the same files. On a machine with a second core the ~35 ms per 50k-vector shard disappears from
 * the cold start; on one core it moves from the first query into the load. A failure only means the vectors are read
 * on first use, as without it.
 */
import { Worker } from 'node:worker_threads';

export interface PackedVectors {
  packed: Float32Array;
  labels: Uint32Array;
}

// Self-contained source (no module resolution): runs the same from the repository and from a Lambda bundle. The
// layout is hnswlib's (core/bundle/hnsw-file.ts): u64 count at 16, bytes per record at 24, label offset at 32, vector
// offset at 40, records from byte 96.
const WORKER_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads');
const fs = require('node:fs');
for (const { file, dim } of workerData) {
  try {
    const bytes = fs.readFileSync(file);
    const u64 = (o) => Number(bytes.readBigUInt64LE(o));
    const count = u64(16), per = u64(24), labelAt = u64(32), dataAt = u64(40);
    if (96 + count * per > bytes.length) throw new Error('truncated');
    const packed = new Float32Array(count * dim);
    const labels = new Uint32Array(count);
    const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    // a large file's Buffer is its own allocation: 4-byte aligned, its floats read in place
    const f32 = bytes.byteOffset % 4 === 0 && per % 4 === 0 && dataAt % 4 === 0 ? new Float32Array(bytes.buffer, bytes.byteOffset, bytes.byteLength >> 2) : undefined;
    for (let i = 0; i < count; i++) {
      const record = 96 + i * per;
      if (bytes.readUInt32LE(record + labelAt + 4) !== 0) throw new Error('label beyond 2^32');
      labels[i] = bytes.readUInt32LE(record + labelAt);
      const to = i * dim;
      if (f32) {
        const from = (record + dataAt) >> 2;
        for (let d = 0; d < dim; d++) packed[to + d] = f32[from + d];
      } else for (let d = 0; d < dim; d++) packed[to + d] = view.getFloat32(record + dataAt + 4 * d, true);
    }
    parentPort.postMessage({ file, packed, labels }, [packed.buffer, labels.buffer]);
  } catch (err) {
    parentPort.postMessage({ file, error: String(err && err.message) });
  }
}
`;

/** Start reading the shards' vectors on a worker thread; one promise per file (undefined when it could not). */
export function prefetchVectors(files: { file: string; dim: number }[]): Map<string, Promise<PackedVectors | undefined>> {
  const out = new Map<string, Promise<PackedVectors | undefined>>();
  const pending = new Map<string, (v: PackedVectors | undefined) => void>();
  for (const f of files) out.set(f.file, new Promise((resolve) => pending.set(f.file, resolve)));
  const settleAll = () => {
    for (const resolve of pending.values()) resolve(undefined);
    pending.clear();
  };
  try {
    const worker = new Worker(WORKER_SOURCE, { eval: true, workerData: files });
    worker.on('message', (m: { file: string; packed?: Float32Array; labels?: Uint32Array }) => {
      pending.get(m.file)?.(m.packed && m.labels ? { packed: m.packed, labels: m.labels } : undefined);
      pending.delete(m.file);
    });
    worker.on('error', settleAll);
    worker.on('exit', settleAll);
  } catch {
    settleAll();
  }
  return out;
}
