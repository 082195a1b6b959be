/**
 * DICOM Part 10 -> 8-bit grey pixels. Parsing by dicom-parser; pixel data uncompressed (little and big endian)
 * or compressed (RLE, JPEG baseline/extended, JPEG lossless, JPEG-LS, JPEG 2000). Values go through the modality
 * LUT (rescale slope/intercept), then the file's VOI window or, without one, a robust 0.5-99.5 percentile window;
 * MONOCHROME1 is inverted so that air is always dark. Only the first frame of a multi-frame file is used.
 */
import dicomParser from 'dicom-parser';
import { inflateRawSync } from 'node:zlib';
import { decodeJpeg2000, decodeJpegBaseline, decodeJpegLossless, decodeJpegLs, type DecodedFrame } from './codecs.ts';
import { checkDimensions, ImageError, type ImageLimits } from './errors.ts';
import { decodeRle } from './rle.ts';

export interface GreyImage {
  width: number;
  height: number;
  /** One byte per pixel, row-major. */
  data: Uint8Array;
}

export const TRANSFER_SYNTAX = {
  implicitLittle: '1.2.840.10008.1.2',
  explicitLittle: '1.2.840.10008.1.2.1',
  deflatedExplicitLittle: '1.2.840.10008.1.2.1.99',
  explicitBig: '1.2.840.10008.1.2.2',
  jpegBaseline: '1.2.840.10008.1.2.4.50',
  jpegExtended: '1.2.840.10008.1.2.4.51',
  jpegLossless: '1.2.840.10008.1.2.4.57',
  jpegLosslessSV1: '1.2.840.10008.1.2.4.70',
  jpegLsLossless: '1.2.840.10008.1.2.4.80',
  jpegLsNearLossless: '1.2.840.10008.1.2.4.81',
  jpeg2000Lossless: '1.2.840.10008.1.2.4.90',
  jpeg2000: '1.2.840.10008.1.2.4.91',
  rle: '1.2.840.10008.1.2.5',
} as const;

const SUPPORTED = new Set<string>(Object.values(TRANSFER_SYNTAX));

/** A deflated data set may not inflate past this (a deflate bomb is refused, not inflated into memory). */
const MAX_INFLATED_BYTES = 512 << 20;

/** dicom-parser's own Node path calls Buffer#copy (a Uint8Array has none): inflate here, for both. */
function inflater(byteArray: Uint8Array, position: number): Uint8Array {
  let inflated: Uint8Array;
  try {
    inflated = inflateRawSync(byteArray.subarray(position), { maxOutputLength: MAX_INFLATED_BYTES });
  } catch (err) {
    const tooBig = (err as NodeJS.ErrnoException).code === 'ERR_BUFFER_TOO_LARGE';
    throw new ImageError(
      tooBig ? 'too-large' : 'corrupt',
      tooBig ? 'deflated DICOM data set inflates past 512 MB' : 'deflated DICOM data set could not be inflated',
    );
  }
  const full = new Uint8Array(position + inflated.length);
  full.set(byteArray.subarray(0, position));
  full.set(inflated, position);
  return full;
}

/** True when the bytes look like DICOM Part 10 ("DICM" after the 128-byte preamble) or an ACR-NEMA file. */
export function isDicom(bytes: Uint8Array): boolean {
  return (
    (bytes.length >= 132 && bytes[128] === 0x44 && bytes[129] === 0x49 && bytes[130] === 0x43 && bytes[131] === 0x4d) || isAcrNema(bytes)
  );
}

/**
 * A file written ACR-NEMA style (old archives): no preamble, no "DICM", no file meta group; the data set starts at
 * byte 0 in implicit VR little endian, with a group 0008 element (usually its group length, 4 bytes long).
 */
export function isAcrNema(bytes: Uint8Array): boolean {
  if (bytes.length < 16 || bytes[0] !== 0x08 || bytes[1] !== 0x00) return false;
  const length = bytes[4]! | (bytes[5]! << 8) | (bytes[6]! << 16) | (bytes[7]! << 24);
  return length >= 0 && length < 1024 && bytes[3] === 0x00;
}

