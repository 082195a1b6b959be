/**
 * The first frame's stored samples: native pixel data (1, 8, 16 or 32 bits, either byte order, YBR_FULL_422
 * subsampling) or a codec's output (RLE, JPEG baseline/extended/lossless, JPEG-LS, JPEG 2000), checked against
 * the header before anything is decoded.
 */
import dicomParser from 'dicom-parser';
import { decodeJpeg2000, decodeJpegBaseline, decodeJpegLossless, decodeJpegLs, type DecodedFrame } from './codecs.ts';
import { isCodecSyntax, TRANSFER_SYNTAX, type PixelModule } from './dataset.ts';
import { ImageError } from '../errors.ts';
import { decodeJpegExtended } from './jpeg-extended.ts';
import { decodeRle } from './rle.ts';

export type Samples = Uint8Array | Uint16Array | Int16Array | Uint32Array | Int32Array;

/** Bytes one native frame takes (YBR_FULL_422 stores two chroma samples per two pixels; 1-bit data is packed). */
export function nativeFrameBytes(pm: PixelModule): number {
  const pixels = pm.rows * pm.columns;
  const samples = pm.photometric === 'YBR_FULL_422' ? 2 * pixels : pixels * pm.samplesPerPixel;
  return pm.bitsAllocated === 1 ? Math.ceil(samples / 8) : samples * (pm.bitsAllocated / 8);
}

export function firstFrameBytes(ds: dicomParser.DataSet, bytes: Uint8Array, pm: PixelModule): Uint8Array {
  const el = ds.elements.x7fe00010!;
  const compressed = pm.transferSyntax === TRANSFER_SYNTAX.rle || isCodecSyntax(pm.transferSyntax);
  // compressed fragments under an uncompressed transfer syntax (e.g. RLE relabelled explicit VR little endian) would
  // be read as pixels: a wrong picture with a black tail, not an image
  if (el.encapsulatedPixelData && !compressed)
    throw new ImageError('corrupt', `DICOM pixel data is encapsulated (compressed) but transfer syntax ${pm.transferSyntax} is not`);
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
  if (compressed) throw new ImageError('corrupt', `DICOM pixel data is not encapsulated, as transfer syntax ${pm.transferSyntax} requires`);
  const frameBytes = nativeFrameBytes(pm);
  if (el.dataOffset + Math.min(el.length, frameBytes) > bytes.length || el.length < frameBytes)
    throw new ImageError('truncated', `DICOM pixel data holds ${Math.min(el.length, bytes.length - el.dataOffset)} of ${frameBytes} bytes`);
  // Twice the data the header describes means the header is wrong (e.g. 8 bits allocated over 16-bit pixels):
  // decoding it would give a wrong picture, not an error. Less than that is trailing padding (pydicom's
  // MR_small_padded.dcm has one extra row), which is ignored.
  const described = pm.bitsAllocated === 1 ? Math.ceil((pm.rows * pm.columns * pm.frames) / 8) : frameBytes * pm.frames;
  if (el.length >= 2 * described && el.length !== 0xffffffff)
    throw new ImageError(
      'corrupt',
      `DICOM pixel data holds ${el.length} bytes but the header describes ${described} (${pm.frames} frame(s) of ${pm.columns}x${pm.rows}, ${pm.bitsAllocated} bits)`,
    );
  return bytes.subarray(el.dataOffset, el.dataOffset + frameBytes);
}

