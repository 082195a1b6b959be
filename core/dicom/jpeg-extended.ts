/**
 * JPEG extended sequential (ITU T.81 process 2/4: Huffman, DCT, 8 or 12 bits), the DICOM "JPEG Extended" transfer
 * syntax (1.2.840.10008.1.2.4.51) at 12 bits, which the 8-bit libjpeg-turbo build cannot read. Baseline 8-bit
 * frames keep going to libjpeg-turbo (faster); this decoder takes the 12-bit ones. Progressive, arithmetic and
 * hierarchical JPEG are refused as unsupported. Components are returned as decoded (no colour transform): DICOM
 * 12-bit JPEG is greyscale in practice.
 */
import type { DecodedFrame } from './codecs.ts';
import { ImageError } from '../errors.ts';

/** Zig-zag position k -> natural (row-major) coefficient index. */
const ZIGZAG = Uint8Array.from([
  0, 1, 8, 16, 9, 2, 3, 10, 17, 24, 32, 25, 18, 11, 4, 5, 12, 19, 26, 33, 40, 48, 41, 34, 27, 20, 13, 6, 7, 14, 21, 28, 35, 42, 49, 56, 57,
  50, 43, 36, 29, 22, 15, 23, 30, 37, 44, 51, 58, 59, 52, 45, 38, 31, 39, 46, 53, 60, 61, 54, 47, 55, 62, 63,
]);

/** IDCT basis: COS[x * 8 + u] = C(u) / 2 * cos((2x + 1) u pi / 16). */
const COS = (() => {
  const t = new Float64Array(64);
  for (let x = 0; x < 8; x++)
    for (let u = 0; u < 8; u++) t[x * 8 + u] = (u === 0 ? Math.SQRT1_2 : 1) * 0.5 * Math.cos(((2 * x + 1) * u * Math.PI) / 16);
  return t;
})();

interface HuffmanTable {
  /** For each code length 1..16: the largest code of that length (-1: none), and the index of its first value. */
  maxCode: Int32Array;
  valPtr: Int32Array;
  minCode: Int32Array;
  values: Uint8Array;
}

function huffmanTable(counts: Uint8Array, values: Uint8Array): HuffmanTable {
  const maxCode = new Int32Array(18).fill(-1);
  const valPtr = new Int32Array(17);
  const minCode = new Int32Array(17);
  let code = 0;
  let k = 0;
  for (let len = 1; len <= 16; len++) {
    const n = counts[len - 1]!;
    valPtr[len] = k;
    minCode[len] = code;
    code += n;
    k += n;
    maxCode[len] = n ? code - 1 : -1;
    code <<= 1;
  }
  maxCode[17] = 0x7fffffff;
  return { maxCode, valPtr, minCode, values };
}

interface Component {
  id: number;
  h: number;
  v: number;
  tq: number;
  blocksPerLine: number;
  blocksPerColumn: number;
  /** Decoded samples of this component, (blocksPerLine * 8) wide. */
  plane: Int32Array;
  pred: number;
  dc?: HuffmanTable;
  ac?: HuffmanTable;
}

const fail = (what: string) => new ImageError('corrupt', `JPEG extended data is malformed (${what})`);

class BitReader {
  private bits = 0;
  private count = 0;
  /** Set when a marker ends the entropy-coded segment (zeros are fed from then on). */
  marker = -1;
  constructor(
    private readonly data: Uint8Array,
    public pos: number,
  ) {}

  private fill(): void {
    while (this.count <= 24) {
      let byte = 0;
      if (this.marker < 0 && this.pos < this.data.length) {
        byte = this.data[this.pos]!;
        if (byte === 0xff) {
          const next = this.data[this.pos + 1];
          if (next === 0x00) this.pos += 2;
          else {
            this.marker = next ?? 0xd9;
            byte = 0;
          }
        } else this.pos++;
      }
      this.bits |= byte << (24 - this.count);
      this.count += 8;
    }
  }

  bit(): number {
    if (this.count === 0) this.fill();
    const b = (this.bits >>> 31) & 1;
    this.bits <<= 1;
    this.count--;
    return b;
  }

  receive(n: number): number {
    if (n === 0) return 0;
    if (this.count < n) this.fill();
    const v = this.bits >>> (32 - n);
    this.bits = n === 32 ? 0 : this.bits << n;
    this.count -= n;
    return v;
  }

  decode(t: HuffmanTable): number {
    let code = this.bit();
    let len = 1;
    while (code > t.maxCode[len]!) {
      code = (code << 1) | this.bit();
      if (++len > 16) throw fail('bad Huffman code');
    }
    return t.values[t.valPtr[len]! + code - t.minCode[len]!] ?? 0;
  }

