/**
 * Exact scans: an HNSW file's vectors read straight from its level-0 records, and the exact top-k of a subset.
 */
import { readFileSync } from 'node:fs';
import { hnswLayout } from './hnsw-file.ts';

/** An HNSW file's vectors read straight from its level-0 records (the file was verified at load). */
export class StoredVectors {
  private constructor(
    private readonly f32: Float32Array,
    /** Floats from one record to the next, and from a record's start to its vector. */
    private readonly stride: number,
    private readonly offset: number,
    readonly dim: number,
    /** Internal id -> label (our builder inserts label i as internal id i; any other order is read from the file). */
    private readonly labels: Uint32Array,
  ) {}

  static read(file: string, dim: number): StoredVectors {
    const bytes = readFileSync(file);
    const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    const u64 = (o: number) => Number(view.getBigUint64(o, true));
    const { count, perElement, labelOffset, offsetData } = hnswLayout(bytes);
    // an aligned copy of the level-0 block (records are multiples of 4 bytes)
    const level0 = new Float32Array(bytes.buffer.slice(bytes.byteOffset + 96, bytes.byteOffset + 96 + count * perElement));
    const labels = new Uint32Array(count);
    for (let i = 0; i < count; i++) labels[i] = u64(96 + i * perElement + labelOffset);
    return new StoredVectors(level0, perElement / 4, offsetData / 4, dim, labels);
  }

  /** Positions of the given labels (our builder writes label i as record i; other files are mapped once). */
  positionsOfLabels(labels: number[]): Int32Array {
    if (!this.byLabel) {
      this.identity = this.labels.every((l, i) => l === i);
      if (!this.identity) {
        this.byLabel = new Map();
        this.labels.forEach((l, i) => this.byLabel!.set(l, i));
      } else this.byLabel = new Map();
    }
    return Int32Array.from(labels, (l) => (this.identity ? l : (this.byLabel!.get(l) ?? -1))).filter(
      (p) => p >= 0 && p < this.labels.length,
    );
  }

  private identity = false;
  private byLabel?: Map<number, number>;

  /** Positions (records in the file) of the allowed labels: an exact scan then touches only those. */
  positionsOf(allowed: Uint8Array, count: number): Int32Array {
    const out = new Int32Array(count);
    let j = 0;
    for (let i = 0; i < this.labels.length && j < count; i++) if (allowed[this.labels[i]!] === 1) out[j++] = i;
    return out.subarray(0, j);
  }

  /** The k best of the records at `positions` by inner product, exactly (a size-k min-heap, the worst at the root). */
  topK(query: Float32Array, k: number, positions: Int32Array): { labels: number[]; scores: number[] } {
    const heapScore = new Float64Array(k);
    const heapLabel = new Int32Array(k);
    let size = 0;
    const dim = this.dim;
    for (let j = 0; j < positions.length; j++) {
      const i = positions[j]!;
      const label = this.labels[i]!;
      const base = i * this.stride + this.offset;
      let s = 0;
      for (let d = 0; d < dim; d++) s += this.f32[base + d]! * query[d]!;
      // a total order: score, then the smaller label first (ties resolve the same whatever k is)
      if (size < k) {
        // sift up
        let c = size++;
        while (c > 0) {
          const p = (c - 1) >> 1;
          if (heapScore[p]! < s || (heapScore[p] === s && heapLabel[p]! > label)) break;
          heapScore[c] = heapScore[p]!;
          heapLabel[c] = heapLabel[p]!;
          c = p;
        }
        heapScore[c] = s;
        heapLabel[c] = label;
      } else if (s > heapScore[0]! || (s === heapScore[0] && label < heapLabel[0]!)) {
        // replace the root (the worst kept), sift down
        let c = 0;
        for (;;) {
          const l = 2 * c + 1;
          if (l >= size) break;
          const r = l + 1;
          const m = r < size && (heapScore[r]! < heapScore[l]! || (heapScore[r] === heapScore[l] && heapLabel[r]! > heapLabel[l]!)) ? r : l;
          if (heapScore[m]! > s || (heapScore[m] === s && heapLabel[m]! < label)) break;
          heapScore[c] = heapScore[m]!;
          heapLabel[c] = heapLabel[m]!;
          c = m;
        }
        heapScore[c] = s;
        heapLabel[c] = label;
      }
    }
    const order = Array.from({ length: size }, (_, i) => i).sort((a, b) => heapScore[b]! - heapScore[a]! || heapLabel[a]! - heapLabel[b]!);
    return { labels: order.map((i) => heapLabel[i]!), scores: order.map((i) => heapScore[i]!) };
  }
}