function numberList(ds: dicomParser.DataSet, tag: string): number[] {
  const s = ds.string(tag);
  if (!s) return [];
  return s
    .split('\\')
    .map((v) => Number(v.trim()))
    .filter((v) => Number.isFinite(v));
}

/** A decimal-string element that, when present, must be a finite number (NaN would silently blank the image). */
function strictNumber(ds: dicomParser.DataSet, tag: string, what: string): number | undefined {
  const s = ds.string(tag);
  if (s === undefined || s.trim() === '') return undefined;
  const v = Number(s.split('\\')[0]!.trim());
  if (!Number.isFinite(v)) throw new ImageError('corrupt', `DICOM ${what} is not a number`);
  return v;
}

interface PixelModule {
  rows: number;
  columns: number;
  bitsAllocated: number;
  /** NumberOfFrames (the first frame is decoded). */
  frames: number;
  bitsStored: number;
  pixelRepresentation: number;
  samplesPerPixel: number;
  planarConfiguration: number;
  photometric: string;
  transferSyntax: string;
}

function readPixelModule(ds: dicomParser.DataSet, limits: ImageLimits): PixelModule {
  const rows = ds.uint16('x00280010') ?? 0;
  const columns = ds.uint16('x00280011') ?? 0;
  if (!ds.elements.x7fe00010) throw new ImageError('unsupported', 'DICOM file has no pixel data (not an image)');
  checkDimensions(columns, rows, limits, 'DICOM image');
  const bitsAllocated = ds.uint16('x00280100') ?? 16;
  if (![8, 16].includes(bitsAllocated))
    throw new ImageError('unsupported', `DICOM bits allocated ${bitsAllocated} is not supported (8 or 16)`);
  const samplesPerPixel = ds.uint16('x00280002') ?? 1;
  if (samplesPerPixel !== 1 && samplesPerPixel !== 3) throw new ImageError('unsupported', `DICOM samples per pixel ${samplesPerPixel}`);
  // Header values that would decode to a wrong picture instead of an error (fuzzed or broken writers).
  const bitsStored = ds.uint16('x00280101') ?? bitsAllocated;
  if (bitsStored < 1 || bitsStored > bitsAllocated)
    throw new ImageError('corrupt', `DICOM bits stored ${bitsStored} does not fit bits allocated ${bitsAllocated}`);
  const framesText = ds.string('x00280008');
  const frames = framesText === undefined ? 1 : Number(framesText.trim());
  if (!Number.isInteger(frames) || frames < 1 || frames > 100_000)
    throw new ImageError('corrupt', `DICOM number of frames "${String(framesText).slice(0, 20)}" is not valid`);
  return {
    rows,
    columns,
    bitsAllocated,
    frames,
    bitsStored,
    pixelRepresentation: ds.uint16('x00280103') ?? 0,
    samplesPerPixel,
    planarConfiguration: ds.uint16('x00280006') ?? 0,
    photometric: (ds.string('x00280004') ?? 'MONOCHROME2').trim().toUpperCase(),
    transferSyntax: (ds.string('x00020010') ?? TRANSFER_SYNTAX.implicitLittle).replace(/\0/g, '').trim(),
  };
}

type Samples = Uint8Array | Uint16Array | Int16Array;

function firstFrameBytes(ds: dicomParser.DataSet, bytes: Uint8Array, pm: PixelModule): Uint8Array {
  const el = ds.elements.x7fe00010!;
  if (el.encapsulatedPixelData) {
    try {
      const table = el.basicOffsetTable?.length ? el.basicOffsetTable : dicomParser.createJPEGBasicOffsetTable(ds, el);
      return dicomParser.readEncapsulatedImageFrame(ds, el, 0, table);
    } catch {
      // Single-frame files whose fragments cannot be mapped to frames: use all fragments.
      try {
        return dicomParser.readEncapsulatedPixelDataFromFragments(ds, el, 0, el.fragments?.length ?? 1);
      } catch {
        throw new ImageError('corrupt', 'DICOM encapsulated pixel data is malformed');
      }
    }
  }
  const frameBytes = pm.rows * pm.columns * pm.samplesPerPixel * (pm.bitsAllocated / 8);
  if (el.dataOffset + Math.min(el.length, frameBytes) > bytes.length || el.length < frameBytes)
    throw new ImageError('truncated', `DICOM pixel data holds ${Math.min(el.length, bytes.length - el.dataOffset)} of ${frameBytes} bytes`);
  // More data than the header describes means the header is wrong (e.g. 8 bits allocated over 16-bit pixels):
  // decoding it would give a wrong picture, not an error. One padding byte is allowed (even length).
  const described = frameBytes * pm.frames;
  if (el.length > described + 1 && el.length !== 0xffffffff)
    throw new ImageError(
      'corrupt',
      `DICOM pixel data holds ${el.length} bytes but the header describes ${described} (${pm.frames} frame(s) of ${pm.columns}x${pm.rows}, ${pm.bitsAllocated} bits)`,
    );
  return bytes.subarray(el.dataOffset, el.dataOffset + frameBytes);
}