/** Native samples in the header's layout (1-bit data unpacked least significant bit first, as PS3.5 D.2 says). */
export function rawSamples(frame: Uint8Array, pm: PixelModule, bigEndian: boolean): Samples {
  const signed = pm.pixelRepresentation === 1;
  if (pm.bitsAllocated === 1) {
    const n = pm.rows * pm.columns * pm.samplesPerPixel;
    const out = new Uint8Array(n);
    for (let i = 0; i < n; i++) out[i] = (frame[i >> 3]! >> (i & 7)) & 1;
    return out;
  }
  if (pm.bitsAllocated === 8) return frame;
  const bytes = pm.bitsAllocated / 8;
  // little endian and aligned (as on every little-endian machine Node runs on): a view, not a copy of the frame
  if (!bigEndian && frame.byteOffset % bytes === 0) {
    const n = frame.byteLength / bytes;
    if (bytes === 4) return signed ? new Int32Array(frame.buffer, frame.byteOffset, n) : new Uint32Array(frame.buffer, frame.byteOffset, n);
    return signed ? new Int16Array(frame.buffer, frame.byteOffset, n) : new Uint16Array(frame.buffer, frame.byteOffset, n);
  }
  const view = new DataView(frame.buffer, frame.byteOffset, frame.byteLength);
  if (pm.bitsAllocated === 32) {
    const n = frame.length >> 2;
    const out = signed ? new Int32Array(n) : new Uint32Array(n);
    for (let i = 0; i < n; i++) out[i] = signed ? view.getInt32(4 * i, !bigEndian) : view.getUint32(4 * i, !bigEndian);
    return out;
  }
  const n = frame.length >> 1;
  const out = signed ? new Int16Array(n) : new Uint16Array(n);
  for (let i = 0; i < n; i++) out[i] = signed ? view.getInt16(2 * i, !bigEndian) : view.getUint16(2 * i, !bigEndian);
  return out;
}

/**
 * The width and height a JPEG-family codestream declares (JPEG SOFn, JPEG-LS SOF55, JPEG 2000 SIZ), read before any
 * decoder allocates: a 50 KB file whose header claims 20000x20000 must be refused, not decoded into gigabytes.
 */
export function codestreamSize(frame: Uint8Array): { width: number; height: number; precision?: number } | undefined {
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
    if (sof) return { height: u16(p + 5), width: u16(p + 7), precision: frame[p + 4]! };
    if (marker === 0xda) return undefined; // scan data before any frame header
    p += 2 + u16(p + 2);
  }
  return undefined;
}

/**
 * JPEG markers that say how 3 components are coded: libjpeg assumes YCbCr unless an Adobe APP14 marker says
 * otherwise or the component ids spell R, G, B. DICOM's photometric interpretation says it too.
 */
function jpegColourMarkers(frame: Uint8Array): { jfif: boolean; adobe: boolean; rgbIds: boolean } {
  const u16 = (p: number) => (frame[p]! << 8) | frame[p + 1]!;
  const found = { jfif: false, adobe: false, rgbIds: false };
  let p = 2;
  while (p + 4 < frame.length && frame[p] === 0xff) {
    const marker = frame[p + 1]!;
    if (marker === 0xda) break;
    if (marker === 0xe0 && frame[p + 4] === 0x4a && frame[p + 5] === 0x46) found.jfif = true;
    if (marker === 0xee && frame[p + 4] === 0x41 && frame[p + 5] === 0x64) found.adobe = true;
    if (marker === 0xc0 || marker === 0xc1) found.rgbIds = frame[p + 10] === 0x52 && frame[p + 13] === 0x47 && frame[p + 16] === 0x42;
    p += 2 + u16(p + 2);
  }
  return found;
}

/** An Adobe APP14 segment with transform 0: "these three components are RGB, do not convert them". */
const ADOBE_NO_TRANSFORM = Uint8Array.from([0xff, 0xee, 0x00, 0x0e, 0x41, 0x64, 0x6f, 0x62, 0x65, 0x00, 0x64, 0, 0, 0, 0, 0]);

/**
 * A colour JPEG that DICOM labels RGB and whose stream carries no JFIF or Adobe marker holds RGB components
 * (pydicom's SC_jpeg_no_color_transform.dcm): tell libjpeg so, instead of letting it convert them as YCbCr.
 */
