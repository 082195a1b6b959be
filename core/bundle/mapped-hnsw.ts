/**
 * An hnswlib index file searched where it lies: the file is read once, straight into the SIMD kernel's memory
 * (core/util/simd-dots.ts), and both the graph walk and exact scans read its level-0 records there. hnswlib-node's
 * reader instead copies every record into its own memory and builds a label table (~67 ms of CPU per 50k-vector shard,
 * and a second 33 MB copy beside the exact scans' packed one); this opens a shard in the time its bytes take to read.
 *
 * The walk is hnswlib's own (`searchKnn`: greedy descent through the upper levels, then the beam search of level 0
 * with its stop rule, deleted marks and filter), with each step's distances computed in one SIMD call; results equal
 * hnswlib-node's up to float rounding (test/mapped-hnsw.test.ts compares them on seeded graphs, with deletions and
 * filters). Writers keep using hnswlib-node: the file format is unchanged.
 *
 * Layout (hnswlib 0.8, see core/bundle/hnsw-file.ts): a 96-byte header; `count` level-0 records of `perElement` bytes
 * (u16 link count, a flags byte whose bit 0 marks deletion, a byte unused, maxM0 u32 links, the vector, a u64 label);
 * then per element a u32 byte length and its upper levels' link lists (u32 count + maxM links each).
 */
import { open } from 'node:fs/promises';
import { readWhole, SimdDots } from '../util/index.ts';
import { hnswLayout } from './hnsw-file.ts';
import { IndexError } from './manifest.ts';
import { StoredVectors } from './stored-vectors.ts';

export interface KnnResult {
  neighbors: number[];
  distances: number[];
}

/** What a shard needs of its HNSW graph: hnswlib-node's `HierarchicalNSW`, or a `MappedHnsw`. */
export interface HnswGraph {
  searchKnn(query: number[], k: number, filter?: (label: number) => boolean): KnnResult;
  setEf(ef: number): void;
  getPoint(label: number): ArrayLike<number>;
}

const HEADER = 96;
/** The largest file read into the kernel's memory (WebAssembly memories stop at 4 GiB; larger use hnswlib-node). */
export const MAPPED_HNSW_MAX_BYTES = 2 ** 31;

/**
 * A binary max-heap of (key, id) pairs, ordered as hnswlib's priority queues of pairs: the larger key on top, ties to
 * the larger id. The beam keeps (distance, id), so its worst is on top; the candidates (-distance, id), as hnswlib does,
 * so the nearest is. (One class: both heaps share this code, and its comparisons stay monomorphic.)
 */
class PairHeap {
  key = new Float64Array(64);
  id = new Int32Array(64);
  size = 0;

  push(k: number, i: number): void {
    if (this.size === this.key.length) {
      const key = new Float64Array(this.size * 2);
      const id = new Int32Array(this.size * 2);
      key.set(this.key);
      id.set(this.id);
      this.key = key;
      this.id = id;
    }
    const keys = this.key;
    const ids = this.id;
    let c = this.size++;
    while (c > 0) {
      const p = (c - 1) >> 1;
      const kp = keys[p]!;
      if (k < kp || (k === kp && i < ids[p]!)) break;
      keys[c] = kp;
      ids[c] = ids[p]!;
      c = p;
    }
    keys[c] = k;
    ids[c] = i;
  }

  /** Remove the top pair; returns its id. */
  pop(): number {
    const keys = this.key;
    const ids = this.id;
    const top = ids[0]!;
    const n = --this.size;
    const k = keys[n]!;
    const i = ids[n]!;
    let c = 0;
    for (;;) {
      let child = 2 * c + 1;
      if (child >= n) break;
      let kc = keys[child]!;
      if (child + 1 < n) {
        const kr = keys[child + 1]!;
        if (kr > kc || (kr === kc && ids[child + 1]! > ids[child]!)) {
          child++;
          kc = kr;
        }
      }
      if (kc < k || (kc === k && ids[child]! < i)) break;
      keys[c] = kc;
      ids[c] = ids[child]!;
      c = child;
    }
    keys[c] = k;
    ids[c] = i;
    return top;
  }
}

export class MappedHnsw implements HnswGraph {
  private ef = 10;
  /** Bytes of a record before its vector: its link list, brought into cache with the vector (level-0 walks). */
  private readonly lead: number;
  /** Per element: the byte offset of its upper levels' lists (0: none), and how many levels it has above 0. */
  private readonly upperAt: Int32Array;
  private readonly upperLevels: Uint8Array;
  private readonly maxM: number;
  private readonly deletedCount: number;
  /** Internal id -> label; `identity` when label i is record i (our builder's order). */
  readonly labels: Uint32Array;
  private readonly identity: boolean;
  private byLabel?: Map<number, number>;
  private visited: Uint16Array;
  private tag = 0;
  private ints: Int32Array;
  private readonly top = new PairHeap();
  private readonly candidates = new PairHeap();