function rawSamples(frame: Uint8Array, pm: PixelModule, bigEndian: boolean): Samples {
  if (pm.bitsAllocated === 8) return frame;
  const n = frame.length >> 1;
  const view = new DataView(frame.buffer, frame.byteOffset, n * 2);
  const out = pm.pixelRepresentation === 1 ? new Int16Array(n) : new Uint16Array(n);
  for (let i = 0; i < n; i++) out[i] = pm.pixelRepresentation === 1 ? view.getInt16(2 * i, !bigEndian) : view.getUint16(2 * i, !bigEndian);
  return out;
}

/**
 * The width and height a JPEG-family codestream declares (JPEG SOFn, JPEG-LS SOF55, JPEG 2000 SIZ), read before any
 * decoder allocates: a 50 KB file whose header claims 20000x20000 must be refused, not decoded into gigabytes.
 */
export function codestreamSize(frame: Uint8Array): { width: number; height: number } | undefined {
  const u16 = (p: number) => (frame[p]! << 8) | frame[p + 1]!;
  const u32 = (p: number) => frame[p]! * 2 ** 24 + ((frame[p + 1]! << 16) | (frame[p + 2]! << 8) | frame[p + 3]!);
  if (frame[0] === 0xff && frame[1] === 0x4f) {
    // JPEG 2000 codestream: SOC, then SIZ: Lsiz Rsiz Xsiz Ysiz XOsiz YOsiz
    if (frame[2] !== 0xff || frame[3] !== 0x51 || frame.length < 24) return undefined;
    return { width: u32(8) - u32(16), height: u32(12) - u32(20) };
  }
  if (frame[0] !== 0xff || frame[1] !== 0xd8) return undefined;
  let p = 2;
  while (p + 9 < frame.length) {
    if (frame[p] !== 0xff) return undefined;
    const marker = frame[p + 1]!;
    if (marker === 0xff) {
      p++;
      continue;
    }
    const sof = (marker >= 0xc0 && marker <= 0xcf && marker !== 0xc4 && marker !== 0xc8 && marker !== 0xcc) || marker === 0xf7;
    if (sof) return { height: u16(p + 5), width: u16(p + 7) };
    if (marker === 0xda) return undefined; // scan data before any frame header
    p += 2 + u16(p + 2);
  }
  return undefined;
}

function checkCodestreamSize(frame: Uint8Array, pm: PixelModule): void {
  const size = codestreamSize(frame);
  if (size && (size.width !== pm.columns || size.height !== pm.rows))
    throw new ImageError('corrupt', `compressed frame declares ${size.width}x${size.height} but the header says ${pm.columns}x${pm.rows}`);
}

