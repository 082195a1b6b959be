/**
 * Decoders for the compressed DICOM transfer syntaxes, loaded on first use:
 * JPEG baseline/extended (libjpeg-turbo, WebAssembly), JPEG lossless (jpeg-lossless-decoder-js),
 * JPEG-LS (CharLS, WebAssembly), JPEG 2000 (OpenJPEG, WebAssembly). RLE is decoded in `rle.ts`.
 */
import { createRequire } from 'node:module';
import { ImageError } from '../errors.ts';

const require = createRequire(import.meta.url);

export interface DecodedFrame {
  width: number;
  height: number;
  bitsPerSample: number;
  components: number;
  signed: boolean;
  /** Samples, interleaved when components > 1. */
  samples: Uint8Array | Uint16Array | Int16Array;
}

interface WasmFrameInfo {
  width: number;
  height: number;
  bitsPerSample: number;
  componentCount: number;
  isSigned?: boolean;
}

interface WasmDecoder {
  getEncodedBuffer(length: number): Uint8Array;
  getDecodedBuffer(): Uint8Array;
  decode(): void;
  getFrameInfo(): WasmFrameInfo;
  delete(): void;
}

type WasmModule = Record<string, new () => WasmDecoder>;

const modules = new Map<string, Promise<WasmModule>>();

function loadWasm(specifier: string): Promise<WasmModule> {
  let m = modules.get(specifier);
  if (!m) {
    const factory = require(specifier) as (overrides?: {
      print?: (s: string) => void;
      printErr?: (s: string) => void;
    }) => Promise<WasmModule>;
    // Emscripten prints to stdout by default (OpenJPEG writes "[INFO]" lines on every decode), which would corrupt
    // a CLI's --json output: the codecs' own messages go nowhere; failures surface as ImageError.
    m = factory({ print: () => {}, printErr: () => {} });
    modules.set(specifier, m);
  }
  return m;
}

async function decodeWithWasm(specifier: string, className: string, data: Uint8Array, signedHint: boolean): Promise<DecodedFrame> {
  const mod = await loadWasm(specifier);
  const Decoder = mod[className];
  if (!Decoder) throw new ImageError('unsupported', `codec ${className} is not available`);
  const decoder = new Decoder();
  try {
    decoder.getEncodedBuffer(data.length).set(data);
    try {
      decoder.decode();
    } catch (_err) {
      throw new ImageError('corrupt', `compressed pixel data could not be decoded (${className})`);
    }
    const info = decoder.getFrameInfo();
    const decoded = decoder.getDecodedBuffer();
    const signed = info.isSigned ?? signedHint;
    const copy = decoded.slice();
    const samples =
      info.bitsPerSample > 8
        ? signed
          ? new Int16Array(copy.buffer, copy.byteOffset, copy.byteLength >> 1)
          : new Uint16Array(copy.buffer, copy.byteOffset, copy.byteLength >> 1)
        : copy;
    return { width: info.width, height: info.height, bitsPerSample: info.bitsPerSample, components: info.componentCount, signed, samples };
  } finally {
    decoder.delete();
  }
}

export function decodeJpegBaseline(data: Uint8Array): Promise<DecodedFrame> {
  return decodeWithWasm('@cornerstonejs/codec-libjpeg-turbo-8bit/decodewasmjs', 'JPEGDecoder', data, false);
}

export function decodeJpegLs(data: Uint8Array, signed: boolean): Promise<DecodedFrame> {
  return decodeWithWasm('@cornerstonejs/codec-charls/decodewasmjs', 'JpegLSDecoder', data, signed);
}

export function decodeJpeg2000(data: Uint8Array, signed: boolean): Promise<DecodedFrame> {
  return decodeWithWasm('@cornerstonejs/codec-openjpeg/decodewasmjs', 'J2KDecoder', data, signed);
}

interface LosslessDecoder {
  decode(buffer: ArrayBuffer, offset: number, length: number, numBytes?: number): ArrayBuffer;
}

/** JPEG lossless (process 14, SV1 and others). Dimensions come from the DICOM header. */
export function decodeJpegLossless(data: Uint8Array, bytesPerSample: number, signed: boolean): Uint8Array | Uint16Array | Int16Array {
  const { Decoder } = require('jpeg-lossless-decoder-js') as { Decoder: new () => LosslessDecoder };
  let out: ArrayBuffer;
  try {
    // A copy into a fresh ArrayBuffer: the decoder reads `buffer` from `offset`, and a Node Buffer's slice() is a view
    // into a larger (pooled or whole-file) ArrayBuffer, not a copy. Two zero bytes go before the final EOI marker:
    // the decoder needs bits to look ahead and drops the last sample when the marker follows its code directly
    // (seen with predictor 6 on a dcmtk file); bits after the last sample are never read as samples.
    const end = data.length >= 2 && data[data.length - 2] === 0xff && data[data.length - 1] === 0xd9 ? data.length - 2 : data.length;
    const own = new Uint8Array(data.length + 2 + (end === data.length ? 2 : 0));
    own.set(data.subarray(0, end));
    own.set([0xff, 0xd9], end + 2);
    out = new Decoder().decode(own.buffer, 0, own.byteLength, bytesPerSample);
  } catch {
    throw new ImageError('corrupt', 'JPEG lossless pixel data could not be decoded');
  }
  if (bytesPerSample === 1) return new Uint8Array(out);
  return signed ? new Int16Array(out) : new Uint16Array(out);
}
