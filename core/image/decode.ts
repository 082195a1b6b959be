/**
 * Bytes -> 8-bit grey pixels (any supported format) and bytes -> model input tensor.
 * PNG and JPEG (8/16-bit, grey, RGB, RGBA) go through sharp; DICOM through `dicom.ts`.
 */
import type { Metadata, ResizeOptions } from 'sharp';
import { loadSharp, type Sharp } from './sharp.ts';
import { decodeDicom, isDicom, type GreyImage } from '../dicom/index.ts';
import { ImageError } from '../errors.ts';
import { checkDimensions, DEFAULT_IMAGE_LIMITS, type ImageLimits } from '../util/index.ts';
import { channelValue, type ImageSpec } from './spec.ts';

export type ImageFormat = 'png' | 'jpeg' | 'dicom';

export function sniffFormat(bytes: Uint8Array): ImageFormat | undefined {
  if (bytes.length >= 8 && bytes[0] === 0x89 && bytes[1] === 0x50 && bytes[2] === 0x4e && bytes[3] === 0x47) return 'png';
  if (bytes.length >= 3 && bytes[0] === 0xff && bytes[1] === 0xd8 && bytes[2] === 0xff) return 'jpeg';
  if (isDicom(bytes)) return 'dicom';
  return undefined;
}

function checkInput(bytes: Uint8Array, limits: ImageLimits): ImageFormat {
  if (bytes.length === 0) throw new ImageError('empty', 'image is empty (0 bytes)');
  if (bytes.length > limits.maxBytes) throw new ImageError('too-large', `image is ${bytes.length} bytes; the limit is ${limits.maxBytes}`);
  const format = sniffFormat(bytes);
  if (!format) throw new ImageError('unsupported', 'not a PNG, JPEG or DICOM file');
  return format;
}

/** A PNG ends with its IEND chunk, a JPEG with the EOI marker (allowing a little trailing padding). */
function lacksTrailer(bytes: Uint8Array, format: ImageFormat): boolean {
  const tail = Buffer.from(bytes.subarray(Math.max(0, bytes.length - 32)));
  if (format === 'png') return !tail.includes('IEND');
  if (format === 'jpeg') return !tail.includes(Buffer.from([0xff, 0xd9]));
  return false;
}

/** Map sharp / libvips failures to typed errors. */
function sharpError(err: unknown, format: ImageFormat, bytes: Uint8Array): ImageError {
  const msg = (err as Error)?.message ?? '';
  if (/pixel limit/i.test(msg)) return new ImageError('too-large', `${format.toUpperCase()} exceeds the pixel limit`);
  if (lacksTrailer(bytes, format) || /premature end|truncated|unexpected end|not enough data|end of (file|stream)|out of data/i.test(msg))
    return new ImageError('truncated', `${format.toUpperCase()} data is truncated`);
  return new ImageError('corrupt', `${format.toUpperCase()} data could not be decoded`);
}

function sharpInput(sharp: Sharp, bytes: Uint8Array, limits: ImageLimits) {
  // failOn 'truncated' rejects cut-off files instead of returning half-grey images.
  return sharp(bytes, { limitInputPixels: limits.maxPixels, failOn: 'truncated', sequentialRead: true });
}

async function checkedMetadata(bytes: Uint8Array, format: ImageFormat, limits: ImageLimits): Promise<Metadata> {
  const sharp = await loadSharp();
  let meta: Metadata;
  try {
    meta = await sharp(bytes, { limitInputPixels: false }).metadata();
  } catch (err) {
    throw sharpError(err, format, bytes);
  }
  checkDimensions(meta.width ?? 0, meta.height ?? 0, limits, format.toUpperCase());
  return meta;
}

