/**
 * hnswlib index files read directly: the header (dimension, count), and whether a file is whole.
 */
import { closeSync, openSync, readSync } from 'node:fs';
import { IndexError } from './manifest.ts';

/** The level-0 layout an hnswlib file's header gives: element count and capacity, the bytes of one level-0 record, and
 * where in a record the vector and the label sit. */
export interface HnswLayout {
  maxElements: number;
  count: number;
  perElement: number;
  labelOffset: number;
  offsetData: number;
}

export function hnswLayout(bytes: Uint8Array): HnswLayout {
  if (bytes.length < 96) throw new IndexError('HNSW file is too short to hold a header');
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const u64 = (o: number) => Number(view.getBigUint64(o, true));
  return { maxElements: u64(8), count: u64(16), perElement: u64(24), labelOffset: u64(32), offsetData: u64(40) };
}

/** Read the dimension and element count from an hnswlib index file's header. */
export function hnswHeader(bytes: Uint8Array): { dim: number; count: number; maxElements: number } {
  const { maxElements, count, labelOffset, offsetData } = hnswLayout(bytes);
  const dim = (labelOffset - offsetData) / 4;
  if (!Number.isInteger(dim) || dim <= 0 || count > maxElements) throw new IndexError('HNSW file header is not valid');
  return { dim, count, maxElements };
}

/**
 * Whether an hnswlib index file is whole: the 96-byte header, `count` fixed-size level-0 records, then per element
 * a 4-byte length and that many bytes of upper-level links, ending exactly at the end of the file. hnswlib writes
 * through a C++ stream that never reports a failed write (a full disk leaves a short file).
 */
export function hnswFileComplete(bytes: Uint8Array): boolean {
  if (bytes.length < 96) return false;
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const count = Number(view.getBigUint64(16, true));
  const perElement = Number(view.getBigUint64(24, true));
  let pos = 96 + count * perElement;
  for (let i = 0; i < count; i++) {
    if (pos + 4 > bytes.length) return false;
    pos += 4 + view.getUint32(pos, true);
  }
  return pos === bytes.length;
}

export function readHead(path: string, bytes: number): Uint8Array {
  const fd = openSync(path, 'r');
  try {
    const buf = Buffer.alloc(bytes);
    return buf.subarray(0, readSync(fd, buf, 0, bytes, 0));
  } finally {
    closeSync(fd);
  }
}
