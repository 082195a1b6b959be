/**
 * The WebAssembly module of the SIMD inner-product kernel (core/util/simd-dots.ts), assembled here from its
 * instructions: two functions over rows of `dim` floats, `dots` (gather: row j at vecs + pos[j] * stride) and
 * `dotsPacked` (row j at vecs + j * stride), each writing out[j] = row j . query: 16 floats a turn into four f32x4
 * accumulators, their lanes summed at the row's end; with lead > 0, `dots` first loads a word of every cache
 * line of every row (and of the `lead` bytes before it), back to back, so that a graph walk's scattered rows miss the
 * cache together rather than one after another. The module imports its memory (`env.memory`).
 */
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
const [J, BASE, NEXT, OFF, SPAN, ROW] = [8, 9, 10, 11, 12, 13];
const ACC = [14, 15, 16, 17] as const;

const get = (i: number) => [op.localGet, i];
const set = (i: number) => [op.localSet, i];
const i32 = (v: number) => [op.i32Const, ...sleb(v)];
const load = (offset: number) => simdOp(simd.v128Load, 2, ...leb(offset)); // align 4 bytes (hint), offset
/** A loop: `counter` = 0, then `body` while (counter += step) < limit (limit a local). */
const loop = (counter: number, step: number, limit: number, body: number[]) => [
  ...i32(0),
  ...set(counter),
  op.loop,
  0x40,
  ...body,
  ...get(counter),
  ...i32(step),
  op.i32Add,
  op.localTee,
  counter,
  ...get(limit),
  op.i32LtU,
  op.brIf,
  0,
  op.end,
];
/** Row j's address: vecs + pos[j] * stride (gather), or vecs + j * stride (packed). */
const rowAddress = (gather: boolean) => [
  ...get(VECS),
  ...(gather ? [...get(POS), ...get(J), ...i32(2), op.i32Shl, op.i32Add, op.i32Load, 2, 0] : get(J)),
  ...get(STRIDE),
  op.i32Mul,
  op.i32Add,
];

/** The body of `dots` (gather: row j at vecs + pos[j] * stride) or of `dotsPacked` (row j at vecs + j * stride). */
function dotsBody(gather: boolean): number[] {
  const code: number[] = [
    // nothing to do for m = 0; row = dim * 4 bytes
    ...get(M),
    op.i32Eqz,
    op.brIf,
    0,
    ...get(DIM),
    ...i32(2),
    op.i32Shl,
    ...set(ROW),
    // gather: first load a word of every cache line of every row (and of the `lead` bytes before it: a graph walk's
    // link lists), back to back, so that their cache misses overlap (WebAssembly has no prefetch instruction; the sums
    // alone would wait for each row's misses in turn). Only when asked (lead > 0: a graph walk's few scattered rows); a
    // scan's rows come in order, and the hardware's own prefetching serves them better than a second pass would.
    ...(gather
      ? [
          ...get(LEAD),
          op.if,
          0x40,
          // span = row + lead bytes from next = row address - lead
          ...get(ROW),
          ...get(LEAD),
          op.i32Add,
          ...set(SPAN),
          ...loop(J, 1, M, [
            ...rowAddress(true),
            ...get(LEAD),
            op.i32Sub,
            ...set(NEXT),
            ...loop(OFF, 64, SPAN, [...get(NEXT), ...get(OFF), op.i32Add, op.i32Load, 2, 0, op.drop]),
          ]),
          op.end,
        ]
      : []),
    ...loop(J, 1, M, [
      ...rowAddress(gather),
      ...set(BASE),
      // four zeroed accumulators; then 16 floats a turn: acc_k += vec[d + 4k .. +4] * q[d + 4k .. +4], k = 0..3
      // (measured 1.4-1.8x faster than the sum unrolled over the whole row, at constant offsets)
      ...ACC.flatMap((a) => [...simdOp(simd.v128Const, ...new Array(16).fill(0)), ...set(a)]),
      ...loop(
        OFF,
        64,
        ROW,
        ACC.flatMap((a, k) => [
          ...get(a),
          ...get(BASE),
          ...get(OFF),
          op.i32Add,
          ...load(16 * k),
          ...get(Q),
          ...get(OFF),
          op.i32Add,
          ...load(16 * k),
          ...simdOp(simd.f32x4Mul),
          ...simdOp(simd.f32x4Add),
          ...set(a),
        ]),
      ),
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
      // (lane 0 + lane 1) + (lane 2 + lane 3)
      ...[0, 1].flatMap((lane) => [...get(ACC[0]), ...simdOp(simd.f32x4ExtractLane, lane)]),
      op.f32Add,
      ...[2, 3].flatMap((lane) => [...get(ACC[0]), ...simdOp(simd.f32x4ExtractLane, lane)]),
      op.f32Add,
      op.f32Add,
      op.f32Store,
      2,
      0,
    ]),
    op.end,
  ];
  const locals = vec([
    [6, I32],
    [4, V128],
  ]);
  const body = [...locals, ...code];
  return [...leb(body.length), ...body];
}

/** The module's bytes (validated and compiled once: core/util/simd-dots.ts). */
export function moduleBytes(): Uint8Array {
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
    ...section(10, vec([dotsBody(true), dotsBody(false)])),
  ]);
}
