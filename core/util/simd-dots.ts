/**
 * Inner products of one query with many stored vectors, in WebAssembly SIMD (128-bit, four f32 lanes, four
 * accumulators): the kernel of exact scans and of mapped HNSW walks. The module (core/util/simd-module.ts) is assembled
 * from its instructions in TypeScript (no build step, no native addon), and owns its memory: the
 * vectors are packed into it once, or a file is read into it whole (`RowLayout`: an HNSW file's records), and a scan
 * reads the rows named by a list of positions. Dimensions must be a multiple of 16 (every shipped and imported model:
 * 128 to 1024); `simdDotsSupported` says whether this runtime validates the module (Node >= 16, every Lambda runtime).
 *
 *   const dots = SimdDots.create(dim, count);      // room for `count` vectors
 *   dots.vectors.set(packed);                       // row-major float32, row i at i * dim
 *   const scores = dots.scan(query, positions);     // scores[j] = vectors[positions[j]] . query
 *   const all = dots.scanAll(query);                 // scores[j] = vectors[j] . query (contiguous, fastest)
 *
 * Checked against a float64 JavaScript dot product on seeded vectors (test/simd-dots.test.ts).
 */
import { moduleBytes } from './simd-module.ts';

/** The part of the WebAssembly JS API used here (the project's type libraries do not declare it). */
interface WasmMemory {
  readonly buffer: ArrayBuffer;
  grow(pages: number): number;
}
interface WasmApi {
  validate(bytes: Uint8Array): boolean;
  Module: new (bytes: Uint8Array) => object;
  Instance: new (module: object, imports: object) => { exports: Record<string, unknown> };
  Memory: new (descriptor: { initial: number }) => WasmMemory;
}
const wasm = (globalThis as unknown as { WebAssembly?: WasmApi }).WebAssembly;

let compiled: object | undefined | null;
function module(): object | undefined {
  if (compiled === undefined) {
    try {
      const bytes = moduleBytes();
      compiled = wasm?.validate(bytes) ? new wasm.Module(bytes) : null;
    } catch {
      compiled = null;
    }
  }
  return compiled ?? undefined;
}

/** Whether this runtime runs the SIMD kernel for `dim`-float rows (else exact scans use the JavaScript loop). */
export function simdDotsSupported(dim: number): boolean {
  return dim > 0 && dim % 16 === 0 && module() !== undefined;
}

const PAGE = 65536;

/**
 * Rows that are not packed: a region of `bytes` bytes at the start of the kernel's memory (a file read into it), row i
 * at byte `first + i * stride` (an hnswlib file's level-0 records: core/bundle/mapped-hnsw.ts).
 */
export interface RowLayout {
  bytes: number;
  first: number;
  stride: number;
}

type DotsFn = (vecs: number, q: number, pos: number, m: number, dim: number, out: number, stride: number, lead: number) => void;

/** Vectors in a WebAssembly memory (packed, or a file's records), and the SIMD scan over rows of them. */
export class SimdDots {
  /** The packed vectors (row i at i * dim): fill once after `create` (packed rows only). */
  get vectors(): Float32Array {
    return this.vectorsView;
  }
  private vectorsView!: Float32Array;
  private query!: Float32Array;
  private positions = new Int32Array(0);
  private scores = new Float32Array(0);
  /** The vectors' region, whole (packed rows, or the file a layout describes). */
  private regionView!: Uint8Array;
  private readonly dots: DotsFn;
  private readonly dotsPacked: DotsFn;
  /** Where scratch (the query, then positions and scores) starts: after the region, 16-byte aligned. */
  private readonly scratchAt: number;

  private constructor(
    private readonly memory: WasmMemory,
    instance: { exports: Record<string, unknown> },
    readonly dim: number,
    readonly count: number,
    private readonly layout: RowLayout,
  ) {
    this.dots = instance.exports.dots as DotsFn;
    this.dotsPacked = instance.exports.dotsPacked as DotsFn;
    this.scratchAt = Math.ceil(layout.bytes / 16) * 16;
    this.views(0);
  }