/** Decode any supported image to 8-bit grey (alpha flattened onto black, colour to luminance). */
export async function decodeGrey(
  bytes: Uint8Array,
  limits: ImageLimits = DEFAULT_IMAGE_LIMITS,
): Promise<GreyImage & { format: ImageFormat }> {
  const format = checkInput(bytes, limits);
  if (format === 'dicom') return { ...(await decodeDicom(bytes, limits)), format };
  await checkedMetadata(bytes, format, limits);
  const sharp = await loadSharp();
  try {
    const { data, info } = await sharpInput(sharp, bytes, limits)
      .flatten({ background: '#000000' })
      .toColourspace('b-w')
      .extractChannel(0)
      .raw({ depth: 'uchar' })
      .toBuffer({ resolveWithObject: true });
    return { width: info.width, height: info.height, data: new Uint8Array(data.buffer, data.byteOffset, data.length), format };
  } catch (err) {
    throw sharpError(err, format, bytes);
  }
}

export interface ImageTensor {
  /** Normalised pixels, planar row-major, shape [channels, size, size]. */
  data: Float32Array;
  dims: [number, number, number];
  source: { format: ImageFormat; width: number; height: number };
}

const KERNEL = { bilinear: 'linear', bicubic: 'cubic', lanczos: 'lanczos3' } as const;

function resizeOptions(spec: ImageSpec): ResizeOptions {
  const kernel = KERNEL[spec.interpolation ?? 'lanczos'];
  return spec.resize === 'pad-square'
    ? { width: spec.size, height: spec.size, fit: 'contain', background: { r: 0, g: 0, b: 0, alpha: 1 }, kernel }
    : { width: spec.size, height: spec.size, fit: 'cover', position: 'centre', kernel };
}

/** Resize 8-bit grey pixels to the spec's square and normalise them. */
export async function greyToTensor(grey: GreyImage, spec: ImageSpec): Promise<Float32Array> {
  const sharp = await loadSharp();
  const resized = await sharp(grey.data, { raw: { width: grey.width, height: grey.height, channels: 1 } })
    .resize(resizeOptions(spec))
    .extractChannel(0)
    .raw()
    .toBuffer();
  return normalise(resized, spec);
}

/** Grey pixels -> the model's channels, planar (CHW): one channel, or the grey replicated into three, each normalised
 * with its own mean and std. */
export function normalise(pixels: Uint8Array, spec: ImageSpec): Float32Array {
  const n = pixels.length;
  const out = new Float32Array(n * spec.channels);
  for (let c = 0; c < spec.channels; c++) {
    const std = channelValue(spec.std, c);
    const scale = 1 / (255 * std);
    const shift = channelValue(spec.mean, c) / std;
    const base = c * n;
    for (let i = 0; i < n; i++) out[base + i] = pixels[i]! * scale - shift;
  }
  return out;
}

/**
 * Bytes -> normalised `Float32Array` [1, H, W] as the model's spec asks. PNG/JPEG are decoded, converted and
 * resized in one sharp pipeline; DICOM is windowed to 8 bits first.
 */
export async function imageToTensor(bytes: Uint8Array, spec: ImageSpec, limits: ImageLimits = DEFAULT_IMAGE_LIMITS): Promise<ImageTensor> {
  const format = checkInput(bytes, limits);
  if (format === 'dicom') {
    const grey = await decodeDicom(bytes, limits);
    return {
      data: await greyToTensor(grey, spec),
      dims: [spec.channels, spec.size, spec.size],
      source: { format, width: grey.width, height: grey.height },
    };
  }
  const meta = await checkedMetadata(bytes, format, limits);
  const sharp = await loadSharp();
  try {
    const { data, info } = await sharpInput(sharp, bytes, limits)
      .flatten({ background: '#000000' })
      .toColourspace('b-w')
      .resize(resizeOptions(spec))
      .extractChannel(0)
      .raw({ depth: 'uchar' })
      .toBuffer({ resolveWithObject: true });
    if (info.width !== spec.size || info.height !== spec.size) throw new ImageError('corrupt', 'resize produced an unexpected size');
    return {
      data: normalise(new Uint8Array(data.buffer, data.byteOffset, data.length), spec),
      dims: [spec.channels, spec.size, spec.size],
      source: { format, width: meta.width ?? 0, height: meta.height ?? 0 },
    };
  } catch (err) {
    if (err instanceof ImageError) throw err;
    throw sharpError(err, format, bytes);
  }
}