  private constructor(
    private readonly kernel: SimdDots,
    readonly file: string,
    readonly dim: number,
    readonly count: number,
    private readonly perElement: number,
    private readonly maxLevel: number,
    private readonly entry: number,
    private readonly maxM0: number,
    /** Bytes of one upper-level list: a u32 count and maxM links. */
    private readonly upperListBytes: number,
    labelOffset: number,
  ) {
    this.lead = 4 + 4 * maxM0;
    const bytes = kernel.region;
    // every offset read here is a multiple of 4 (records, labels and link lists are 4-byte sized): read as words
    this.ints = this.intView();
    const words = this.ints;
    this.upperAt = new Int32Array(count);
    this.upperLevels = new Uint8Array(count);
    this.maxM = (upperListBytes - 4) / 4;
    let pos = HEADER + count * perElement;
    for (let i = 0; i < count; i++) {
      if (pos + 4 > bytes.length) throw new IndexError(`${file}: HNSW file is truncated`);
      const size = words[pos >> 2]!;
      pos += 4;
      if (size !== 0) {
        if (size < 0 || size % upperListBytes !== 0 || size / upperListBytes > 255)
          throw new IndexError(`${file}: HNSW file has a malformed link list`);
        this.upperAt[i] = pos;
        this.upperLevels[i] = size / upperListBytes;
        pos += size;
      }
    }
    if (pos !== bytes.length) throw new IndexError(`${file}: HNSW file is ${pos > bytes.length ? 'truncated' : 'longer than its records'}`);
    if (count > 0 && (entry >= count || this.upperLevels[entry]! < maxLevel))
      throw new IndexError(`${file}: HNSW file names an invalid entry point`);
    this.labels = new Uint32Array(count);
    let deleted = 0;
    let identity = true;
    const perWords = perElement >> 2;
    let label = (HEADER + labelOffset) >> 2;
    let flags = HEADER + 2;
    for (let i = 0; i < count; i++, label += perWords, flags += perElement) {
      if (words[label + 1] !== 0) throw new IndexError(`${file}: record ${i} has a label beyond 2^32`);
      const l = words[label]! >>> 0;
      this.labels[i] = l;
      if (l !== i) identity = false;
      deleted += bytes[flags]! & 1;
    }
    this.identity = identity;
    this.deletedCount = deleted;
    this.visited = new Uint16Array(count);
  }

  /**
   * Read an hnswlib file of `dim`-dimensional vectors; undefined where the SIMD kernel cannot run here or the file is
   * too large for its memory (the caller uses hnswlib-node then). A malformed file is an IndexError.
   */
  static async read(file: string, dim: number): Promise<MappedHnsw | undefined> {
    const head = Buffer.alloc(HEADER);
    const handle = await open(file, 'r');
    let size: number;
    try {
      size = (await handle.stat()).size;
      if ((await handle.read(head, 0, HEADER, 0)).bytesRead < HEADER)
        throw new IndexError(`${file}: HNSW file is too short to hold a header`);
    } finally {
      await handle.close();
    }
    if (size > MAPPED_HNSW_MAX_BYTES) return undefined;
    const { count, perElement, labelOffset, offsetData } = hnswLayout(head);
    const maxLevel = head.readInt32LE(48);
    const entry = head.readUInt32LE(52);
    const maxM = Number(head.readBigUInt64LE(56));
    const maxM0 = Number(head.readBigUInt64LE(64));
    if (
      offsetData !== 4 + 4 * maxM0 ||
      labelOffset !== offsetData + 4 * dim ||
      perElement !== labelOffset + 8 ||
      maxLevel < 0 ||
      maxM0 > 0xffff ||
      HEADER + count * perElement > size
    )
      throw new IndexError(`${file}: HNSW file header does not match ${dim}-dimensional records`);
    const kernel = SimdDots.create(dim, count, { bytes: size, first: HEADER + offsetData, stride: perElement });
    if (!kernel) return undefined;
    // one request to the thread pool, straight into the kernel's memory
    const read = await readWhole(file, () => kernel.region);
    if (read.length !== size) throw new IndexError(`${file}: HNSW file changed while it was read`);
    return new MappedHnsw(kernel, file, dim, count, perElement, maxLevel, entry, maxM0, 4 + 4 * maxM, labelOffset);
  }

  /** The kernel's memory as 32-bit words (again after it grew: growing detaches the old view). */
  private intView(): Int32Array {
    const region = this.kernel.region;
    return new Int32Array(region.buffer, region.byteOffset, region.byteLength >> 2);
  }

  setEf(ef: number): void {
    this.ef = ef;
  }

  /** The exact scans' view of the same records (no copy). */
  storedVectors(): StoredVectors {
    return StoredVectors.ofKernel(this.kernel, this.labels, this.identity);
  }

  /** The vector stored under a label (a copy); throws for a label not in the graph or marked deleted, as hnswlib. */
  getPoint(label: number): Float32Array {
    const id = this.internalId(label);
    const region = this.kernel.region;
    if (id < 0 || (region[HEADER + id * this.perElement + 2]! & 1) === 1) throw new Error('Label not found');
    const { floats, first, stride } = this.kernel.floats();
    return floats.slice(first + id * stride, first + id * stride + this.dim);
  }