  /** Skip to the restart marker expected after an interval; false when none is there. */
  restart(): boolean {
    this.bits = 0;
    this.count = 0;
    if (this.marker < 0) {
      // the marker may sit right at the reader's position
      if (this.data[this.pos] === 0xff) this.marker = this.data[this.pos + 1] ?? -1;
    }
    if (this.marker < 0xd0 || this.marker > 0xd7) return false;
    this.pos += 2;
    this.marker = -1;
    return true;
  }
}

const extend = (v: number, n: number) => (v < 1 << (n - 1) ? v - (1 << n) + 1 : v);

/** Decode a JPEG extended (or baseline) sequential Huffman frame. */
export function decodeJpegExtended(data: Uint8Array): DecodedFrame {
  const u16 = (p: number) => (data[p]! << 8) | data[p + 1]!;
  if (data[0] !== 0xff || data[1] !== 0xd8) throw fail('no SOI');
  const quant: (Int32Array | undefined)[] = [];
  const dcTables: (HuffmanTable | undefined)[] = [];
  const acTables: (HuffmanTable | undefined)[] = [];
  let restartInterval = 0;
  let precision = 8;
  let width = 0;
  let height = 0;
  let components: Component[] = [];
  let hMax = 1;
  let vMax = 1;
  let scans = 0;
  let p = 2;
  while (p + 4 <= data.length) {
    if (data[p] !== 0xff) throw fail('marker expected');
    const marker = data[p + 1]!;
    if (marker === 0xff) {
      p++;
      continue;
    }
    if (marker === 0xd9) break;
    const length = u16(p + 2);
    const seg = p + 4;
    const end = p + 2 + length;
    if (end > data.length) throw new ImageError('truncated', 'JPEG extended data is truncated');
    if (marker === 0xdb) {
      for (let q = seg; q < end; ) {
        const pq = data[q]! >> 4;
        const tq = data[q]! & 15;
        const table = new Int32Array(64);
        for (let k = 0; k < 64; k++) table[k] = pq ? u16(q + 1 + 2 * k) : data[q + 1 + k]!;
        quant[tq] = table;
        q += 1 + 64 * (pq ? 2 : 1);
      }
    } else if (marker === 0xc4) {
      for (let q = seg; q < end; ) {
        const tc = data[q]! >> 4;
        const th = data[q]! & 15;
        const counts = data.subarray(q + 1, q + 17);
        const total = counts.reduce((a, b) => a + b, 0);
        const table = huffmanTable(counts, data.slice(q + 17, q + 17 + total));
        (tc === 0 ? dcTables : acTables)[th] = table;
        q += 17 + total;
      }
    } else if (marker === 0xdd) {
      restartInterval = u16(seg);
    } else if (marker === 0xc0 || marker === 0xc1) {
      precision = data[seg]!;
      if (precision !== 8 && precision !== 12) throw new ImageError('unsupported', `JPEG precision ${precision} is not supported`);
      height = u16(seg + 1);
      width = u16(seg + 3);
      const n = data[seg + 5]!;
      if (!width || !height || !n) throw fail('frame header');
      components = [];
      for (let i = 0; i < n; i++) {
        const o = seg + 6 + 3 * i;
        components.push({
          id: data[o]!,
          h: data[o + 1]! >> 4 || 1,
          v: data[o + 1]! & 15 || 1,
          tq: data[o + 2]!,
          blocksPerLine: 0,
          blocksPerColumn: 0,
          plane: new Int32Array(0),
          pred: 0,
        });
      }
      hMax = Math.max(...components.map((c) => c.h));
      vMax = Math.max(...components.map((c) => c.v));
      const mcusX = Math.ceil(width / (8 * hMax));
      const mcusY = Math.ceil(height / (8 * vMax));
      for (const c of components) {
        c.blocksPerLine = mcusX * c.h;
        c.blocksPerColumn = mcusY * c.v;
        c.plane = new Int32Array(c.blocksPerLine * 8 * c.blocksPerColumn * 8);
      }
    } else if ((marker >= 0xc2 && marker <= 0xcf && marker !== 0xc4 && marker !== 0xc8 && marker !== 0xcc) || marker === 0xf7) {
      throw new ImageError('unsupported', `JPEG process SOF${(marker - 0xc0).toString(16)} is not supported by the extended decoder`);
    } else if (marker === 0xda) {
      if (!components.length) throw fail('scan before frame header');
      const ns = data[seg]!;
      const scanComponents: Component[] = [];
      for (let i = 0; i < ns; i++) {
        const c = components.find((x) => x.id === data[seg + 1 + 2 * i]);
        if (!c) throw fail('scan names an unknown component');
        c.dc = dcTables[data[seg + 2 + 2 * i]! >> 4];
        c.ac = acTables[data[seg + 2 + 2 * i]! & 15];
        if (!c.dc || !c.ac || !quant[c.tq]) throw fail('missing Huffman or quantisation table');
        scanComponents.push(c);
      }
      p = decodeScan(data, end, scanComponents, quant, restartInterval, width, height, hMax, vMax);
      scans++;
      continue;
    }
    p = end;
  }
  if (!scans) throw new ImageError('truncated', 'JPEG extended data has no scan');
  return assemble(components, width, height, precision, hMax, vMax);
}