  /**
   * Room for `count` vectors of `dim` floats, packed, or laid out as `layout` says (scratch for `count` positions is
   * made at once then); undefined where the kernel cannot run (see `simdDotsSupported`).
   */
  static create(dim: number, count: number, layout?: RowLayout): SimdDots | undefined {
    const mod = module();
    if (!mod || !simdDotsSupported(dim)) return undefined;
    const rows = layout ?? { bytes: count * dim * 4, first: 0, stride: dim * 4 };
    const scratch = layout ? dim * 4 + 8 * (count + 64) : dim * 4;
    const memory = new wasm!.Memory({ initial: Math.ceil((Math.ceil(rows.bytes / 16) * 16 + scratch) / PAGE) + 1 });
    const kernel = new SimdDots(memory, new wasm!.Instance(mod, { env: { memory } }), dim, count, rows);
    if (layout) kernel.room(count + 64);
    return kernel;
  }

  /** The bytes the layout describes (a file is read into them; packed rows: the vectors' bytes). */
  get region(): Uint8Array {
    return this.regionView;
  }

  /** The whole memory as floats (a fresh view: it may have grown), with row i at `first + i * stride` floats. */
  floats(): { floats: Float32Array; first: number; stride: number } {
    return {
      floats: new Float32Array(this.memory.buffer, 0, this.layout.bytes >> 2),
      first: this.layout.first >> 2,
      stride: this.layout.stride >> 2,
    };
  }

  /** Views over the memory, made again after it grows (growing detaches the old buffer); scratch for `m` rows. */
  private views(m: number): void {
    const buffer = this.memory.buffer;
    this.regionView = new Uint8Array(buffer, 0, this.layout.bytes);
    this.vectorsView =
      this.layout.first === 0 && this.layout.stride === this.dim * 4
        ? new Float32Array(buffer, 0, this.count * this.dim)
        : new Float32Array(0);
    this.query = new Float32Array(buffer, this.scratchAt, this.dim);
    const start = this.scratchAt + this.dim * 4;
    this.positions = new Int32Array(buffer, start, m);
    this.scores = new Float32Array(buffer, start + 4 * m, m);
  }

  /** Scratch room for `m` positions and scores after the region and the query (grown on demand). */
  private room(m: number): void {
    if (this.positions.length >= m) return;
    const need = this.scratchAt + this.dim * 4 + 8 * m;
    if (need > this.memory.buffer.byteLength) this.memory.grow(Math.ceil((need - this.memory.buffer.byteLength) / PAGE));
    this.views(m);
  }

  /** scores[j] = row j . query for every row (a view valid until the next scan). */
  scanAll(query: ArrayLike<number>): Float32Array {
    this.room(this.count);
    this.query.set(query);
    this.dotsPacked(this.layout.first, this.query.byteOffset, 0, this.count, this.dim, this.scores.byteOffset, this.layout.stride, 0);
    return this.scores.subarray(0, this.count);
  }

  /** scores[j] = row positions[j] . query (a view valid until the next scan). */
  scan(query: ArrayLike<number>, positions: Int32Array): Float32Array {
    const m = positions.length;
    this.room(m);
    this.query.set(query);
    this.positions.set(positions);
    this.gather(m, 0);
    return this.scores.subarray(0, m);
  }

  /**
   * The graph walk's path (core/bundle/mapped-hnsw.ts): set the query once, then per step write row numbers into
   * `scratch(m)`, `gather(m)`, and read the first m of `scoreScratch()`. The views stay valid until a scan needs more
   * room (which only a scan of more rows than the kernel was made for does).
   */
  setQuery(query: ArrayLike<number>): void {
    this.query.set(query);
  }

  scratch(m: number): Int32Array {
    this.room(m);
    return this.positions;
  }

  /**
   * scores[j] = row scratch[j] . the query set last, for the first m scratch positions. With `lead` > 0 every row's
   * cache lines, and the `lead` bytes before it (at most `layout.first`), are loaded first, all of them back to back.
   */
  gather(m: number, lead: number): void {
    this.dots(
      this.layout.first,
      this.query.byteOffset,
      this.positions.byteOffset,
      m,
      this.dim,
      this.scores.byteOffset,
      this.layout.stride,
      lead,
    );
  }

  /** The scores `gather` writes (the whole scratch: read its first m). */
  scoreScratch(): Float32Array {
    return this.scores;
  }
}

/**
 * Compile the kernel's functions now: V8 compiles WebAssembly lazily, at a function's first call (with its JS-to-wasm
 * wrapper, ~3-5 ms), which would otherwise fall on the first query. A server calls this while its loads wait on I/O.
 */
export function warmSimdKernel(): void {
  const kernel = SimdDots.create(16, 1);
  if (!kernel) return;
  const query = new Float32Array(16);
  kernel.scanAll(query);
  kernel.scan(query, Int32Array.of(0));
}
