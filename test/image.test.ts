import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';
import { readFile, readdir } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { crc32 } from 'node:zlib';
import sharp from 'sharp';
import { decodeGrey, imageToTensor, ImageError, parseImageSpec, TRANSFER_SYNTAX, type ImageSpec } from '../core/image/index.ts';
import { codestreamSize } from '../core/dicom/index.ts';
import { DATA, FULLRES_DIR, NIH_PNG } from './helpers/paths.ts';
import { encodeJpegLossless8, encodeRle, uint16Bytes, writeDicom } from './helpers/dicom-writer.ts';

const require = createRequire(import.meta.url);
const SPEC: ImageSpec = { size: 64, channels: 1, mean: 0.5, std: 0.25, resize: 'pad-square' };

async function realGrey(size = 96): Promise<{ data: Uint8Array; width: number; height: number }> {
  const { data, info } = await sharp(NIH_PNG).grayscale().resize(size, size).raw().toBuffer({ resolveWithObject: true });
  return { data: new Uint8Array(data), width: info.width, height: info.height };
}

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  assert.equal(a.length, b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

async function expectImageError(p: Promise<unknown>, code: ImageError['code']) {
  await assert.rejects(p, (err: unknown) => {
    assert.ok(err instanceof ImageError, `expected ImageError, got ${String(err)}`);
    assert.equal(err.code, code, `expected ${code}, got ${err.code}: ${err.message}`);
    return true;
  });
}

test('real NIH PNG, Kermany JPEG and full-resolution PNGs become normalised [1,H,W] tensors', async () => {
  const kermany = (await readdir(join(DATA, 'images/kermany/x'))).find((f) => f.endsWith('.jpg'))!;
  const full = (await readdir(FULLRES_DIR)).filter((f) => f.endsWith('.png'));
  assert.ok(full.length >= 1);
  for (const file of [NIH_PNG, join(DATA, 'images/kermany/x', kermany), ...full.map((f) => join(FULLRES_DIR, f))]) {
    const bytes = await readFile(file);
    const t = await imageToTensor(bytes, SPEC);
    assert.deepEqual(t.dims, [1, 64, 64]);
    assert.equal(t.data.length, 64 * 64);
    const min = Math.min(...t.data);
    const max = Math.max(...t.data);
    // (0 - 0.5) / 0.25 = -2 is black; (1 - 0.5) / 0.25 = 2 is white.
    assert.ok(min >= -2 - 1e-6 && max <= 2 + 1e-6, `${file}: range ${min}..${max}`);
    assert.ok(max - min > 1, `${file}: a chest X-ray has contrast`);
  }
  const fullres = await imageToTensor(await readFile(join(FULLRES_DIR, full[0]!)), SPEC);
  assert.deepEqual([fullres.source.width, fullres.source.height], [1024, 1024]);
});

test('the 1024 px original and its 256 px copy give nearly the same tensor', async () => {
  const name = (await readdir(FULLRES_DIR)).find((f) => f.endsWith('.png'))!;
  const small = join(DATA, 'images/nih', name);
  const a = await imageToTensor(await readFile(join(FULLRES_DIR, name)), SPEC);
  const b = await imageToTensor(await readFile(small), SPEC);
  let sum = 0;
  for (let i = 0; i < a.data.length; i++) sum += Math.abs(a.data[i]! - b.data[i]!);
  assert.ok(sum / a.data.length < 0.1, `mean abs diff ${sum / a.data.length}`);
});

test('16-bit grey, RGB and RGBA PNGs decode to the same grey pixels as the 8-bit original', async () => {
  const grey = await realGrey();
  const raw = { raw: { width: grey.width, height: grey.height, channels: 1 as const } };
  const sixteen = new Uint16Array(grey.data.length);
  for (let i = 0; i < grey.data.length; i++) sixteen[i] = grey.data[i]! * 257;
  const png16 = await sharp(sixteen, { raw: { width: grey.width, height: grey.height, channels: 1 } })
    .toColourspace('grey16')
    .png()
    .toBuffer();
  assert.equal((await sharp(png16).metadata()).depth, 'ushort');
  const rgb = await sharp(grey.data, raw).toColourspace('srgb').png().toBuffer();
  const rgba = await sharp(grey.data, raw).toColourspace('srgb').ensureAlpha(1).png().toBuffer();
  for (const [name, bytes] of [
    ['png16', png16],
    ['rgb', rgb],
    ['rgba', rgba],
  ] as const) {
    const out = await decodeGrey(bytes);
    assert.equal(out.width, grey.width);
    assert.ok(maxAbsDiff(out.data, grey.data) <= 1, name);
  }
});

test('pad-square keeps the whole image; center-crop fills the square', async () => {
  const wide = await sharp(NIH_PNG).resize(200, 100, { fit: 'fill' }).png().toBuffer();
  const pad = await imageToTensor(wide, { ...SPEC, resize: 'pad-square' });
  const crop = await imageToTensor(wide, { ...SPEC, resize: 'center-crop' });
  // Padded rows (top and bottom quarter) are black = -2; the cropped image has no black band.
  const row = (t: Float32Array, y: number) => Array.from(t.subarray(y * 64, (y + 1) * 64));
  assert.ok(row(pad.data, 2).every((v) => Math.abs(v + 2) < 1e-6));
  assert.ok(row(pad.data, 61).every((v) => Math.abs(v + 2) < 1e-6));
  assert.ok(!row(crop.data, 2).every((v) => Math.abs(v + 2) < 1e-6));
});

test('bad input gets typed errors: empty, unknown bytes, truncated PNG and JPEG, pixel bomb, byte limit', async () => {
  const png = await readFile(NIH_PNG);
  const jpg = await sharp(png).jpeg().toBuffer();
  await expectImageError(imageToTensor(new Uint8Array(0), SPEC), 'empty');
  await expectImageError(imageToTensor(new TextEncoder().encode('GIF89a not an x-ray at all'), SPEC), 'unsupported');
  await expectImageError(imageToTensor(png.subarray(0, Math.floor(png.length / 2)), SPEC), 'truncated');
  await expectImageError(imageToTensor(jpg.subarray(0, Math.floor(jpg.length / 2)), SPEC), 'truncated');
  await expectImageError(imageToTensor(png.subarray(0, 40), SPEC), 'truncated');
  // A PNG whose header claims 16000 x 16000: refused from the header, before any pixel is inflated.
  const bomb = Buffer.from(png);
  bomb.writeUInt32BE(16000, 16);
  bomb.writeUInt32BE(16000, 20);
  bomb.writeUInt32BE(crc32(bomb.subarray(12, 29)), 29);
  await expectImageError(imageToTensor(bomb, SPEC), 'too-large');
  await expectImageError(imageToTensor(png, SPEC, { maxBytes: 1000, maxPixels: 1e9 }), 'too-large');
  await expectImageError(imageToTensor(png, SPEC, { maxBytes: 1e9, maxPixels: 100 * 100 }), 'too-large');
});

test('image spec from a manifest is validated', () => {
  assert.deepEqual(parseImageSpec({ size: 224, channels: 1, mean: [0.5], std: [0.25], resize: 'center-crop' }), {
    size: 224,
    channels: 1,
    mean: 0.5,
    std: 0.25,
    resize: 'center-crop',
  });
  assert.throws(() => parseImageSpec({ size: 224, mean: 0.5, std: 0 }), /std/);
  assert.throws(() => parseImageSpec({ size: 224, channels: 2, mean: 0.5, std: 1 }), /channels/);
  assert.equal(parseImageSpec({ size: 224, channels: 3, mean: 0.5, std: 1 }).channels, 3, 'three channels: the grey replicated');
  assert.throws(() => parseImageSpec({ size: 224, mean: 0.5, std: 1, interpolation: 'nearest' }), /interpolation/);
  assert.throws(() => parseImageSpec({ size: 7.5, mean: 0.5, std: 1 }), /size/);
  assert.throws(() => parseImageSpec({ size: 224, mean: 0.5, std: 1, resize: 'stretch' }), /resize/);
});

// ---------- DICOM: files written by the test from a real X-ray ----------

test('DICOM 16-bit with rescale and VOI window reproduces the source pixels', async () => {
  const grey = await realGrey();
  // Stored = (v * 16 + 1000); rescale slope 0.5, intercept -500 -> v * 8; window over [0, 2040] maps back to v.
  const stored = Array.from(grey.data, (v) => v * 16 + 1000);
  for (const ts of [TRANSFER_SYNTAX.explicitLittle, TRANSFER_SYNTAX.explicitBig]) {
    const file = writeDicom({
      transferSyntax: ts,
      rows: grey.height,
      columns: grey.width,
      bitsAllocated: 16,
      bitsStored: 12 + 4,
      rescale: { slope: 0.5, intercept: -500 },
      window: { center: 1020.5, width: 2041 },
      pixelData: uint16Bytes(stored, ts !== TRANSFER_SYNTAX.explicitBig),
    });
    const out = await decodeGrey(file);
    assert.equal(out.format, 'dicom');
    assert.deepEqual([out.width, out.height], [grey.width, grey.height]);
    assert.ok(maxAbsDiff(out.data, grey.data) <= 1, ts);
  }
});

test('DICOM signed 12-bit samples in 16 bits are sign-extended before the window', async () => {
  const grey = await realGrey();
  // Values -1024..1016 stored as 12-bit two's complement in 16-bit words (upper 4 bits zero).
  const stored = Array.from(grey.data, (v) => (v * 8 - 1024) & 0x0fff);
  const out = await decodeGrey(
    writeDicom({
      transferSyntax: TRANSFER_SYNTAX.explicitLittle,
      rows: grey.height,
      columns: grey.width,
      bitsAllocated: 16,
      bitsStored: 12,
      pixelRepresentation: 1,
      window: { center: -4, width: 2041 },
      pixelData: uint16Bytes(stored),
    }),
  );
  assert.ok(maxAbsDiff(out.data, grey.data) <= 1, `max diff ${maxAbsDiff(out.data, grey.data)}`);
});

test('DICOM MONOCHROME1 is inverted and a file without a window gets a percentile window', async () => {
  const grey = await realGrey();
  const common = { transferSyntax: TRANSFER_SYNTAX.explicitLittle, rows: grey.height, columns: grey.width, bitsAllocated: 8 as const };
  const mono1 = await decodeGrey(
    writeDicom({ ...common, photometric: 'MONOCHROME1', window: { center: 127.5, width: 256 }, pixelData: grey.data }),
  );
  const inverted = Array.from(grey.data, (v) => 255 - v);
  assert.ok(maxAbsDiff(mono1.data, inverted) <= 1);
  const auto = await decodeGrey(writeDicom({ ...common, pixelData: grey.data }));
  // Percentile windowing stretches contrast: correlation with the source stays near 1, full range is used.
  let sxy = 0,
    sx = 0,
    sy = 0,
    sxx = 0,
    syy = 0;
  const n = grey.data.length;
  for (let i = 0; i < n; i++) {
    const x = grey.data[i]!,
      y = auto.data[i]!;
    sxy += x * y;
    sx += x;
    sy += y;
    sxx += x * x;
    syy += y * y;
  }
  const r = (n * sxy - sx * sy) / Math.sqrt((n * sxx - sx * sx) * (n * syy - sy * sy));
  assert.ok(r > 0.99, `correlation ${r}`);
  assert.equal(Math.max(...auto.data), 255);
  assert.equal(Math.min(...auto.data), 0);
});

test('DICOM RLE lossless (8 and 16 bit) decodes exactly', async () => {
  const grey = await realGrey();
  const common = {
    transferSyntax: TRANSFER_SYNTAX.rle,
    rows: grey.height,
    columns: grey.width,
    window: { center: 127.5, width: 256 },
    encapsulated: true,
  };
  const eight = await decodeGrey(writeDicom({ ...common, bitsAllocated: 8, pixelData: encodeRle(grey.data, 1) }));
  assert.ok(maxAbsDiff(eight.data, grey.data) <= 1);
  const sixteen = Array.from(grey.data, (v) => v * 256 + 7);
  const w = { center: 0x8000 - 0.5 + 7, width: 65536 };
  const out16 = await decodeGrey(writeDicom({ ...common, bitsAllocated: 16, window: w, pixelData: encodeRle(sixteen, 2) }));
  assert.ok(maxAbsDiff(out16.data, grey.data) <= 1);
});

interface WasmEncoder {
  getDecodedBuffer(info: { width: number; height: number; bitsPerSample: number; componentCount: number; isSigned: boolean }): Uint8Array;
  getEncodedBuffer(): Uint8Array;
  encode(): void;
  delete(): void;
}

async function wasmEncode(
  specifier: string,
  className: string,
  grey: { data: Uint8Array; width: number; height: number },
): Promise<Uint8Array> {
  const mod = (await (require(specifier) as () => Promise<Record<string, new () => WasmEncoder>>)()) as Record<
    string,
    new () => WasmEncoder
  >;
  const enc = new mod[className]!();
  try {
    enc.getDecodedBuffer({ width: grey.width, height: grey.height, bitsPerSample: 8, componentCount: 1, isSigned: false }).set(grey.data);
    enc.encode();
    return enc.getEncodedBuffer().slice();
  } finally {
    enc.delete();
  }
}

test('DICOM JPEG baseline, JPEG lossless, JPEG-LS and JPEG 2000 frames decode through their codecs', async () => {
  const grey = await realGrey();
  const jpeg = new Uint8Array(
    await sharp(grey.data, { raw: { width: grey.width, height: grey.height, channels: 1 } })
      .jpeg({ quality: 95 })
      .toBuffer(),
  );
  const cases = [
    { ts: TRANSFER_SYNTAX.jpegBaseline, frame: jpeg, tolerance: 20 },
    { ts: TRANSFER_SYNTAX.jpegLosslessSV1, frame: encodeJpegLossless8(grey.data, grey.width, grey.height), tolerance: 1 },
    {
      ts: TRANSFER_SYNTAX.jpegLsLossless,
      frame: await wasmEncode('@cornerstonejs/codec-charls/wasmjs', 'JpegLSEncoder', grey),
      tolerance: 1,
    },
    {
      ts: TRANSFER_SYNTAX.jpeg2000Lossless,
      frame: await wasmEncode('@cornerstonejs/codec-openjpeg/wasmjs', 'J2KEncoder', grey),
      tolerance: 1,
    },
  ];
  for (const c of cases) {
    const file = writeDicom({
      transferSyntax: c.ts,
      rows: grey.height,
      columns: grey.width,
      bitsAllocated: 8,
      window: { center: 127.5, width: 256 },
      pixelData: c.frame,
      encapsulated: true,
    });
    // codecs write nothing to stdout (OpenJPEG's "[INFO]" lines would corrupt a CLI's --json output)
    const write = process.stdout.write;
    let printed = '';
    process.stdout.write = ((chunk: string | Uint8Array) => {
      printed += String(chunk);
      return true;
    }) as typeof process.stdout.write;
    let out: Awaited<ReturnType<typeof decodeGrey>>;
    try {
      out = await decodeGrey(file);
    } finally {
      process.stdout.write = write;
    }
    assert.equal(printed, '', `${c.ts} printed to stdout`);
    assert.ok(maxAbsDiff(out.data, grey.data) <= c.tolerance, `${c.ts}: max diff ${maxAbsDiff(out.data, grey.data)}`);
    // the same file as the index builder hands it over: a Node Buffer that starts inside a larger ArrayBuffer
    const asBuffer = Buffer.concat([Buffer.alloc(13), Buffer.from(file)]).subarray(13);
    const viaBuffer = await decodeGrey(asBuffer);
    assert.deepEqual(viaBuffer.data, out.data, `${c.ts}: a Buffer decodes like a Uint8Array`);
  }
});

test('DICOM errors: truncated pixel data, no pixel data, unsupported syntax, corrupt frame, oversized header', async () => {
  const grey = await realGrey(32);
  const base = { transferSyntax: TRANSFER_SYNTAX.explicitLittle, rows: 32, columns: 32, bitsAllocated: 8 as const, pixelData: grey.data };
  const good = writeDicom(base);
  await expectImageError(decodeGrey(good.subarray(0, good.length - 100)), 'truncated');
  await expectImageError(decodeGrey(writeDicom({ ...base, omitPixelData: true })), 'unsupported');
  await expectImageError(decodeGrey(writeDicom({ ...base, transferSyntax: '1.2.840.10008.1.2.4.100' })), 'unsupported');
  await expectImageError(
    decodeGrey(
      writeDicom({ ...base, transferSyntax: TRANSFER_SYNTAX.jpeg2000Lossless, encapsulated: true, pixelData: new Uint8Array(64).fill(7) }),
    ),
    'corrupt',
  );
  await expectImageError(decodeGrey(writeDicom({ ...base, rows: 20000, columns: 20000 })), 'too-large');
  const tensor = await imageToTensor(good, SPEC);
  assert.deepEqual(tensor.dims, [1, 64, 64]);
  assert.equal(tensor.source.format, 'dicom');
});

test('real archive DICOM: every sample decodes, the ACR-NEMA file (no preamble, no meta group) included; MONOCHROME1 inverts', async () => {
  const dir = join(DATA, 'samples/dicom');
  const files = readdirSync(dir).filter((f) => f.endsWith('.dcm'));
  assert.ok(files.length >= 9);
  for (const f of files) {
    const img = await decodeGrey(readFileSync(join(dir, f)));
    assert.ok(img.width >= 440 && img.height >= 440, f);
  }
  const acr = await decodeGrey(readFileSync(join(dir, 'cr-mono1-10bit-no-preamble.dcm')));
  assert.deepEqual([acr.width, acr.height], [440, 440]);
  const mean = acr.data.reduce((s, v) => s + v, 0) / acr.data.length;
  assert.ok(mean > 40 && mean < 215, `a windowed chest film, not a blank: mean ${mean}`);
  const a = await decodeGrey(readFileSync(join(dir, 'siim-cr-jpeg-baseline.dcm')));
  const b = await decodeGrey(readFileSync(join(dir, 'siim-cr-jpeg-baseline-edited-monochrome1.dcm')));
  let off = 0;
  for (let i = 0; i < a.data.length; i++) off += Math.abs(a.data[i]! + b.data[i]! - 255);
  assert.ok(off / a.data.length < 3, `MONOCHROME1 is the inverse: mean |a + b - 255| = ${off / a.data.length}`);
});

test('fuzzed DICOM headers are refused, not decoded into a wrong picture', async () => {
  const grey = await realGrey(32);
  const base = { transferSyntax: TRANSFER_SYNTAX.explicitLittle, rows: 32, columns: 32, bitsAllocated: 8 as const, pixelData: grey.data };
  await expectImageError(decodeGrey(writeDicom({ ...base, bitsStored: 0 })), 'corrupt');
  await expectImageError(decodeGrey(writeDicom({ ...base, bitsStored: 40 })), 'corrupt');
  await expectImageError(decodeGrey(writeDicom({ ...base, rescale: { slope: Number.NaN, intercept: 0 } })), 'corrupt');
  await expectImageError(decodeGrey(writeDicom({ ...base, numberOfFrames: '2147483647' })), 'corrupt');
  // 16-bit pixels relabelled 8 bits allocated: twice the data the header describes
  const wide = writeDicom({ ...base, pixelData: uint16Bytes(new Uint16Array(32 * 32).fill(300)) });
  await expectImageError(decodeGrey(wide), 'corrupt');
  // compressed (RLE) fragments under an uncompressed transfer syntax: refused, not read as pixels
  const rle = writeDicom({ ...base, transferSyntax: TRANSFER_SYNTAX.rle, pixelData: encodeRle(grey.data, 1), encapsulated: true });
  const relabelled = Buffer.from(rle);
  relabelled.write(TRANSFER_SYNTAX.explicitLittle, relabelled.indexOf(TRANSFER_SYNTAX.rle));
  await expectImageError(decodeGrey(relabelled), 'corrupt');
  // a JPEG lossless frame whose own header claims another size is refused before decoding
  const small = await realGrey(16);
  const frame = encodeJpegLossless8(small.data, small.width, small.height);
  await expectImageError(
    decodeGrey(
      writeDicom({
        transferSyntax: TRANSFER_SYNTAX.jpegLosslessSV1,
        rows: 2000,
        columns: 2000,
        bitsAllocated: 8,
        pixelData: frame,
        encapsulated: true,
      }),
    ),
    'corrupt',
  );
  assert.deepEqual(codestreamSize(frame), { width: 16, height: 16, precision: 8 });
});

test('deflated explicit VR little endian decodes like the uncompressed file, from a Uint8Array and from a Buffer', async () => {
  const grey = await realGrey(48);
  const base = { rows: 48, columns: 48, bitsAllocated: 8 as const, pixelData: grey.data, window: { center: 127.5, width: 256 } };
  const plain = await decodeGrey(writeDicom({ ...base, transferSyntax: TRANSFER_SYNTAX.explicitLittle }));
  const deflatedFile = writeDicom({ ...base, transferSyntax: TRANSFER_SYNTAX.deflatedExplicitLittle });
  assert.ok(deflatedFile.length < writeDicom({ ...base, transferSyntax: TRANSFER_SYNTAX.explicitLittle }).length, 'really deflated');
  assert.deepEqual((await decodeGrey(deflatedFile)).data, plain.data);
  assert.deepEqual((await decodeGrey(Buffer.concat([Buffer.alloc(7), Buffer.from(deflatedFile)]).subarray(7))).data, plain.data);
  const broken = deflatedFile.slice();
  broken.fill(0xff, broken.length - 40);
  await assert.rejects(decodeGrey(broken), ImageError);
});

test('lossy 16-bit-precision codestreams under a 12-bit header are not masked: the brightest pixels stay bright', async () => {
  const width = 32;
  const height = 32;
  const values = new Uint16Array(width * height).map((_, i) => (i % width < width / 2 ? 1000 : 5000)); // right half > 4095
  const mod = (await (require('@cornerstonejs/codec-openjpeg/wasmjs') as () => Promise<Record<string, new () => WasmEncoder>>)()) as Record<
    string,
    new () => WasmEncoder
  >;
  const enc = new mod.J2KEncoder!();
  let frame: Uint8Array;
  try {
    enc.getDecodedBuffer({ width, height, bitsPerSample: 16, componentCount: 1, isSigned: false }).set(new Uint8Array(values.buffer));
    enc.encode();
    frame = enc.getEncodedBuffer().slice();
  } finally {
    enc.delete();
  }
  const file = writeDicom({
    transferSyntax: TRANSFER_SYNTAX.jpeg2000Lossless,
    rows: height,
    columns: width,
    bitsAllocated: 16,
    bitsStored: 12,
    pixelData: frame,
    encapsulated: true,
  });
  const img = await decodeGrey(file);
  let left = 0;
  let right = 0;
  for (let i = 0; i < img.data.length; i++) {
    if (i % width < width / 2) left += img.data[i]!;
    else right += img.data[i]!;
  }
  assert.ok(right > left, `right half (5000) must be brighter than the left (1000): ${right} vs ${left}`);
});
