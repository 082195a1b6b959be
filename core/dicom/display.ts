/**
 * Stored samples -> 8-bit grey, as a radiologist's viewer would show them: colour (RGB, YBR_FULL/_422, PALETTE
 * COLOR) as luminance; grey through the modality LUT (rescale slope/intercept), then the VOI LUT sequence, else the
 * file's first linear window, else a robust 0.5-99.5 percentile window; MONOCHROME1 inverted so that air is dark.
 * The conformance test checks this against pydicom + GDCM.
 */
import type dicomParser from 'dicom-parser';
import { isCodecSyntax, numberList, strictNumber, TRANSFER_SYNTAX, uint16Values, type PixelModule } from './dataset.ts';
import type { FrameSamples, Samples } from './pixels.ts';
import { ImageError } from '../errors.ts';

const luminance = (r: number, g: number, b: number) => 0.299 * r + 0.587 * g + 0.114 * b;

/** YBR_FULL -> RGB (PS3.3 C.7.6.3.1.2), rounded and clamped to 8 bits like pydicom's convert_color_space. */
function ybrToRgbLuminance(y: number, cb: number, cr: number): number {
  const clamp = (v: number) => Math.min(255, Math.max(0, Math.floor(v + 0.5)));
  const r = clamp(y + 1.402 * (cr - 128));
  const g = clamp(y - ((0.114 * 1.772) / 0.587) * (cb - 128) - ((0.299 * 1.402) / 0.587) * (cr - 128));
  const b = clamp(y + 1.772 * (cb - 128));
  return luminance(r, g, b);
}

/** Grey values of a single-sample frame: codec output as decoded; native bits above BitsStored dropped (overlays). */
function greyValues(frame: FrameSamples, pm: PixelModule): Float32Array {
  const { samples } = frame;
  const n = pm.rows * pm.columns;
  const out = new Float32Array(n);
  if (frame.codec) {
    // A codec's output has its own precision and sign: masking it to BitsStored would wrap values that a writer
    // (GDCM) encoded at 16-bit precision under a 12-bit header. A header that says signed over a codestream that
    // says unsigned (pydicom's J2K_pixelrep_mismatch.dcm) holds two's complement values at the codec's precision.
    const bits = frame.codec.bits;
    if (pm.pixelRepresentation === 1 && !frame.codec.signed && bits > 1 && bits < 32) {
      const shift = 32 - bits;
      for (let i = 0; i < n; i++) out[i] = (samples[i]! << shift) >> shift;
    } else for (let i = 0; i < n; i++) out[i] = samples[i]!;
  } else if (pm.bitsStored >= pm.bitsAllocated) {
    for (let i = 0; i < n; i++) out[i] = samples[i]!;
  } else if (pm.pixelRepresentation === 0) {
    const mask = 2 ** pm.bitsStored;
    for (let i = 0; i < n; i++) out[i] = samples[i]! % mask;
  } else {
    // Signed values in fewer stored bits: sign-extend from bit (bitsStored - 1).
    const shift = 32 - pm.bitsStored;
    for (let i = 0; i < n; i++) out[i] = (samples[i]! << shift) >> shift;
  }
  return out;
}

/** Luminance of a 3-sample frame (interleaved or planar; YBR converted to RGB first unless a codec already did). */
function colourValues(samples: Samples, pm: PixelModule): Float32Array {
  const n = pm.rows * pm.columns;
  const out = new Float32Array(n);
  const native = !isCodecSyntax(pm.transferSyntax);
  const ybr = native && (pm.photometric === 'YBR_FULL' || pm.photometric === 'YBR_FULL_422');
  if (native && pm.photometric === 'YBR_FULL_422' && pm.transferSyntax !== TRANSFER_SYNTAX.rle) {
    // two pixels share one chroma pair: Y1 Y2 Cb Cr (PS3.3 C.7.6.3.1.2)
    for (let i = 0; i < n; i++) {
      const pair = (i >> 1) * 4;
      out[i] = ybrToRgbLuminance(samples[pair + (i & 1)]!, samples[pair + 2]!, samples[pair + 3]!);
    }
    return out;
  }
  const planar = pm.planarConfiguration === 1 && native && pm.transferSyntax !== TRANSFER_SYNTAX.rle;
  for (let i = 0; i < n; i++) {
    const a = planar ? samples[i]! : samples[3 * i]!;
    const b = planar ? samples[n + i]! : samples[3 * i + 1]!;
    const c = planar ? samples[2 * n + i]! : samples[3 * i + 2]!;
    out[i] = ybr ? ybrToRgbLuminance(a, b, c) : luminance(a, b, c);
  }
  return out;
}

