/**
 * A minimal DICOM Part 10 writer for tests: explicit VR (little or big endian) datasets with uncompressed or
 * encapsulated pixel data, so tests can make DICOM files from real images without fixtures.
 */
import { deflateRawSync } from 'node:zlib';
export interface DicomElement {
  tag: number; // (group << 16) | element
  vr: string;
  value: Uint8Array | string | number | number[];
}

const LONG_VRS = new Set(['OB', 'OW', 'OF', 'SQ', 'UN', 'UT', 'UC', 'UR']);

function encodeValue(vr: string, value: DicomElement['value'], little: boolean): Uint8Array {
  if (value instanceof Uint8Array) return value.length % 2 ? concat([value, new Uint8Array([0])]) : value;
  if (typeof value === 'string') {
    const pad = vr === 'UI' ? '\0' : ' ';
    const s = value.length % 2 ? value + pad : value;
    return new TextEncoder().encode(s);
  }
  const values = Array.isArray(value) ? value : [value];
  if (vr === 'US') {
    const b = new Uint8Array(2 * values.length);
    const v = new DataView(b.buffer);
    values.forEach((x, i) => v.setUint16(2 * i, x, little));
    return b;
  }
  if (vr === 'UL') {
    const b = new Uint8Array(4 * values.length);
    const v = new DataView(b.buffer);
    values.forEach((x, i) => v.setUint32(4 * i, x, little));
    return b;
  }
  if (vr === 'DS' || vr === 'IS') return encodeValue(vr, values.map(String).join('\\'), little);
  throw new Error(`test writer cannot encode VR ${vr}`);
}