function decodeScan(
  data: Uint8Array,
  start: number,
  comps: Component[],
  quant: (Int32Array | undefined)[],
  restartInterval: number,
  width: number,
  height: number,
  hMax: number,
  vMax: number,
): number {
  const reader = new BitReader(data, start);
  const coef = new Float64Array(64);
  const tmp = new Float64Array(64);
  for (const c of comps) c.pred = 0;
  const block = (c: Component, row: number, col: number) => {
    const q = quant[c.tq]!;
    coef.fill(0);
    const t = reader.decode(c.dc!);
    c.pred += t ? extend(reader.receive(t), t) : 0;
    coef[0] = c.pred * q[0]!;
    for (let k = 1; k < 64; ) {
      const rs = reader.decode(c.ac!);
      const r = rs >> 4;
      const s = rs & 15;
      if (s === 0) {
        if (r !== 15) break;
        k += 16;
        continue;
      }
      k += r;
      if (k > 63) throw fail('coefficient index past 63');
      coef[ZIGZAG[k]!] = extend(reader.receive(s), s) * q[k]!;
      k++;
    }
    idct(coef, tmp, c.plane, c.blocksPerLine * 8, row * 8, col * 8);
  };
  let mcus: number;
  let mcusPerLine: number;
  if (comps.length === 1) {
    const c = comps[0]!;
    // a non-interleaved scan covers only the component's own (unpadded) blocks
    mcusPerLine = Math.ceil(Math.ceil((width * c.h) / hMax) / 8);
    mcus = mcusPerLine * Math.ceil(Math.ceil((height * c.v) / vMax) / 8);
  } else {
    mcusPerLine = Math.ceil(width / (8 * hMax));
    mcus = mcusPerLine * Math.ceil(height / (8 * vMax));
  }
  for (let m = 0; m < mcus; m++) {
    if (restartInterval && m > 0 && m % restartInterval === 0) {
      if (!reader.restart()) throw fail('restart marker missing');
      for (const c of comps) c.pred = 0;
    }
    const mr = Math.floor(m / mcusPerLine);
    const mc = m % mcusPerLine;
    if (comps.length === 1) block(comps[0]!, mr, mc);
    else for (const c of comps) for (let v = 0; v < c.v; v++) for (let h = 0; h < c.h; h++) block(c, mr * c.v + v, mc * c.h + h);
  }
  // continue after the entropy-coded data, at the next marker
  let p = reader.pos;
  while (p + 1 < data.length && !(data[p] === 0xff && data[p + 1] !== 0x00 && !(data[p + 1]! >= 0xd0 && data[p + 1]! <= 0xd7))) p++;
  return p;
}

/** 2-D inverse DCT of one block, written (not yet level-shifted) into the plane. */
function idct(coef: Float64Array, tmp: Float64Array, plane: Int32Array, stride: number, y0: number, x0: number): void {
  for (let v = 0; v < 8; v++)
    for (let x = 0; x < 8; x++) {
      let s = 0;
      for (let u = 0; u < 8; u++) s += COS[x * 8 + u]! * coef[v * 8 + u]!;
      tmp[v * 8 + x] = s;
    }
  for (let y = 0; y < 8; y++)
    for (let x = 0; x < 8; x++) {
      let s = 0;
      for (let v = 0; v < 8; v++) s += COS[y * 8 + v]! * tmp[v * 8 + x]!;
      plane[(y0 + y) * stride + x0 + x] = Math.round(s);
    }
}

function assemble(components: Component[], width: number, height: number, precision: number, hMax: number, vMax: number): DecodedFrame {
  const n = components.length;
  const shift = 1 << (precision - 1);
  const max = (1 << precision) - 1;
  const out = precision > 8 ? new Uint16Array(width * height * n) : new Uint8Array(width * height * n);
  components.forEach((c, ci) => {
    const stride = c.blocksPerLine * 8;
    for (let y = 0; y < height; y++) {
      const sy = Math.floor((y * c.v) / vMax);
      for (let x = 0; x < width; x++) {
        const v = c.plane[sy * stride + Math.floor((x * c.h) / hMax)]! + shift;
        out[(y * width + x) * n + ci] = v < 0 ? 0 : Math.min(v, max);
      }
    }
  });
  return { width, height, bitsPerSample: precision, components: n, signed: false, samples: out };
}