/** PALETTE COLOR: each stored index looked up in the red, green and blue LUTs (PS3.3 C.7.6.3.1.5), as luminance. */
function paletteValues(ds: dicomParser.DataSet, samples: Samples, pm: PixelModule): Float32Array {
  if (ds.elements.x00281221 || ds.elements.x00281222 || ds.elements.x00281223)
    throw new ImageError('unsupported', 'DICOM segmented palette colour LUTs are not supported');
  const luts = ['1201', '1202', '1203'].map((t, i) => {
    const desc = uint16Values(ds, `x002811${['01', '02', '03'][i]}`);
    const data = uint16Values(ds, `x0028${t}`);
    if (desc.length < 3 || data.length === 0) throw new ImageError('corrupt', 'DICOM palette colour LUT is missing');
    return { entries: desc[0] || 65536, first: desc[1]!, data };
  });
  const n = pm.rows * pm.columns;
  const out = new Float32Array(n);
  const look = (lut: (typeof luts)[number], v: number) => lut.data[Math.min(lut.data.length - 1, Math.max(0, v - lut.first))]!;
  for (let i = 0; i < n; i++) {
    const v = samples[i]!;
    out[i] = luminance(look(luts[0]!, v), look(luts[1]!, v), look(luts[2]!, v));
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

/** The first item of the VOI LUT Sequence (0028,3010), applied as PS3.3 C.11.2.1.1 says and scaled to 8 bits. */
function voiLutTo8Bit(ds: dicomParser.DataSet, values: Float32Array, pm: PixelModule, invert: boolean): Uint8Array | undefined {
  const item = ds.elements.x00283010?.items?.[0]?.dataSet;
  if (!item) return undefined;
  const descriptor = uint16Values(item, 'x00283002');
  const data = uint16Values(item, 'x00283006');
  if (descriptor.length < 3 || data.length === 0) throw new ImageError('corrupt', 'DICOM VOI LUT is missing its descriptor or data');
  const entries = descriptor[0] || 65536;
  const first = pm.pixelRepresentation === 1 ? (descriptor[1]! << 16) >> 16 : descriptor[1]!;
  const bits = descriptor[2]!;
  if (bits < 8 || bits > 16) throw new ImageError('unsupported', `DICOM VOI LUT with ${bits}-bit entries is not supported`);
  if (data.length < entries) throw new ImageError('truncated', `DICOM VOI LUT holds ${data.length} of ${entries} entries`);
  const scale = 255 / (2 ** bits - 1);
  const out = new Uint8Array(values.length);
  for (let i = 0; i < values.length; i++) {
    const index = Math.min(entries - 1, Math.max(0, Math.trunc(values[i]! - first)));
    const y = Math.min(255, Math.round(data[index]! * scale));
    out[i] = invert ? 255 - y : y;
  }
  return out;
}

export function displayPixels(ds: dicomParser.DataSet, frame: FrameSamples, pm: PixelModule): Uint8Array {
  if (pm.photometric === 'PALETTE COLOR') return percentileWindow(paletteValues(ds, frame.samples, pm), false);
  if (pm.samplesPerPixel === 3) return percentileWindow(colourValues(frame.samples, pm), false);
  const values = greyValues(frame, pm);
  const slope = strictNumber(ds, 'x00281053', 'rescale slope') ?? 1;
  const intercept = strictNumber(ds, 'x00281052', 'rescale intercept') ?? 0;
  if (slope === 0) throw new ImageError('corrupt', 'DICOM rescale slope is 0');
  if (slope !== 1 || intercept !== 0) for (let i = 0; i < values.length; i++) values[i] = values[i]! * slope + intercept;
  const invert = pm.photometric === 'MONOCHROME1';
  const lut = voiLutTo8Bit(ds, values, pm, invert);
  if (lut) return lut;
  const centers = numberList(ds, 'x00281050');
  const widths = numberList(ds, 'x00281051');
  if (centers.length && widths.length && widths[0]! > 0) return windowTo8Bit(values, centers[0]!, widths[0]!, invert);
  return percentileWindow(values, invert);
}

function percentileWindow(values: Float32Array, invert: boolean): Uint8Array {
  const [lo, hi] = quantiles(values, [0.005, 0.995]) as [number, number];
  const width = Math.max(hi - lo, 1) + 1;
  return windowTo8Bit(values, lo + 0.5 + (width - 1) / 2, width, invert);
}