async function decodeFrame(frame: Uint8Array, pm: PixelModule): Promise<Samples> {
  const signed = pm.pixelRepresentation === 1;
  if (pm.transferSyntax.startsWith('1.2.840.10008.1.2.4.')) checkCodestreamSize(frame, pm);
  const bytesPerSample = pm.bitsAllocated / 8;
  const expected = pm.rows * pm.columns * pm.samplesPerPixel;
  let samples: Samples;
  switch (pm.transferSyntax) {
    case TRANSFER_SYNTAX.implicitLittle:
    case TRANSFER_SYNTAX.explicitLittle:
    case TRANSFER_SYNTAX.deflatedExplicitLittle:
      return rawSamples(frame, pm, false);
    case TRANSFER_SYNTAX.explicitBig:
      return rawSamples(frame, pm, true);
    case TRANSFER_SYNTAX.rle: {
      const bytes = decodeRle(frame, pm.columns, pm.rows, bytesPerSample, pm.samplesPerPixel);
      return rawSamples(bytes, { ...pm, planarConfiguration: 0 }, false);
    }
    case TRANSFER_SYNTAX.jpegBaseline:
    case TRANSFER_SYNTAX.jpegExtended: {
      samples = frameSamples(await decodeJpegBaseline(frame), pm);
      break;
    }
    case TRANSFER_SYNTAX.jpegLossless:
    case TRANSFER_SYNTAX.jpegLosslessSV1:
      samples = decodeJpegLossless(frame, bytesPerSample, signed);
      break;
    case TRANSFER_SYNTAX.jpegLsLossless:
    case TRANSFER_SYNTAX.jpegLsNearLossless: {
      samples = frameSamples(await decodeJpegLs(frame, signed), pm);
      break;
    }
    case TRANSFER_SYNTAX.jpeg2000Lossless:
    case TRANSFER_SYNTAX.jpeg2000: {
      samples = frameSamples(await decodeJpeg2000(frame, signed), pm);
      break;
    }
    default:
      throw new ImageError('unsupported', `DICOM transfer syntax ${pm.transferSyntax} is not supported`);
  }
  if (samples.length < expected) throw new ImageError('truncated', `decoded DICOM frame holds ${samples.length} of ${expected} samples`);
  return samples;
}

/** Check a codec's frame against the header; a grey image a codec returned as RGB keeps one channel. */
function frameSamples(f: DecodedFrame, pm: PixelModule): Samples {
  if (f.width !== pm.columns || f.height !== pm.rows)
    throw new ImageError('corrupt', `compressed frame is ${f.width}x${f.height} but the header says ${pm.columns}x${pm.rows}`);
  if (f.components === pm.samplesPerPixel) return f.samples;
  if (f.components === 3 && pm.samplesPerPixel === 1) {
    const n = f.width * f.height;
    const out = new (f.samples.constructor as new (n: number) => Samples)(n);
    for (let i = 0; i < n; i++) out[i] = f.samples[3 * i]!;
    return out;
  }
  throw new ImageError('corrupt', `compressed frame has ${f.components} components but the header says ${pm.samplesPerPixel}`);
}

/** Luminance of colour samples (interleaved or planar), or the grey samples as they are. */
function toGreyValues(samples: Samples, pm: PixelModule): Float32Array {
  const n = pm.rows * pm.columns;
  const out = new Float32Array(n);
  // A codec's output already has its own precision and sign: masking it to BitsStored would wrap values that a
  // writer (GDCM) encoded at 16-bit precision under a 12-bit header, turning the brightest pixels black. Only raw
  // and RLE samples can carry other bits (overlays) above BitsStored.
  const fromCodec = pm.transferSyntax.startsWith('1.2.840.10008.1.2.4.');
  if (pm.samplesPerPixel === 1) {
    if (fromCodec || pm.bitsStored >= pm.bitsAllocated || pm.bitsStored < 1) {
      for (let i = 0; i < n; i++) out[i] = samples[i]!;
    } else if (pm.pixelRepresentation === 0) {
      const mask = (1 << pm.bitsStored) - 1;
      for (let i = 0; i < n; i++) out[i] = samples[i]! & mask;
    } else {
      // Signed values in fewer stored bits: sign-extend from bit (bitsStored - 1).
      const shift = 32 - pm.bitsStored;
      for (let i = 0; i < n; i++) out[i] = (samples[i]! << shift) >> shift;
    }
    return out;
  }
  const planar =
    pm.planarConfiguration === 1 && pm.transferSyntax !== TRANSFER_SYNTAX.rle && !pm.transferSyntax.startsWith('1.2.840.10008.1.2.4');
  for (let i = 0; i < n; i++) {
    const [r, g, b] = planar
      ? [samples[i]!, samples[n + i]!, samples[2 * n + i]!]
      : [samples[3 * i]!, samples[3 * i + 1]!, samples[3 * i + 2]!];
    out[i] = 0.299 * r + 0.587 * g + 0.114 * b;
  }
  return out;
}

