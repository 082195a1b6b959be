// No input may push a decoding process past 512 MB: the largest accepted image (5000 x 5000 at 16 bits, as a native
// DICOM file, as JPEG 2000 and as a PNG) decodes, and bombs are refused from their headers before anything large is allocated: a
// DICOM header claiming 65535 x 65535, a deflated data set that inflates to 300 MB, a 8000 x 8000 PNG. Measured as
// the peak resident memory of a separate process per input (test/helpers/decode-drill.ts).
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { once } from 'node:events';
import { createRequire } from 'node:module';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { promisify } from 'node:util';
import { createDeflateRaw } from 'node:zlib';
import sharp from 'sharp';
import { TRANSFER_SYNTAX } from '../core/image/index.ts';
import { writeDicom } from './helpers/dicom-writer.ts';
import { outputDir, REPO } from './helpers/paths.ts';

const run = promisify(execFile);

interface J2KEncoder {
  getDecodedBuffer(info: { width: number; height: number; bitsPerSample: number; componentCount: number; isSigned: boolean }): Uint8Array;
  encode(): void;
  getEncodedBuffer(): Uint8Array;
  delete(): void;
}

/** A raw deflate stream of `mb` MB of zeros, made a megabyte at a time (the test process never holds it inflated). */
async function zeros(mb: number): Promise<Buffer> {
  const d = createDeflateRaw({ level: 9 });
  const chunks: Buffer[] = [];
  d.on('data', (c: Buffer) => chunks.push(c));
  const mega = Buffer.alloc(1 << 20);
  for (let i = 0; i < mb; i++) if (!d.write(mega)) await once(d, 'drain');
  d.end();
  await once(d, 'end');
  return Buffer.concat(chunks);
}

test('decoding stays under 512 MB: the largest accepted X-ray decodes, header and deflate bombs are refused', async (t) => {
  const dir = outputDir('dicom-memory');
  const side = 5000;
  const pixels = new Uint16Array(side * side).map((_, i) => ((i % side) * 13 + Math.floor(i / side) * 7) & 0x0fff);
  const files: Record<string, Uint8Array> = {
    'limit-16bit.dcm': writeDicom({
      transferSyntax: TRANSFER_SYNTAX.explicitLittle,
      rows: side,
      columns: side,
      bitsAllocated: 16,
      bitsStored: 12,
      pixelData: new Uint8Array(pixels.buffer),
    }),
    'header-bomb.dcm': writeDicom({
      transferSyntax: TRANSFER_SYNTAX.explicitLittle,
      rows: 65535,
      columns: 65535,
      bitsAllocated: 16,
      pixelData: new Uint8Array(100),
    }),
  };
  // the same picture as JPEG 2000 lossless: OpenJPEG's WebAssembly heap holds the codestream and the decoded frame
  const mod = (await (
    createRequire(import.meta.url)('@cornerstonejs/codec-openjpeg/wasmjs') as () => Promise<Record<string, new () => J2KEncoder>>
  )())!;
  const encoder = new mod.J2KEncoder!();
  try {
    encoder
      .getDecodedBuffer({ width: side, height: side, bitsPerSample: 16, componentCount: 1, isSigned: false })
      .set(new Uint8Array(pixels.buffer));
    encoder.encode();
    const frame = encoder.getEncodedBuffer().slice();
    files['limit-j2k.dcm'] = writeDicom({
      transferSyntax: TRANSFER_SYNTAX.jpeg2000Lossless,
      rows: side,
      columns: side,
      bitsAllocated: 16,
      bitsStored: 12,
      pixelData: frame,
      encapsulated: true,
    });
  } finally {
    encoder.delete();
  }
  // a deflated data set that inflates to 300 MB: the meta group of a real deflated file, then 300 MB of zeros, deflated
  const small = writeDicom({
    transferSyntax: TRANSFER_SYNTAX.deflatedExplicitLittle,
    rows: 4,
    columns: 4,
    bitsAllocated: 8,
    pixelData: new Uint8Array(16),
  });
  const metaEnd = 132 + 12 + new DataView(small.buffer, small.byteOffset).getUint32(140, true);
  files['deflate-bomb.dcm'] = Buffer.concat([small.subarray(0, metaEnd), await zeros(300)]);
  files['limit.png'] = await sharp({ create: { width: side, height: side, channels: 3, background: { r: 128, g: 128, b: 128 } } })
    .greyscale()
    .png({ compressionLevel: 1 })
    .toBuffer();
  files['pixel-bomb.png'] = await sharp({ create: { width: 8000, height: 8000, channels: 3, background: { r: 0, g: 0, b: 0 } } })
    .greyscale()
    .png()
    .toBuffer();
  for (const [name, bytes] of Object.entries(files)) await writeFile(join(dir, name), bytes);

  // one process per input: each input's own peak
  const outcomes: Record<string, string> = {};
  const peaks: Record<string, number> = {};
  for (const name of Object.keys(files)) {
    const { stdout } = await run(process.execPath, ['--import', 'tsx', join(REPO, 'test/helpers/decode-drill.ts'), join(dir, name)], {
      cwd: REPO,
      maxBuffer: 1 << 20,
    });
    const r = JSON.parse(stdout) as { outcomes: Record<string, string>; maxRssMb: number };
    Object.assign(outcomes, r.outcomes);
    peaks[name] = r.maxRssMb;
  }
  const maxRssMb = Math.max(...Object.values(peaks));
  assert.deepEqual(outcomes, {
    'limit-16bit.dcm': 'ok',
    'limit-j2k.dcm': 'ok',
    'header-bomb.dcm': 'too-large',
    'deflate-bomb.dcm': 'too-large',
    'limit.png': 'ok',
    'pixel-bomb.png': 'too-large',
  });
  t.diagnostic(`peak resident memory per input (MB): ${JSON.stringify(peaks)}`);
  assert.ok(maxRssMb < 512, `peak resident memory ${JSON.stringify(peaks)} MB`);
});
