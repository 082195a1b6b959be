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
  end: 0x0b,
  brIf: 0x0d,
  return: 0x0f,
  localGet: 0x20,
  localSet: 0x21,
  localTee: 0x22,
  i32Load: 0x28,
  f32Store: 0x38,
  i32Const: 0x41,
  i32Eqz: 0x45,
  i32LtU: 0x49,
  i32Add: 0x6a,
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

// parameters: vecs, q, pos, m, dim, out (byte addresses; m rows; dim floats); locals after them
const [VECS, Q, POS, M, DIM, OUT] = [0, 1, 2, 3, 4, 5];
const [J, BASE, D, ROW] = [6, 7, 8, 9];
const ACC = [10, 11, 12, 13] as const;

/** The body of `dots` (gather: row j is vecs[pos[j]]) or of `dotsPacked` (row j is vecs[j]; `pos` unused). */
function dotsBody(gather: boolean): number[] {
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
    // row = dim * 4 bytes; j = 0
    ...get(DIM),
    ...i32(2),
    op.i32Shl,
    ...set(ROW),
    ...i32(0),
    ...set(J),
    op.loop,
    0x40,
    // base = vecs + pos[j] * row (gather), or vecs + j * row (packed)
    ...get(VECS),
    ...(gather ? [...get(POS), ...get(J), ...i32(2), op.i32Shl, op.i32Add, op.i32Load, 2, 0] : get(J)),
    ...get(ROW),
    op.i32Mul,
    op.i32Add,
    ...set(BASE),
    // four zeroed accumulators
    ...ACC.flatMap((a) => [...simdOp(simd.v128Const, ...new Array(16).fill(0)), ...set(a)]),
    ...i32(0),
    ...set(D),
    op.loop,
    0x40,
    // acc_k += vec[d + 4k .. +4] * q[d + 4k .. +4], k = 0..3 (16 floats a turn)
    ...ACC.flatMap((a, k) => [
      ...get(a),
      ...get(BASE),
      ...get(D),
      op.i32Add,
      ...load(16 * k),
      ...get(Q),
      ...get(D),
      op.i32Add,
      ...load(16 * k),
      ...simdOp(simd.f32x4Mul),
      ...simdOp(simd.f32x4Add),
      ...set(a),
    ]),
    ...get(D),
    ...i32(64),
    op.i32Add,
    op.localTee,
    D,
    ...get(ROW),
    op.i32LtU,
    op.brIf,
    0,
    op.end,
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
    [4, I32],
    [4, V128],
  ]);
  const body = [...locals, ...code];
  return [...leb(body.length), ...body];
}

const MODULE_BYTES = new Uint8Array([
  ...[0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00],
  ...section(1, vec([[0x60, ...vec([[I32], [I32], [I32], [I32], [I32], [I32]]), 0]])),
  ...section(2, vec([[...str('env'), ...str('memory'), 0x02, 0x00, 0x01]])),
  ...section(3, vec([[0], [0]])),
  ...section(
    7,
    vec([
      [...str('dots'), 0x00, 0],
      [...str('dotsPacked'), 0x00, 1],
    ]),
  ),
  ...section(10, vec([dotsBody(true), dotsBody(false)])),
]);

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
      compiled = wasm?.validate(MODULE_BYTES) ? new wasm.Module(MODULE_BYTES) : null;
    } catch {
      compiled = null;
    }
  }
  return compiled ?? undefined;
}

/** Whether this runtime runs the SIMD kernel (else exact scans use the JavaScript loop). */
export function simdDotsSupported(dim: number): boolean {
  return dim > 0 && dim % 16 === 0 && module() !== undefined;
}

const PAGE = 65536;

/** Packed vectors in a WebAssembly memory, and the SIMD scan over rows of them. */
export class SimdDots {
  /** The packed vectors (row i at i * dim): fill once after `create`. */
  get vectors(): Float32Array {
    return this.vectorsView;
  }
  private vectorsView: Float32Array;
  private query: Float32Array;
  private positions: Int32Array;
  private scores: Float32Array;
  private readonly dots: (vecs: number, q: number, pos: number, m: number, dim: number, out: number) => void;
  private readonly dotsPacked: (vecs: number, q: number, pos: number, m: number, dim: number, out: number) => void;

  private constructor(
    private readonly memory: WasmMemory,
    instance: { exports: Record<string, unknown> },
    readonly dim: number,
    readonly count: number,
  ) {
    this.dots = instance.exports.dots as SimdDots['dots'];
    this.dotsPacked = instance.exports.dotsPacked as SimdDots['dots'];
    this.vectorsView = new Float32Array(memory.buffer, 0, count * dim);
    this.query = new Float32Array(memory.buffer, count * dim * 4, dim);
    this.positions = new Int32Array(0);
    this.scores = new Float32Array(0);
  }

  /** Room for `count` vectors of `dim` floats; undefined where the kernel cannot run (see `simdDotsSupported`). */
  static create(dim: number, count: number): SimdDots | undefined {
    const mod = module();
    if (!mod || !simdDotsSupported(dim)) return undefined;
    const bytes = (count + 1) * dim * 4;
    const memory = new wasm!.Memory({ initial: Math.ceil(bytes / PAGE) + 1 });
    return new SimdDots(memory, new wasm!.Instance(mod, { env: { memory } }), dim, count);
  }

  /** Scratch room for `m` positions and scores after the vectors and the query (grown on demand). */
  private room(m: number): void {
    if (this.positions.length >= m) return;
    const start = (this.count + 1) * this.dim * 4;
    const need = start + 8 * m;
    if (need > this.memory.buffer.byteLength) this.memory.grow(Math.ceil((need - this.memory.buffer.byteLength) / PAGE));
    // views are re-made: growing detaches the old buffer
    this.vectorsView = new Float32Array(this.memory.buffer, 0, this.count * this.dim);
    this.query = new Float32Array(this.memory.buffer, this.count * this.dim * 4, this.dim);
    this.positions = new Int32Array(this.memory.buffer, start, m);
    this.scores = new Float32Array(this.memory.buffer, start + 4 * m, m);
  }

  /** scores[j] = vectors[j] . query for every row (a view valid until the next scan). */
  scanAll(query: ArrayLike<number>): Float32Array {
    this.room(this.count);
    this.query.set(query);
    this.dotsPacked(0, this.count * this.dim * 4, 0, this.count, this.dim, this.scores.byteOffset);
    return this.scores.subarray(0, this.count);
  }

  /** scores[j] = vectors[positions[j]] . query (a view valid until the next scan). */
  scan(query: ArrayLike<number>, positions: Int32Array): Float32Array {
    const m = positions.length;
    this.room(m);
    this.query.set(query);
    this.positions.set(positions);
    this.dots(0, this.count * this.dim * 4, this.positions.byteOffset, m, this.dim, this.scores.byteOffset);
    return this.scores.subarray(0, m);
  }
}
