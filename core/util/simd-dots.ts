/**
 * Inner products of one query with many stored vectors, in WebAssembly SIMD (128-bit, four f32 lanes, four
 * accumulators): the kernel of exact scans. The module is assembled here from its instructions (a few hundred bytes,
 * no build step, no native addon), and owns its memory: the vectors are packed into it once, contiguously, and a scan
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

// --- the module, instruction by instruction -------------------------------------------------------------------------
const I32 = 0x7f;
const V128 = 0x7b;
const op = {
  block: 0x02,
  loop: 0x03,
  if: 0x04,
  end: 0x0b,
  brIf: 0x0d,
  return: 0x0f,
  localGet: 0x20,
  localSet: 0x21,
  localTee: 0x22,
  drop: 0x1a,
  select: 0x1b,
  i32Load: 0x28,
  f32Store: 0x38,
  i32Const: 0x41,
  i32Eqz: 0x45,
  i32LtU: 0x49,
  i32Add: 0x6a,
  i32Sub: 0x6b,
  i32Mul: 0x6c,
  i32Shl: 0x74,
  f32Add: 0x92,
  simd: 0xfd,
} as const;
/** SIMD opcodes (after the 0xfd prefix, LEB128). */
const simd = { v128Load: 0, v128Const: 12, f32x4ExtractLane: 31, f32x4Add: 228, f32x4Mul: 230 } as const;

function leb(n: number): number[] {
  const out: number[] = [];
  do {
    let byte = n & 0x7f;
    n >>>= 7;
    if (n !== 0) byte |= 0x80;
    out.push(byte);
  } while (n !== 0);
  return out;
}
const sleb = (n: number): number[] => {
  const out: number[] = [];
  for (;;) {
    const byte = n & 0x7f;
    n >>= 7;
    if ((n === 0 && (byte & 0x40) === 0) || (n === -1 && (byte & 0x40) !== 0)) return [...out, byte];
    out.push(byte | 0x80);
  }
};
const str = (s: string) => [...leb(s.length), ...new TextEncoder().encode(s)];
const section = (id: number, body: number[]) => [id, ...leb(body.length), ...body];
const vec = (items: number[][]) => [...leb(items.length), ...items.flat()];
const simdOp = (code: number, ...imm: number[]) => [op.simd, ...leb(code), ...imm];

// parameters: vecs, q, pos, m, dim, out, stride (byte addresses; m rows; dim floats; stride bytes from one row to the
// next); locals after them
const [VECS, Q, POS, M, DIM, OUT, STRIDE, LEAD] = [0, 1, 2, 3, 4, 5, 6, 7];
const [J, BASE, NEXT, OFF, SPAN] = [8, 9, 10, 11, 12];
const ACC = [13, 14, 15, 16] as const;

/**
 * The body of `dots` (gather: row j at vecs + pos[j] * stride) or of `dotsPacked` (row j at vecs + j * stride), for
 * `dim`-float rows: the sum over a row is unrolled (loads at constant offsets, four accumulators, no inner loop).
 */
