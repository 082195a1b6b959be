// Robustness drill: over a thousand malformed requests of every kind. No 5xx, the process stays up, and the
// heap returns to its baseline afterwards.
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { crc32, deflateSync } from 'node:zlib';
import { IndexBundle } from '../core/bundle/index.ts';
import { MedClipModel } from '../core/model/index.ts';
import { Rng } from '../core/util/index.ts';
import { createApp, createServices } from '../api/app.ts';
import { writeDicom, uint16Bytes } from './helpers/dicom-writer.ts';
import { DATA, IMAGES_CSV, outputDir } from './helpers/paths.ts';
import { tinyIndexBundle } from './helpers/tiny-model.ts';

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;
const dir = outputDir('robustness');
let app: ReturnType<typeof createApp>;
let png: Buffer;
let jpg: Buffer;
let dicom: Uint8Array;

before(async () => {
  const { modelDir, indexDir, rows } = await tinyIndexBundle(dir, { images: 8 });
  const lines = readFileSync(IMAGES_CSV, 'utf8').trim().split('\n');
  const model = await MedClipModel.load(modelDir);
  app = createApp(await createServices(model, await IndexBundle.load(indexDir, { model })), { auth: { mode: 'off' } });
  png = readFileSync(join(DATA, rows.find((l) => l.includes(',nih,'))!.split(',')[0]!));
  jpg = readFileSync(join(DATA, lines.find((l) => l.includes(',kermany,'))!.split(',')[0]!));
  const pixels = new Uint16Array(64 * 64).map((_, i) => (i * 37) % 4096);
  dicom = writeDicom({
    transferSyntax: '1.2.840.10008.1.2.1',
    rows: 64,
    columns: 64,
    bitsAllocated: 16,
    bitsStored: 12,
    pixelData: uint16Bytes(pixels),
  });
});

/** A valid grey 8-bit PNG of side x side black pixels: 256 MB of pixels in a few hundred kilobytes. */
function pngBomb(side: number): Buffer {
  const chunk = (type: string, data: Buffer) => {
    const len = Buffer.alloc(4);
    len.writeUInt32BE(data.length);
    const body = Buffer.concat([Buffer.from(type, 'latin1'), data]);
    const crc = Buffer.alloc(4);
    crc.writeUInt32BE(crc32(body));
    return Buffer.concat([len, body, crc]);
  };
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(side, 0);
  ihdr.writeUInt32BE(side, 4);
  ihdr[8] = 8; // bit depth
  ihdr[9] = 0; // greyscale
  const idat = deflateSync(Buffer.alloc(side * (side + 1)), { level: 9 });
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk('IHDR', ihdr),
    chunk('IDAT', idat),
    chunk('IEND', Buffer.alloc(0)),
  ]);
}