  private internalId(label: number): number {
    if (this.identity) return Number.isInteger(label) && label >= 0 && label < this.count ? label : -1;
    if (!this.byLabel) {
      this.byLabel = new Map();
      this.labels.forEach((l, i) => this.byLabel!.set(l, i));
    }
    return this.byLabel.get(label) ?? -1;
  }

  /** The link list of `id` at `level` (an index into the word view: its count, then its links). */
  private listAt(id: number, level: number): number {
    return level === 0 ? (HEADER + id * this.perElement) >> 2 : (this.upperAt[id]! + (level - 1) * this.upperListBytes) >> 2;
  }

  /**
   * The k nearest labels by inner-product distance (1 - dot), closest first, as hnswlib's `searchKnn`: a beam of
   * max(ef, k); deleted items and labels the filter rejects are walked through but never returned.
   */
  searchKnn(query: ArrayLike<number>, k: number, filter?: (label: number) => boolean): KnnResult {
    if (this.count === 0 || k <= 0) return { neighbors: [], distances: [] };
    if (query.length !== this.dim) throw new Error(`query has ${query.length} dimensions, the index ${this.dim}`);
    const kernel = this.kernel;
    kernel.setQuery(query);
    const pos = kernel.scratch(this.maxM0 + 1);
    const scores = kernel.scoreScratch();
    if (this.ints.byteLength === 0) this.ints = this.intView();
    const ints = this.ints;
    const count = this.count;
    // greedy descent through the upper levels
    let current = this.entry;
    pos[0] = current;
    kernel.gather(1, 0);
    let currentDist = Math.fround(1 - scores[0]!);
    for (let level = this.maxLevel; level > 0; level--) {
      for (let changed = true; changed; ) {
        changed = false;
        // a node reached at this level must have a list here, of at most maxM links (a malformed file: an error)
        if (this.upperLevels[current]! < level) this.checked(-1);
        const at = this.listAt(current, level);
        const n = ints[at]! & 0xffff;
        if (n > this.maxM) this.checked(-1);
        for (let j = 0; j < n; j++) pos[j] = this.checked(ints[at + 1 + j]!);
        kernel.gather(n, 0);
        for (let j = 0; j < n; j++) {
          const d = Math.fround(1 - scores[j]!);
          if (d < currentDist) {
            currentDist = d;
            current = pos[j]!;
            changed = true;
          }
        }
      }
    }
    // level 0: hnswlib's beam search
    const ef = Math.max(this.ef, k);
    const bare = !filter && this.deletedCount === 0;
    const region = kernel.region;
    const labels = this.labels;
    const per = this.perElement;
    const maxM0 = this.maxM0;
    const accept = (id: number) => (region[HEADER + id * per + 2]! & 1) === 0 && (!filter || filter(labels[id]!));
    if (++this.tag === 0x10000) {
      this.visited.fill(0);
      this.tag = 1;
    }
    const tag = this.tag;
    const visited = this.visited;
    const top = this.top;
    const candidates = this.candidates;
    top.size = 0;
    candidates.size = 0;
    let lowerBound: number;
    if (bare || accept(current)) {
      lowerBound = currentDist;
      top.push(currentDist, current);
      candidates.push(-currentDist, current);
    } else {
      lowerBound = Number.MAX_VALUE;
      candidates.push(-lowerBound, current);
    }
    visited[current] = tag;
    while (candidates.size > 0) {
      const candidateDist = -candidates.key[0]!;
      if (candidateDist > lowerBound && (bare || top.size === ef)) break;
      const node = candidates.pop();
      const at = (HEADER + node * per) >> 2;
      const n = ints[at]! & 0xffff;
      if (n > maxM0) this.checked(-1);
      let m = 0;
      for (let j = 1; j <= n; j++) {
        const c = ints[at + j]!;
        if (c >>> 0 >= count) this.checked(c);
        if (visited[c] !== tag) {
          visited[c] = tag;
          pos[m++] = c;
        }
      }
      if (m === 0) continue;
      kernel.gather(m, this.lead);
      for (let j = 0; j < m; j++) {
        const d = Math.fround(1 - scores[j]!);
        if (top.size < ef || lowerBound > d) {
          const c = pos[j]!;
          candidates.push(-d, c);
          if (bare || accept(c)) top.push(d, c);
          if (top.size > ef) top.pop();
          if (top.size > 0) lowerBound = top.key[0]!;
        }
      }
    }
    while (top.size > k) top.pop();
    const neighbors = new Array<number>(top.size);
    const distances = new Array<number>(top.size);
    for (let j = top.size - 1; j >= 0; j--) {
      distances[j] = top.key[0]!;
      neighbors[j] = labels[top.pop()]!;
    }
    return { neighbors, distances };
  }

  /** A link read from the file: an id past the records means a malformed graph (an error, never a wild read). */
  private checked(id: number): number {
    if (id >= 0 && id < this.count) return id;
    throw new IndexError(
      id < 0 ? `${this.file}: HNSW graph has a malformed link list` : `${this.file}: HNSW graph links to element ${id} of ${this.count}`,
    );
  }
}