function dotsBody(gather: boolean, dim: number): number[] {
  const get = (i: number) => [op.localGet, i];
  const set = (i: number) => [op.localSet, i];
  const i32 = (v: number) => [op.i32Const, ...sleb(v)];
  const load = (offset: number) => simdOp(simd.v128Load, 2, ...leb(offset)); // align 4 bytes (hint), offset
  const code: number[] = [
    // nothing to do for m = 0
    ...get(M),
    op.i32Eqz,
    op.brIf,
    0,
    // gather: first load a word of every cache line of every row (and of the `lead` bytes before it: a graph walk's
    // link lists), back to back, so that their cache misses overlap (WebAssembly has no prefetch instruction; the sums
    // alone would wait for each row's misses in turn)
    ...(gather
      ? [
          // only when asked (lead > 0: a graph walk's few scattered rows); a scan's rows come in order, and the
          // hardware's own prefetching serves them better than a second pass would
          ...get(LEAD),
          op.if,
          0x40,
          ...get(DIM),
          ...i32(2),
          op.i32Shl,
          ...get(LEAD),
          op.i32Add,
          ...set(SPAN),
          ...i32(0),
          ...set(J),
          op.loop,
          0x40,
          ...get(VECS),
          ...get(POS),
          ...get(J),
          ...i32(2),
          op.i32Shl,
          op.i32Add,
          op.i32Load,
          2,
          0,
          ...get(STRIDE),
          op.i32Mul,
          op.i32Add,
          ...get(LEAD),
          op.i32Sub,
          ...set(NEXT),
          ...i32(0),
          ...set(OFF),
          op.loop,
          0x40,
          ...get(NEXT),
          ...get(OFF),
          op.i32Add,
          op.i32Load,
          2,
          0,
          op.drop,
          ...get(OFF),
          ...i32(64),
          op.i32Add,
          op.localTee,
          OFF,
          ...get(SPAN),
          op.i32LtU,
          op.brIf,
          0,
          op.end,
          ...get(J),
          ...i32(1),
          op.i32Add,
          op.localTee,
          J,
          ...get(M),
          op.i32LtU,
          op.brIf,
          0,
          op.end,
          op.end,
        ]
      : []),
    ...i32(0),
    ...set(J),
    op.loop,
    0x40,
    // base = vecs + pos[j] * stride (gather), or vecs + j * stride (packed)
    ...get(VECS),
    ...(gather ? [...get(POS), ...get(J), ...i32(2), op.i32Shl, op.i32Add, op.i32Load, 2, 0] : get(J)),
    ...get(STRIDE),
    op.i32Mul,
    op.i32Add,
    ...set(BASE),
    // four zeroed accumulators; acc_(i mod 4) += vec[4i .. 4i+4] * q[4i .. 4i+4]
    ...ACC.flatMap((a) => [...simdOp(simd.v128Const, ...new Array(16).fill(0)), ...set(a)]),
    ...Array.from({ length: dim / 4 }, (_, i) => [
      ...get(ACC[i % 4]!),
      ...get(BASE),
      ...load(16 * i),
      ...get(Q),
      ...load(16 * i),
      ...simdOp(simd.f32x4Mul),
      ...simdOp(simd.f32x4Add),
      ...set(ACC[i % 4]!),
    ]).flat(),
    // out[j] = sum of the lanes of acc0 + acc1 + acc2 + acc3
    ...get(OUT),
    ...get(J),
    ...i32(2),
    op.i32Shl,
    op.i32Add,
    ...get(ACC[0]),
    ...get(ACC[1]),
    ...simdOp(simd.f32x4Add),
    ...get(ACC[2]),
    ...get(ACC[3]),
    ...simdOp(simd.f32x4Add),
    ...simdOp(simd.f32x4Add),
    ...set(ACC[0]),
    ...get(ACC[0]),
    ...simdOp(simd.f32x4ExtractLane, 0),
    ...get(ACC[0]),
    ...simdOp(simd.f32x4ExtractLane, 1),
    op.f32Add,
    ...get(ACC[0]),
    ...simdOp(simd.f32x4ExtractLane, 2),
    ...get(ACC[0]),
    ...simdOp(simd.f32x4ExtractLane, 3),
    op.f32Add,
    op.f32Add,
    op.f32Store,
    2,
    0,
    // next row
    ...get(J),
    ...i32(1),
    op.i32Add,
    op.localTee,
    J,
    ...get(M),
    op.i32LtU,
    op.brIf,
    0,
    op.end,
    op.end,
  ];
  const locals = vec([
    [5, I32],
    [4, V128],
  ]);
  const body = [...locals, ...code];
  return [...leb(body.length), ...body];
}

/** The module for `dim`-float rows (its sums unrolled for that length). */
function moduleBytes(dim: number): Uint8Array {
  return new Uint8Array([
    ...[0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00],
    ...section(1, vec([[0x60, ...vec([[I32], [I32], [I32], [I32], [I32], [I32], [I32], [I32]]), 0]])),
    ...section(2, vec([[...str('env'), ...str('memory'), 0x02, 0x00, 0x01]])),
    ...section(3, vec([[0], [0]])),
    ...section(
      7,
      vec([
        [...str('dots'), 0x00, 0],
        [...str('dotsPacked'), 0x00, 1],
      ]),
    ),
    ...section(10, vec([dotsBody(true, dim), dotsBody(false, dim)])),
  ]);
}

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

/** The largest dimension the kernel takes (its sums are unrolled: 4 KB of code per row length at 1024). */
const MAX_DIM = 4096;
const compiled = new Map<number, object | null>();
function module(dim: number): object | undefined {
  if (!(dim > 0 && dim % 16 === 0 && dim <= MAX_DIM)) return undefined;
  let mod = compiled.get(dim);
  if (mod === undefined) {
    try {
      const bytes = moduleBytes(dim);
      mod = wasm?.validate(bytes) ? new wasm.Module(bytes) : null;
    } catch {
      mod = null;
    }
    compiled.set(dim, mod);
  }
  return mod ?? undefined;
}

/** Whether this runtime runs the SIMD kernel for `dim`-float rows (else exact scans use the JavaScript loop). */
export function simdDotsSupported(dim: number): boolean {
  return module(dim) !== undefined;
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
    const mod = module(dim);
    if (!mod) return undefined;
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