test('1,000+ malformed requests: never a 5xx, always problem+json, memory back to baseline', async () => {
  const rng = new Rng(2026);
  // a real decompression bomb: 16000 x 16000 pixels that compress to a few hundred kilobytes
  const bomb = pngBomb(16000);
  const randomBytes = (n: number) => Uint8Array.from({ length: n }, () => rng.int(256));
  const garbageText = () =>
    Array.from({ length: 1 + rng.int(400) }, () =>
      String.fromCodePoint([0x0, 0x7f, 0xd7ff, 0xe000, 0x1f600, 0x202e, 0xfeff, 65 + rng.int(60)][rng.int(8)]!),
    ).join('');
  const cut = (b: Uint8Array) => b.subarray(0, 1 + rng.int(b.length - 1));
  const kinds: (() => [string, RequestInit])[] = [
    () => ['/v1/classify', { method: 'POST', headers: { 'content-type': 'image/png' }, body: randomBytes(1 + rng.int(5000)) }],
    () => ['/v1/search/image', { method: 'POST', headers: { 'content-type': 'image/png' }, body: cut(png) }],
    () => ['/v1/search/image', { method: 'POST', headers: { 'content-type': 'image/jpeg' }, body: cut(jpg) }],
    () => ['/v1/classify', { method: 'POST', headers: { 'content-type': 'application/dicom' }, body: cut(dicom) }],
    () => ['/v1/classify', { method: 'POST', headers: { 'content-type': 'image/png' }, body: bomb }],
    () => [
      '/v1/search/image',
      {
        method: 'POST',
        headers: { 'content-type': ['text/plain', 'image/gif', 'application/xml', '', 'multipart/form-data'][rng.int(5)]! },
        body: randomBytes(100),
      },
    ],
    () => ['/v1/search/text', { method: 'POST', headers: { 'content-type': 'application/json' }, body: garbageText() }],
    () => [
      '/v1/search/text',
      {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ query: garbageText(), k: [1e9, -5, 0, 3.5, 'ten', null][rng.int(6)] }),
      },
    ],
    () => [
      '/v1/search/text',
      {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ query: 'x'.repeat(1001 + rng.int(5000)) }),
      },
    ],
    () => [
      '/v1/search/text',
      {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify([{}, [], null, 7, { k: 3 }, { query: 5 }][rng.int(6)]),
      },
    ],
    () => [
      '/v1/search/text',
      {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ query: garbageText(), filter: { must: [garbageText()], view: 'PA' } }),
      },
    ],
    () => [
      '/v1/classify',
      { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ image: garbageText() }) },
    ],
    () => [
      '/v1/classify',
      {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({
          image: Buffer.from(randomBytes(300)).toString('base64'),
          classes: [garbageText(), { name: '', prompts: [] }],
        }),
      },
    ],
    () => [
      '/v1/search/image?k=' + encodeURIComponent(garbageText()),
      { method: 'POST', headers: { 'content-type': 'image/png' }, body: png },
    ],
    () => [
      '/v1/search/image?filter=' + encodeURIComponent('{"must":'),
      { method: 'POST', headers: { 'content-type': 'image/png' }, body: png },
    ],
    () => ['/v1/images/' + encodeURIComponent(garbageText()), { method: 'GET' }],
    () => ['/v1/reports/' + encodeURIComponent(garbageText()), { method: 'GET' }],
    () => ['/v1/search/text', { method: ['GET', 'PUT', 'DELETE', 'PATCH'][rng.int(4)]! }],
    () => ['/v1/classify', { method: 'POST', headers: { 'content-type': 'multipart/form-data; boundary=xyz' }, body: garbageText() }],
    () => ['/v1/classify', { method: 'POST', headers: { 'content-type': 'image/png' }, body: randomBytes(7 * 1024 * 1024) }],
  ];
  const run = async (n: number) => {
    const statuses = new Map<number, number>();
    for (let i = 0; i < n; i++) {
      const [path, init] = kinds[i % kinds.length]!();
      const r = await app.request(path, init);
      statuses.set(r.status, (statuses.get(r.status) ?? 0) + 1);
      assert.ok(r.status >= 400 && r.status < 500, `${init.method} ${path.slice(0, 40)} (kind ${i % kinds.length}) -> ${r.status}`);
      assert.equal(r.headers.get('content-type'), 'application/problem+json');
      await r.arrayBuffer();
    }
    return statuses;
  };
  await run(kinds.length * 3); // warm-up: caches, JIT
  gc();
  const baseline = process.memoryUsage().heapUsed;
  const statuses = await run(1040);
  gc();
  const after = process.memoryUsage().heapUsed;
  assert.ok(after - baseline < 32 * 1024 * 1024, `heap grew by ${((after - baseline) / 1048576).toFixed(1)} MiB`);
  assert.ok([...statuses.keys()].every((s) => s < 500));
  // and the service still answers a good request
  const ok = await app.request('/v1/search/text', {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ query: 'pneumothorax' }),
  });
  assert.equal(ok.status, 200);
});
