/**
 * Exact scans: an HNSW file's vectors read from its level-0 records into one packed copy, and the exact top-k of a
 * subset by the SIMD inner-product kernel (core/util/simd-dots.ts; a JavaScript loop where it cannot run).
 */
import { readFileSync } from 'node:fs';
import { hnswLayout } from './hnsw-file.ts';
import { SimdDots } from '../util/index.ts';

/**
 * An HNSW file's vectors, read once from its level-0 records and packed contiguously (into the SIMD kernel's memory
 * where the runtime has it: core/util/simd-dots.ts), with each record's label.
 */
export class StoredVectors {
  private constructor(
    /** Row i = record i's vector, packed (without the SIMD kernel; with it, the kernel's memory holds them). */
    private readonly plain: Float32Array | undefined,
    readonly dim: number,
    /** Internal id -> label (our builder inserts label i as internal id i; any other order is read from the file). */
    private readonly labels: Uint32Array,
    private readonly simd: SimdDots | undefined,
  ) {}

  static read(file: string, dim: number): StoredVectors {
    const bytes = readFileSync(file);
    const { count, perElement, labelOffset, offsetData } = hnswLayout(bytes);
    const simd = SimdDots.create(dim, count);
    const packed = simd ? simd.vectors : new Float32Array(count * dim);
    const labels = new Uint32Array(count);
    // a large file's Buffer starts on its own allocation (4-byte aligned): its floats are read in place, one loop
    const aligned = bytes.byteOffset % 4 === 0 && perElement % 4 === 0 && offsetData % 4 === 0;
    const floats = aligned ? new Float32Array(bytes.buffer, bytes.byteOffset, Math.floor(bytes.byteLength / 4)) : undefined;
    const target = Buffer.from(packed.buffer, packed.byteOffset, packed.byteLength);
    const row = dim * 4;
    for (let i = 0; i < count; i++) {
      const record = 96 + i * perElement;
      // labels are 64-bit little-endian; a bundle's are line numbers, far below 2^32
      if (bytes.readUInt32LE(record + labelOffset + 4) !== 0) throw new Error(`${file}: record ${i} has a label beyond 2^32`);
      labels[i] = bytes.readUInt32LE(record + labelOffset);
      if (floats) {
        const from = (record + offsetData) / 4;
        const to = i * dim;
        for (let d = 0; d < dim; d++) packed[to + d] = floats[from + d]!;
      } else bytes.copy(target, i * row, record + offsetData, record + offsetData + row);
    }
    return new StoredVectors(simd ? undefined : packed, dim, labels, simd);
  }

  /**
   * Over rows already in a kernel's memory: a mapped HNSW file's records (core/bundle/mapped-hnsw.ts), not copied;
   * `identity`: whether label i is row i (the graph knows it already).
   */
  static ofKernel(kernel: SimdDots, labels: Uint32Array, identity?: boolean): StoredVectors {
    const stored = new StoredVectors(undefined, kernel.dim, labels, kernel);
    if (identity) {
      stored.identity = true;
      stored.byLabel = new Map();
    }
    return stored;
  }