function withColourTransformMarker(frame: Uint8Array, pm: PixelModule): Uint8Array {
  if (pm.samplesPerPixel !== 3 || pm.photometric !== 'RGB') return frame;
  const m = jpegColourMarkers(frame);
  if (m.jfif || m.adobe || m.rgbIds) return frame;
  const out = new Uint8Array(frame.length + ADOBE_NO_TRANSFORM.length);
  out.set(frame.subarray(0, 2));
  out.set(ADOBE_NO_TRANSFORM, 2);
  out.set(frame.subarray(2), 2 + ADOBE_NO_TRANSFORM.length);
  return out;
}

export interface FrameSamples {
  samples: Samples;
  /** Set when a codec decoded the frame: its own precision and sign apply, not the header's bits stored. */
  codec?: { bits: number; signed: boolean };
}

export async function decodeFrame(frame: Uint8Array, pm: PixelModule): Promise<FrameSamples> {
  const signed = pm.pixelRepresentation === 1;
  const size = isCodecSyntax(pm.transferSyntax) ? codestreamSize(frame) : undefined;
  if (size && (size.width !== pm.columns || size.height !== pm.rows))
    throw new ImageError('corrupt', `compressed frame declares ${size.width}x${size.height} but the header says ${pm.columns}x${pm.rows}`);
  const bytesPerSample = Math.max(1, pm.bitsAllocated / 8);
  const expected = pm.rows * pm.columns * pm.samplesPerPixel;
  let decoded: DecodedFrame;
  switch (pm.transferSyntax) {
    case TRANSFER_SYNTAX.implicitLittle:
    case TRANSFER_SYNTAX.explicitLittle:
    case TRANSFER_SYNTAX.deflatedExplicitLittle:
      return { samples: rawSamples(frame, pm, false) };
    case TRANSFER_SYNTAX.explicitBig:
      return { samples: rawSamples(frame, pm, true) };
    case TRANSFER_SYNTAX.rle: {
      if (pm.bitsAllocated === 1) throw new ImageError('unsupported', 'DICOM RLE with 1 bit allocated is not supported');
      const bytes = decodeRle(frame, pm.columns, pm.rows, bytesPerSample, pm.samplesPerPixel);
      return { samples: rawSamples(bytes, pm, false) };
    }
    case TRANSFER_SYNTAX.jpegBaseline:
    case TRANSFER_SYNTAX.jpegExtended:
      // libjpeg-turbo is an 8-bit build: 12-bit frames (JPEG extended, process 4) go to the extended decoder
      decoded = size?.precision === 12 ? decodeJpegExtended(frame) : await decodeJpegBaseline(withColourTransformMarker(frame, pm));
      break;
    case TRANSFER_SYNTAX.jpegLossless:
    case TRANSFER_SYNTAX.jpegLosslessSV1: {
      const samples = decodeJpegLossless(frame, bytesPerSample, signed);
      if (samples.length < expected)
        throw new ImageError('truncated', `decoded DICOM frame holds ${samples.length} of ${expected} samples`);
      return { samples, codec: { bits: pm.bitsStored, signed } };
    }
    case TRANSFER_SYNTAX.jpegLsLossless:
    case TRANSFER_SYNTAX.jpegLsNearLossless:
      decoded = await decodeJpegLs(frame, signed);
      break;
    case TRANSFER_SYNTAX.jpeg2000Lossless:
    case TRANSFER_SYNTAX.jpeg2000:
      decoded = await decodeJpeg2000(frame, signed);
      break;
    default:
      throw new ImageError('unsupported', `DICOM transfer syntax ${pm.transferSyntax} is not supported`);
  }
  const samples = frameSamples(decoded, pm);
  if (samples.length < expected) throw new ImageError('truncated', `decoded DICOM frame holds ${samples.length} of ${expected} samples`);
  return { samples, codec: { bits: decoded.bitsPerSample, signed: decoded.signed } };
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