/** Value at quantile q of a sample of the values (a robust window without sorting millions of pixels). */
function quantiles(values: Float32Array, qs: number[]): number[] {
  const step = Math.max(1, Math.floor(values.length / 200_000));
  const sample = new Float32Array(Math.ceil(values.length / step));
  for (let i = 0, j = 0; i < values.length; i += step, j++) sample[j] = values[i]!;
  sample.sort();
  return qs.map((q) => sample[Math.min(sample.length - 1, Math.max(0, Math.round(q * (sample.length - 1))))]!);
}

/** Apply a linear VOI window (PS3.3 C.11.2.1.2) and write 8-bit output. */
function windowTo8Bit(values: Float32Array, center: number, width: number, invert: boolean): Uint8Array {
  const out = new Uint8Array(values.length);
  const w = Math.max(width, 1);
  const lo = center - 0.5 - (w - 1) / 2;
  const hi = center - 0.5 + (w - 1) / 2;
  for (let i = 0; i < values.length; i++) {
    const x = values[i]!;
    let y: number;
    if (x <= lo) y = 0;
    else if (x > hi) y = 255;
    else y = ((x - (center - 0.5)) / (w - 1 || 1) + 0.5) * 255;
    y = Math.round(Math.min(255, Math.max(0, y)));
    out[i] = invert ? 255 - y : y;
  }
  return out;
}

export async function decodeDicom(bytes: Uint8Array, limits: ImageLimits): Promise<GreyImage> {
  let ds: dicomParser.DataSet;
  try {
    // ACR-NEMA files have no meta group to name their transfer syntax: implicit VR little endian, as the standard says.
    ds = isAcrNema(bytes)
      ? dicomParser.parseDicom(bytes, { TransferSyntaxUID: TRANSFER_SYNTAX.implicitLittle })
      : dicomParser.parseDicom(bytes, { inflater });
  } catch (err) {
    if (err instanceof ImageError) throw err;
    const e = err as { message?: string; exception?: string } | string | undefined;
    const message = typeof e === 'string' ? e : `${e?.exception ?? ''} ${e?.message ?? ''}`;
    if (/overrun|overread|end of buffer|overflow|past the end/i.test(message)) throw new ImageError('truncated', 'DICOM file is truncated');
    throw new ImageError('corrupt', 'DICOM file could not be parsed');
  }
  const pm = readPixelModule(ds, limits);
  if (!SUPPORTED.has(pm.transferSyntax)) throw new ImageError('unsupported', `DICOM transfer syntax ${pm.transferSyntax} is not supported`);
  if (!['MONOCHROME1', 'MONOCHROME2', 'RGB', 'YBR_FULL', 'YBR_FULL_422', 'YBR_ICT', 'YBR_RCT'].includes(pm.photometric))
    throw new ImageError('unsupported', `DICOM photometric interpretation ${pm.photometric} is not supported`);
  // the data set's own bytes: for a deflated file that is the inflated copy, not the input
  const frame = firstFrameBytes(ds, ds.byteArray, pm);
  const samples = await decodeFrame(frame, pm);
  const values = toGreyValues(samples, pm);

  const slope = strictNumber(ds, 'x00281053', 'rescale slope') ?? 1;
  const intercept = strictNumber(ds, 'x00281052', 'rescale intercept') ?? 0;
  if (slope === 0) throw new ImageError('corrupt', 'DICOM rescale slope is 0');
  if (slope !== 1 || intercept !== 0) for (let i = 0; i < values.length; i++) values[i] = values[i]! * slope + intercept;

  const centers = numberList(ds, 'x00281050');
  const widths = numberList(ds, 'x00281051');
  let center: number;
  let width: number;
  if (centers.length && widths.length && widths[0]! > 0) {
    center = centers[0]!;
    width = widths[0]!;
  } else {
    const [lo, hi] = quantiles(values, [0.005, 0.995]) as [number, number];
    width = Math.max(hi - lo, 1) + 1;
    center = lo + 0.5 + (width - 1) / 2;
  }
  return { width: pm.columns, height: pm.rows, data: windowTo8Bit(values, center, width, pm.photometric === 'MONOCHROME1') };
}