export function concat(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

function encodeElement(e: DicomElement, little: boolean, undefinedLength = false): Uint8Array {
  const value = encodeValue(e.vr, e.value, little);
  const long = LONG_VRS.has(e.vr);
  const head = new Uint8Array(long ? 12 : 8);
  const v = new DataView(head.buffer);
  v.setUint16(0, e.tag >>> 16, little);
  v.setUint16(2, e.tag & 0xffff, little);
  head[4] = e.vr.charCodeAt(0);
  head[5] = e.vr.charCodeAt(1);
  if (long) v.setUint32(8, undefinedLength ? 0xffffffff : value.length, little);
  else v.setUint16(6, value.length, little);
  return concat([head, value]);
}

function item(tag: number, payload: Uint8Array): Uint8Array {
  const head = new Uint8Array(8);
  const v = new DataView(head.buffer);
  v.setUint16(0, 0xfffe, true);
  v.setUint16(2, tag, true);
  v.setUint32(4, payload.length, true);
  return concat([head, payload]);
}

export interface DicomImageOptions {
  transferSyntax: string;
  rows: number;
  columns: number;
  bitsAllocated: 8 | 16;
  bitsStored?: number;
  pixelRepresentation?: 0 | 1;
  samplesPerPixel?: 1 | 3;
  photometric?: string;
  window?: { center: number; width: number };
  rescale?: { slope: number; intercept: number };
  /** Uncompressed pixel bytes, or the compressed frame when `encapsulated`. */
  pixelData: Uint8Array;
  encapsulated?: boolean;
  /** Leave out the pixel data element (a non-image DICOM object). */
  omitPixelData?: boolean;
  /** NumberOfFrames (IS), written as given (fuzzing). */
  numberOfFrames?: string;
}

export function writeDicom(o: DicomImageOptions): Uint8Array {
  const bigEndian = o.transferSyntax === '1.2.840.10008.1.2.2';
  const metaElements: DicomElement[] = [
    { tag: 0x00020001, vr: 'OB', value: new Uint8Array([0, 1]) },
    { tag: 0x00020002, vr: 'UI', value: '1.2.840.10008.5.1.4.1.1.1' },
    { tag: 0x00020003, vr: 'UI', value: '1.2.3.4.5.6.7.8' },
    { tag: 0x00020010, vr: 'UI', value: o.transferSyntax },
    { tag: 0x00020012, vr: 'UI', value: '1.2.3.4.99' },
  ];
  const metaBody = concat(metaElements.map((e) => encodeElement(e, true)));
  const meta = concat([encodeElement({ tag: 0x00020000, vr: 'UL', value: metaBody.length }, true), metaBody]);
  const bits = o.bitsStored ?? o.bitsAllocated;
  const ds: DicomElement[] = [
    { tag: 0x00080016, vr: 'UI', value: '1.2.840.10008.5.1.4.1.1.1' },
    { tag: 0x00080018, vr: 'UI', value: '1.2.3.4.5.6.7.8' },
    { tag: 0x00280002, vr: 'US', value: o.samplesPerPixel ?? 1 },
    { tag: 0x00280004, vr: 'CS', value: o.photometric ?? 'MONOCHROME2' },
    ...((o.samplesPerPixel ?? 1) === 3 ? [{ tag: 0x00280006, vr: 'US', value: 0 }] : []),
    { tag: 0x00280010, vr: 'US', value: o.rows },
    { tag: 0x00280011, vr: 'US', value: o.columns },
    { tag: 0x00280100, vr: 'US', value: o.bitsAllocated },
    { tag: 0x00280101, vr: 'US', value: bits },
    { tag: 0x00280102, vr: 'US', value: bits - 1 },
    { tag: 0x00280103, vr: 'US', value: o.pixelRepresentation ?? 0 },
  ];
  if (o.window) ds.push({ tag: 0x00281050, vr: 'DS', value: o.window.center }, { tag: 0x00281051, vr: 'DS', value: o.window.width });
  if (o.rescale) ds.push({ tag: 0x00281052, vr: 'DS', value: o.rescale.intercept }, { tag: 0x00281053, vr: 'DS', value: o.rescale.slope });
  if (o.numberOfFrames !== undefined) ds.push({ tag: 0x00280008, vr: 'IS', value: o.numberOfFrames });
  ds.sort((a, b) => a.tag - b.tag);
  const body = ds.map((e) => encodeElement(e, !bigEndian));
  if (!o.omitPixelData) {
    if (o.encapsulated) {
      const head = encodeElement({ tag: 0x7fe00010, vr: 'OB', value: new Uint8Array(0) }, true, true);
      const delimiter = new Uint8Array([0xfe, 0xff, 0xdd, 0xe0, 0, 0, 0, 0]);
      body.push(
        head,
        item(0xe000, new Uint8Array(0)),
        item(0xe000, o.pixelData.length % 2 ? concat([o.pixelData, new Uint8Array([0])]) : o.pixelData),
        delimiter,
      );
    } else {
      body.push(encodeElement({ tag: 0x7fe00010, vr: o.bitsAllocated === 16 ? 'OW' : 'OB', value: o.pixelData }, !bigEndian));
    }
  }
  const preamble = new Uint8Array(132);
  preamble.set(new TextEncoder().encode('DICM'), 128);
  // Deflated explicit VR little endian: the data set after the meta group is raw-deflated
  if (o.transferSyntax === '1.2.840.10008.1.2.1.99') return concat([preamble, meta, new Uint8Array(deflateRawSync(concat(body)))]);
  return concat([preamble, meta, ...body]);
}

/** 16-bit samples as bytes in the given byte order. */
export function uint16Bytes(values: ArrayLike<number>, little = true): Uint8Array {
  const b = new Uint8Array(values.length * 2);
  const v = new DataView(b.buffer);
  for (let i = 0; i < values.length; i++) v.setUint16(2 * i, values[i]!, little);
  return b;
}

/** PackBits-encode one RLE segment (repeat runs for 3+ equal bytes, literal runs otherwise). */
function packBits(data: Uint8Array): Uint8Array {
  const out: number[] = [];
  let i = 0;
  while (i < data.length) {
    let run = 1;
    while (i + run < data.length && run < 128 && data[i + run] === data[i]) run++;
    if (run >= 3) {
      out.push((1 - run) & 0xff, data[i]!);
      i += run;
      continue;
    }
    const start = i;
    while (i < data.length && i - start < 128) {
      if (i + 2 < data.length && data[i] === data[i + 1] && data[i] === data[i + 2]) break;
      i++;
    }
    out.push(i - start - 1, ...data.subarray(start, i));
  }
  if (out.length % 2) out.push(0x80); // no-op pad byte
  return new Uint8Array(out);
}

/** RLE Lossless frame for grey samples of 1 or 2 bytes (segments most significant byte first). */
export function encodeRle(samples: ArrayLike<number>, bytesPerSample: 1 | 2): Uint8Array {
  const n = samples.length;
  const segments: Uint8Array[] = [];
  for (let s = 0; s < bytesPerSample; s++) {
    const shift = 8 * (bytesPerSample - 1 - s);
    const seg = new Uint8Array(n);
    for (let i = 0; i < n; i++) seg[i] = (samples[i]! >> shift) & 0xff;
    segments.push(packBits(seg));
  }
  const header = new Uint8Array(64);
  const v = new DataView(header.buffer);
  v.setUint32(0, segments.length, true);
  let offset = 64;
  segments.forEach((seg, i) => {
    v.setUint32(4 + 4 * i, offset, true);
    offset += seg.length;
  });
  return concat([header, ...segments]);
}

/**
 * A minimal lossless JPEG (process 14, first-order prediction, SV1) encoder for 8-bit grey, so the test can check
 * the JPEG lossless decoding path: one Huffman table with a 4-bit code per difference category 0..8.
 */
export function encodeJpegLossless8(data: Uint8Array, width: number, height: number): Uint8Array {
  const out: number[] = [0xff, 0xd8];
  const segment = (marker: number, body: number[]) => out.push(0xff, marker, (body.length + 2) >> 8, (body.length + 2) & 0xff, ...body);
  segment(0xc3, [8, height >> 8, height & 0xff, width >> 8, width & 0xff, 1, 1, 0x11, 0]);
  const bits = new Array<number>(16).fill(0);
  bits[3] = 9; // nine codes of length 4: category c -> code c
  segment(0xc4, [0x00, ...bits, 0, 1, 2, 3, 4, 5, 6, 7, 8]);
  segment(0xda, [1, 1, 0x00, 1, 0, 0]); // one component, table 0, predictor 1 (left), Se 0, point transform 0
  let acc = 0;
  let nbits = 0;
  const put = (value: number, n: number) => {
    for (let i = n - 1; i >= 0; i--) {
      acc = (acc << 1) | ((value >> i) & 1);
      if (++nbits === 8) {
        out.push(acc);
        if (acc === 0xff) out.push(0x00);
        acc = 0;
        nbits = 0;
      }
    }
  };
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const pred = x === 0 && y === 0 ? 128 : y === 0 ? data[x - 1]! : x === 0 ? data[(y - 1) * width]! : data[y * width + x - 1]!;
      const diff = data[y * width + x]! - pred;
      const size = diff === 0 ? 0 : Math.floor(Math.log2(Math.abs(diff))) + 1;
      put(size, 4);
      if (size > 0) put(diff > 0 ? diff : diff + (1 << size) - 1, size);
    }
  }
  if (nbits > 0) put(0xff, 8 - nbits);
  out.push(0xff, 0xd9);
  return new Uint8Array(out);
}