  /** From vectors already packed (core/bundle/vector-prefetch.ts, read on a worker thread while the bundle loaded). */
  static fromPacked(packed: Float32Array, labels: Uint32Array, dim: number): StoredVectors {
    const simd = SimdDots.create(dim, labels.length);
    simd?.vectors.set(packed);
    return new StoredVectors(simd ? undefined : packed, dim, labels, simd);
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

  /** Inner products of the query with the rows at `positions`: the SIMD kernel, or a JavaScript loop. */
  private scores(query: Float32Array, positions: Int32Array): Float32Array {
    return this.simd ? this.simd.scan(query, positions) : jsDots(query, this.plain!, positions, this.dim);
  }

  /** A packed copy of the rows at `positions` (benchmarks compare scans against one). */
  packedRows(positions: Int32Array): Float32Array {
    const out = new Float32Array(positions.length * this.dim);
    const { floats, first, stride } = this.rows();
    positions.forEach((p, j) => out.set(floats.subarray(first + p * stride, first + p * stride + this.dim), j * this.dim));
    return out;
  }

  /** Whether scans run on the SIMD kernel. */
  get usesSimd(): boolean {
    return this.simd !== undefined;
  }

  /** Where the rows are (a fresh view: the kernel's memory may have grown): row p at floats[first + p * stride]. */
  private rows(): { floats: Float32Array; first: number; stride: number } {
    return this.simd ? this.simd.floats() : { floats: this.plain!, first: 0, stride: this.dim };
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

  /** The k best of the records at `positions` by inner product, exactly. */
  topK(query: Float32Array, k: number, positions: Int32Array): { labels: number[]; scores: number[] } {
    const labels = this.labels;
    return selectTopK(this.scores(query, positions), k, labels, positions);
  }

  /**
   * One packed copy of the rows at each part's positions, in order, labelled `base + label` (a filter's allowed vectors
   * over the shards of a collection, scanned contiguously: 2-3x faster than gathering them once they are thousands).
   */
  static packAcross(parts: { stored: StoredVectors; positions: Int32Array; base: number }[]): PackedSubset {
    const dim = parts[0]!.stored.dim;
    const count = parts.reduce((n, p) => n + p.positions.length, 0);
    const kernel = SimdDots.create(dim, count);
    const rows = kernel ? kernel.vectors : new Float32Array(count * dim);
    const labels = new Uint32Array(count);
    let j = 0;
    for (const { stored, positions, base } of parts) {
      const { floats, first, stride } = stored.rows();
      for (const p of positions) {
        rows.set(floats.subarray(first + p * stride, first + p * stride + dim), j * dim);
        labels[j++] = base + stored.labels[p]!;
      }
    }
    return new PackedSubset(kernel ? undefined : rows, kernel, labels, parts[0]!.stored);
  }

  /** Scores of every row of a packed subset (the kernel, or the JavaScript loop over its rows). */
  scoresOfRows(query: Float32Array, rows: Float32Array, count: number): Float32Array {
    return jsDots(
      query,
      rows,
      Int32Array.from({ length: count }, (_, i) => i),
      this.dim,
    );
  }
}

/** A filter's allowed vectors packed contiguously, with their labels (StoredVectors.packedSubset). */
export class PackedSubset {
  /** Memory held: the rows (in the kernel's memory or a plain array) and their labels. */
  readonly bytes: number;

  constructor(
    /** The rows without the kernel (with it, its memory holds them). */
    private readonly rows: Float32Array | undefined,
    private readonly kernel: SimdDots | undefined,
    private readonly labels: Uint32Array,
    private readonly owner: StoredVectors,
  ) {
    this.bytes = labels.length * owner.dim * 4 + labels.byteLength;
  }

  topK(query: Float32Array, k: number): { labels: number[]; scores: number[] } {
    const scores = this.kernel ? this.kernel.scanAll(query) : this.owner.scoresOfRows(query, this.rows!, this.labels.length);
    const labels = this.labels;
    return selectTopK(scores, k, labels);
  }
}

/** Inner products of the query with rows of a packed array (the JavaScript loop, four accumulators). */
function jsDots(query: Float32Array, packed: Float32Array, positions: Int32Array, dim: number): Float32Array {
  const out = new Float32Array(positions.length);
  for (let j = 0; j < positions.length; j++) {
    const base = positions[j]! * dim;
    let a0 = 0;
    let a1 = 0;
    let a2 = 0;
    let a3 = 0;
    let d = 0;
    for (; d + 3 < dim; d += 4) {
      a0 += packed[base + d]! * query[d]!;
      a1 += packed[base + d + 1]! * query[d + 1]!;
      a2 += packed[base + d + 2]! * query[d + 2]!;
      a3 += packed[base + d + 3]! * query[d + 3]!;
    }
    for (; d < dim; d++) a0 += packed[base + d]! * query[d]!;
    out[j] = a0 + a1 + a2 + a3;
  }
  return out;
}

/**
 * The k best rows by score, exactly, in a total order: score, then the smaller label first (ties resolve the same
 * whatever k is). Kept sorted by insertion (k is at most a hundred); most rows lose to the worst kept and cost one
 * comparison, before their label is read.
 */
function selectTopK(
  scores: Float32Array,
  k: number,
  /** Row j's label is labels[positions[j]], or labels[j] without positions. */
  labels: Uint32Array,
  positions?: Int32Array,
): { labels: number[]; scores: number[] } {
  // plain arrays: a typed array's allocation costs more than the whole selection over a few hundred rows
  const keptScore: number[] = [];
  const keptLabel: number[] = [];
  let worst = Number.NEGATIVE_INFINITY;
  const n = scores.length;
  for (let j = 0; j < n; j++) {
    const s = scores[j]!;
    if (s < worst) continue;
    const label = positions ? labels[positions[j]!]! : labels[j]!;
    const size = keptScore.length;
    // where it goes: after every kept row that is better (higher score, or equal score and smaller label)
    let c = size < k ? size : k - 1;
    if (size === k && (keptScore[c]! > s || (keptScore[c] === s && keptLabel[c]! < label))) continue;
    if (size < k) {
      keptScore.push(s);
      keptLabel.push(label);
    }
    while (c > 0 && (keptScore[c - 1]! < s || (keptScore[c - 1] === s && keptLabel[c - 1]! > label))) {
      keptScore[c] = keptScore[c - 1]!;
      keptLabel[c] = keptLabel[c - 1]!;
      c--;
    }
    keptScore[c] = s;
    keptLabel[c] = label;
    if (keptScore.length === k) worst = keptScore[k - 1]!;
  }
  return { labels: keptLabel, scores: keptScore };
}
