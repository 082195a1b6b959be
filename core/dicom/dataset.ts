/**
 * DICOM data sets: parsing (Part 10, ACR-NEMA, deflated; an implicit-VR body under an explicit transfer syntax is
 * read as what it is, as pydicom and GDCM do) and the image pixel module, checked before anything is allocated.
 */
import dicomParser from 'dicom-parser';
import { inflateRawSync } from 'node:zlib';
import { ImageError } from '../errors.ts';
import { checkDimensions, type ImageLimits } from '../util/index.ts';

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

export const SUPPORTED_SYNTAXES = new Set<string>(Object.values(TRANSFER_SYNTAX));

/** Transfer syntaxes whose pixel data is a codec's codestream (JPEG family). */
export const isCodecSyntax = (ts: string) => ts.startsWith('1.2.840.10008.1.2.4.');

/**
 * A deflated data set may not inflate past this (a deflate bomb is refused, not inflated into memory): room for the
 * largest accepted image at 32 bits per sample (DEFAULT_IMAGE_LIMITS.maxPixels x 4 = 100 MB) and its header.
 */
const MAX_INFLATED_BYTES = 128 << 20;

/** dicom-parser's own Node path calls Buffer#copy (a Uint8Array has none): inflate here, for both. */
function inflater(byteArray: Uint8Array, position: number): Uint8Array {
  let inflated: Uint8Array;
  try {
    inflated = inflateRawSync(byteArray.subarray(position), { maxOutputLength: MAX_INFLATED_BYTES });
  } catch (err) {
    const tooBig = (err as NodeJS.ErrnoException).code === 'ERR_BUFFER_TOO_LARGE';
    throw new ImageError(
      tooBig ? 'too-large' : 'corrupt',
      tooBig ? 'deflated DICOM data set inflates past 128 MB' : 'deflated DICOM data set could not be inflated',
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

type DataSetConstructor = new (
  parser: typeof dicomParser.littleEndianByteArrayParser,
  bytes: Uint8Array,
  elements: Record<string, dicomParser.Element>,
) => dicomParser.DataSet;

/** The body after a meta group that names explicit VR little endian, read as implicit VR (a writer's mistake). */
function parseImplicitBody(bytes: Uint8Array): dicomParser.DataSet {
  const meta = dicomParser.readPart10Header(bytes) as dicomParser.DataSet & { position: number };
  const DataSet = (dicomParser as unknown as { DataSet: DataSetConstructor }).DataSet;
  const ds = new DataSet(dicomParser.littleEndianByteArrayParser, bytes, {});
  const stream = new dicomParser.ByteStream(dicomParser.littleEndianByteArrayParser, bytes, meta.position);
  dicomParser.parseDicomDataSetImplicit(ds, stream, bytes.length);
  // implicit VR parsing does not know undefined-length pixel data is encapsulated: map its fragments
  const pixels = ds.elements.x7fe00010;
  if (pixels?.hadUndefinedLength) {
    const at = new dicomParser.ByteStream(dicomParser.littleEndianByteArrayParser, bytes, pixels.dataOffset);
    dicomParser.findEndOfEncapsulatedElement(at, pixels);
  }
  Object.assign(ds.elements, meta.elements);
  return ds;
}

/** The transfer syntax the meta group names, if any. */
function metaTransferSyntax(bytes: Uint8Array): string | undefined {
  try {
    return dicomParser.readPart10Header(bytes).string('x00020010')?.replace(/\0/g, '').trim();
  } catch {
    return undefined;
  }
}

/** Does the first element after the meta group carry a two-letter VR where explicit VR would put it? */
function bodyLooksImplicit(bytes: Uint8Array): boolean {
  try {
    const meta = dicomParser.readPart10Header(bytes) as dicomParser.DataSet & { position: number };
    const p = meta.position;
    const isUpper = (c: number | undefined) => c !== undefined && c >= 0x41 && c <= 0x5a;
    return !(isUpper(bytes[p + 4]) && isUpper(bytes[p + 5]));
  } catch {
    return false;
  }
}

function parseError(err: unknown): ImageError {
  if (err instanceof ImageError) return err;
  const e = err as { message?: string; exception?: string } | string | undefined;
  const message = typeof e === 'string' ? e : `${e?.exception ?? ''} ${e?.message ?? ''}`;
  if (/overrun|overread|end of buffer|overflow|past the end/i.test(message)) return new ImageError('truncated', 'DICOM file is truncated');
  return new ImageError('corrupt', 'DICOM file could not be parsed');
}

/** Parse a DICOM data set (every layout above); `untilTag` stops before that element (e.g. the pixel data). */
export function parseDataSet(bytes: Uint8Array, untilTag?: string): dicomParser.DataSet {
  const until = untilTag ? { untilTag } : {};
  try {
    // ACR-NEMA files have no meta group to name their transfer syntax: implicit VR little endian, as the standard says.
    return isAcrNema(bytes)
      ? dicomParser.parseDicom(bytes, { TransferSyntaxUID: TRANSFER_SYNTAX.implicitLittle, ...until })
      : // a meta group without a transfer syntax: the body says which VR it uses (little endian assumed)
        dicomParser.parseDicom(bytes, {
          inflater,
          TransferSyntaxUID: bodyLooksImplicit(bytes) ? TRANSFER_SYNTAX.implicitLittle : TRANSFER_SYNTAX.explicitLittle,
          ...until,
        });
  } catch (err) {
    // only a body labelled explicit VR little endian (native or encapsulated) may turn out implicit: never a deflated
    // or big endian one, and never after a refusal (a deflate bomb)
    const ts = metaTransferSyntax(bytes);
    const explicitLittleBody =
      ts !== undefined &&
      ts !== TRANSFER_SYNTAX.implicitLittle &&
      ts !== TRANSFER_SYNTAX.explicitBig &&
      ts !== TRANSFER_SYNTAX.deflatedExplicitLittle;
    if (!(err instanceof ImageError) && explicitLittleBody && bodyLooksImplicit(bytes)) {
      try {
        return parseImplicitBody(bytes);
      } catch {
        // fall through to the original error
      }
    }
    throw parseError(err);
  }
}

export function numberList(ds: dicomParser.DataSet, tag: string): number[] {
  const s = ds.string(tag);
  if (!s) return [];
  return s
    .split('\\')
    .map((v) => Number(v.trim()))
    .filter((v) => Number.isFinite(v));
}

/** A decimal-string element that, when present, must be a finite number (NaN would silently blank the image). */
export function strictNumber(ds: dicomParser.DataSet, tag: string, what: string): number | undefined {
  const s = ds.string(tag);
  if (s === undefined || s.trim() === '') return undefined;
  const v = Number(s.split('\\')[0]!.trim());
  if (!Number.isFinite(v)) throw new ImageError('corrupt', `DICOM ${what} is not a number`);
  return v;
}

export interface PixelModule {
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

export const PHOTOMETRIC = ['MONOCHROME1', 'MONOCHROME2', 'RGB', 'YBR_FULL', 'YBR_FULL_422', 'YBR_ICT', 'YBR_RCT', 'PALETTE COLOR'];

export function readPixelModule(ds: dicomParser.DataSet, limits: ImageLimits): PixelModule {
  const rows = ds.uint16('x00280010') ?? 0;
  const columns = ds.uint16('x00280011') ?? 0;
  if (!ds.elements.x7fe00010) throw new ImageError('unsupported', 'DICOM file has no pixel data (not an image)');
  checkDimensions(columns, rows, limits, 'DICOM image');
  const bitsAllocated = ds.uint16('x00280100') ?? 16;
  if (![1, 8, 16, 32].includes(bitsAllocated))
    throw new ImageError('unsupported', `DICOM bits allocated ${bitsAllocated} is not supported (1, 8, 16 or 32)`);
  const samplesPerPixel = ds.uint16('x00280002') ?? 1;
  if (samplesPerPixel !== 1 && samplesPerPixel !== 3) throw new ImageError('unsupported', `DICOM samples per pixel ${samplesPerPixel}`);
  // Header values that would decode to a wrong picture instead of an error (fuzzed or broken writers).
  const bitsStored = ds.uint16('x00280101') ?? bitsAllocated;
  if (bitsStored < 1 || bitsStored > bitsAllocated)
    throw new ImageError('corrupt', `DICOM bits stored ${bitsStored} does not fit bits allocated ${bitsAllocated}`);
  const framesText = ds.string('x00280008');
  const frames = framesText === undefined || framesText.trim() === '' ? 1 : Number(framesText.trim());
  if (!Number.isInteger(frames) || frames < 1 || frames > 100_000)
    throw new ImageError('corrupt', `DICOM number of frames "${String(framesText).slice(0, 20)}" is not valid`);
  const photometric = (ds.string('x00280004') ?? (samplesPerPixel === 3 ? 'RGB' : 'MONOCHROME2')).trim().toUpperCase();
  if (!PHOTOMETRIC.includes(photometric))
    throw new ImageError('unsupported', `DICOM photometric interpretation ${photometric} is not supported`);
  if ((photometric === 'PALETTE COLOR' || photometric.startsWith('MONO')) !== (samplesPerPixel === 1))
    throw new ImageError('corrupt', `DICOM photometric interpretation ${photometric} does not fit ${samplesPerPixel} sample(s) per pixel`);
  return {
    rows,
    columns,
    bitsAllocated,
    frames,
    bitsStored,
    pixelRepresentation: ds.uint16('x00280103') ?? 0,
    samplesPerPixel,
    planarConfiguration: ds.uint16('x00280006') ?? 0,
    photometric,
    transferSyntax: (ds.string('x00020010') ?? TRANSFER_SYNTAX.implicitLittle).replace(/\0/g, '').trim(),
  };
}

/** The values of a US/OW/SS element (LUT data), in the data set's byte order. */
export function uint16Values(ds: dicomParser.DataSet, tag: string, signed = false): number[] {
  const el = ds.elements[tag];
  if (!el || el.length < 2) return [];
  const out: number[] = [];
  for (let i = 0; i < el.length >> 1; i++) out.push(signed ? ds.int16(tag, i)! : ds.uint16(tag, i)!);
  return out;
}
