// The HTTP API through app.request(): every route, every error path, auth, privacy of logs, and the Lambda
// entry with realistic Function URL and API Gateway v2 events.
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { crc32 } from 'node:zlib';
import { createHash } from 'node:crypto';
import { IndexBundle } from '../core/bundle/index.ts';
import { MedClipModel } from '../core/model/index.ts';
import { buildIndex } from '../index-builder/build.ts';
import { createApp, createServices, type ApiServices } from '../api/app.ts';
import { DATA, outputDir } from './helpers/paths.ts';
import { tinyIndexBundle } from './helpers/tiny-model.ts';

const dir = outputDir('api');
let services: ApiServices;
let modelDir: string;
let indexDir: string;
let png: Buffer;
let jpg: Buffer;
const logs: Record<string, unknown>[] = [];

before(async () => {
  // 12 NIH and 8 Kermany val images (with previews) and the IU val reports
  let rows: string[] = [];
  ({ modelDir, indexDir, rows } = await tinyIndexBundle(dir, {
    images: 20,
    thumbnails: true,
    rows: (lines) => {
      const val = lines.filter((l) => l.includes(',val,'));
      return [...val.filter((l) => l.includes(',nih,')).slice(0, 12), ...val.filter((l) => l.includes(',kermany,')).slice(0, 8)];
    },
  }));
  const model = await MedClipModel.load(modelDir);
  services = await createServices(model, await IndexBundle.load(indexDir, { model }));
  png = readFileSync(join(DATA, rows.find((l) => l.includes(',nih,'))!.split(',')[0]!));
  jpg = readFileSync(join(DATA, rows.find((l) => l.includes(',kermany,'))!.split(',')[0]!));
});

const app = (config: Partial<Parameters<typeof createApp>[1]> = {}) =>
  createApp(services, { auth: { mode: 'off' }, log: (e) => logs.push(e), ...config });
const post = (path: string, body: unknown, headers: Record<string, string> = { 'content-type': 'application/json' }) =>
  app().request(path, {
    method: 'POST',
    headers,
    body:
      typeof body === 'string' || body instanceof Uint8Array || body instanceof FormData
        ? (body as RequestInit['body'])
        : JSON.stringify(body),
  });

async function problem(r: Response, status: number, detail: RegExp): Promise<void> {
  assert.equal(r.status, status);
  assert.equal(r.headers.get('content-type'), 'application/problem+json');
  assert.ok(r.headers.get('x-request-id'), 'request id on errors too');
  const body = (await r.json()) as { status: number; detail: string; title: string };
  assert.equal(body.status, status);
  assert.match(body.detail, detail);
}

test('GET /v1/health reports model and index identity and counts', async () => {
  const r = await app().request('/v1/health');
  assert.equal(r.status, 200);
  assert.ok(r.headers.get('x-request-id'));
  const h = (await r.json()) as { model: { name: string; sha256: string }; index: { images: number; reports: number } };
  assert.equal(h.model.name, 'test-tiny');
  assert.equal(h.model.sha256, services.model.manifestSha256);
  assert.equal(h.index.images, 20);
  assert.ok(h.index.reports > 300);
});

test('GET /v1/facets counts views, sources and positive findings of the indexed images, from the table itself', async () => {
  const r = await app().request('/v1/facets');
  assert.equal(r.status, 200);
  const f = (await r.json()) as {
    images: number;
    views: { value: string; count: number }[];
    sources: { value: string; count: number }[];
    findings: { name: string; count: number }[];
  };
  const rows = readFileSync(join(dir, 'images.csv'), 'utf8').trim().split('\n');
  const header = rows[0]!.split(',');
  const cells = rows.slice(1).map((l) => l.split(','));
  const tally = (column: string, keep: (v: string) => boolean = Boolean) => {
    const m = new Map<string, number>();
    for (const c of cells)
      if (keep(c[header.indexOf(column)]!)) m.set(c[header.indexOf(column)]!, (m.get(c[header.indexOf(column)]!) ?? 0) + 1);
    return m;
  };
  assert.equal(f.images, 20);
  assert.deepEqual(new Map(f.sources.map((s) => [s.value, s.count])), tally('source'));
  assert.equal(
    f.views.reduce((s, v) => s + v.count, 0),
    [...tally('view').values()].reduce((a, b) => a + b, 0),
  );
  for (const name of ['Pneumonia', 'No Finding']) {
    const positives = cells.filter((c) => c[header.indexOf(name)] === '1').length;
    assert.equal(f.findings.find((x) => x.name === name)?.count ?? 0, positives, name);
  }
  assert.ok(
    f.findings.every((x, i) => i === 0 || f.findings[i - 1]!.count >= x.count),
    'most frequent first',
  );
});

test('POST /v1/search/text: image hits with labels, matched findings and thumbnails; report hits with their best sentence', async () => {
  const r = await post('/v1/search/text', { query: 'Large right pleural effusion.', k: 5 });
  assert.equal(r.status, 200);
  const body = (await r.json()) as {
    query: { findings: { name: string; polarity: string }[] };
    hits: { id: string; score: number; labels: Record<string, number>; matched: string[]; thumbnail: string }[];
  };
  assert.deepEqual(body.query.findings, [{ name: 'Pleural Effusion', polarity: 'positive' }]);
  assert.equal(body.hits.length, 5);
  for (const h of body.hits) assert.deepEqual(h.matched, h.labels['Pleural Effusion'] === 1 ? ['Pleural Effusion'] : []);
  const thumb = await app().request(body.hits[0]!.thumbnail);
  assert.equal(thumb.status, 200);
  assert.equal(thumb.headers.get('content-type'), 'image/jpeg');
  const filtered = (await (
    await post('/v1/search/text', { query: 'pneumonia', k: 20, filter: { source: ['kermany'], mustNot: ['Pneumonia'] } })
  ).json()) as { hits: { source: string; labels: Record<string, number> }[] };
  assert.ok(filtered.hits.length > 0 && filtered.hits.every((h) => h.source === 'kermany' && h.labels.Pneumonia !== 1));
  const reports = (await (await post('/v1/search/text', { query: 'The heart is enlarged.', target: 'reports', k: 3 })).json()) as {
    hits: { id: string; sentence: { text: string }; report: Record<string, string>; matched: string[] }[];
  };
  assert.equal(reports.hits.length, 3);
  assert.equal(new Set(reports.hits.map((h) => h.id)).size, 3, 'one hit per report');
  // the whole sentence is in its report, and it is the stored sentence of that index (not any text sharing a prefix)
  assert.ok(reports.hits.length > 0);
  for (const h of reports.hits) {
    assert.ok(h.sentence.text.length > 3 && Object.values(h.report).join(' ').includes(h.sentence.text), 'the sentence is in its report');
  }
  const one = await app().request(`/v1/reports/${encodeURIComponent(reports.hits[0]!.id)}`);
  assert.equal(one.status, 200);
});

test('searches say where their time went (Server-Timing: embed and search), within the tookMs of the body', async () => {
  const cases = [
    await post('/v1/search/text', { query: 'no pneumothorax', target: 'reports', k: 3 }),
    await post('/v1/search/image?target=images&k=3', new Uint8Array(png), { 'content-type': 'image/png' }),
  ];
  for (const r of cases) {
    assert.equal(r.status, 200);
    const header = r.headers.get('server-timing') ?? '';
    const stages = Object.fromEntries(
      header.split(', ').map((part) => {
        const m = /^(\w+);dur=(\d+\.\d{3})$/.exec(part);
        assert.ok(m, `a Server-Timing metric: ${part}`);
        return [m[1]!, Number(m[2])];
      }),
    );
    assert.deepEqual(Object.keys(stages), ['embed', 'search']);
    const { tookMs } = (await r.json()) as { tookMs: number };
    assert.ok(stages.embed! > 0 && stages.search! > 0);
    assert.ok(stages.embed! + stages.search! <= tookMs + 0.1, `${header} within tookMs ${tookMs}`);
  }
  const spec = (await (await app().request('/openapi.json')).json()) as {
    paths: Record<string, { post: { responses: Record<string, { headers?: Record<string, unknown> }> } }>;
  };
  assert.ok(spec.paths['/v1/search/text']!.post.responses['200']!.headers?.['Server-Timing'], 'declared in the OpenAPI document');
});

test('POST /v1/search/image and /v1/classify accept raw, multipart and base64 JSON bodies alike', async () => {
  const raw = (await (await post('/v1/search/image?target=images&k=3', new Uint8Array(png), { 'content-type': 'image/png' })).json()) as {
    hits: { id: string; score: number }[];
    query: { findings: unknown[] };
  };
  const form = new FormData();
  form.append('image', new Blob([new Uint8Array(png)], { type: 'image/png' }), 'x.png');
  form.append('target', 'images');
  form.append('k', '3');
  const viaForm = (await (await post('/v1/search/image', form, {})).json()) as typeof raw;
  const viaJson = (await (await post('/v1/search/image', { image: png.toString('base64'), target: 'images', k: 3 })).json()) as typeof raw;
  assert.equal(raw.hits.length, 3);
  assert.deepEqual(
    viaForm.hits.map((h) => h.id),
    raw.hits.map((h) => h.id),
  );
  assert.deepEqual(
    viaJson.hits.map((h) => h.id),
    raw.hits.map((h) => h.id),
  );
  assert.ok(raw.hits[0]!.score > 0.99, 'the query image itself is in the index and comes first');
  assert.ok(raw.query.findings.length >= 1);
  const c1 = (await (await post('/v1/classify', new Uint8Array(jpg), { 'content-type': 'image/jpeg' })).json()) as {
    classes: { name: string; probability: number }[];
  };
  assert.ok(Math.abs(c1.classes.reduce((s, x) => s + x.probability, 0) - 1) < 1e-6);
  assert.ok(c1.classes.length >= 7);
  const custom = (await (
    await post('/v1/classify', {
      image: jpg.toString('base64'),
      classes: ['Pneumonia', { name: 'Clear lungs', prompts: ['the lungs are clear', 'no acute cardiopulmonary process'] }],
    })
  ).json()) as typeof c1;
  assert.deepEqual(custom.classes.map((c) => c.name).sort(), ['Clear lungs', 'Pneumonia']);
});

test('POST /v1/preview: an uploaded X-ray (DICOM too) as the JPEG the model reads; nothing else accepted', async () => {
  const dicom = readFileSync(join(DATA, 'samples/dicom/nih-secondary-capture-test2.dcm'));
  const r = await post('/v1/preview', new Uint8Array(dicom), { 'content-type': 'application/dicom' });
  assert.equal(r.status, 200);
  assert.equal(r.headers.get('content-type'), 'image/jpeg');
  const { default: sharp } = await import('sharp');
  const meta = await sharp(Buffer.from(await r.arrayBuffer())).metadata();
  assert.deepEqual([meta.format, meta.width, meta.height, meta.channels], ['jpeg', 768, 768, 1]);
  // a small PNG is not enlarged; JSON base64 works as for search
  const small = await post('/v1/preview', { image: png.toString('base64') });
  assert.equal((await sharp(Buffer.from(await small.arrayBuffer())).metadata()).width, 256);
  await problem(await post('/v1/preview', 'not an image', { 'content-type': 'image/png' }), 415, /not a PNG, JPEG or DICOM/);
  await problem(await post('/v1/preview', { image: png.toString('base64'), k: 3 }), 400, /unknown field/);
});

test('previews: from the bundle when it stores them; otherwise from the archive (imagesRoot), else a 404 that says so', async () => {
  const bare = join(dir, 'no-thumbs');
  rmSync(bare, { recursive: true, force: true });
  await buildIndex({ model: modelDir, images: join(dir, 'images.csv'), root: DATA, out: bare });
  const index = await IndexBundle.load(bare, { model: services.model });
  const id = [...index.entries('images')][0]!.meta.id;
  const path = `/v1/images/${encodeURIComponent(id)}`;
  const none = createApp(await createServices(services.model, index), { auth: { mode: 'off' } });
  await problem(await none.request(path), 404, /no preview is stored/);
  const archive = createApp(await createServices(services.model, index, undefined, { imagesRoot: DATA }), { auth: { mode: 'off' } });
  const r = await archive.request(path);
  assert.equal(r.status, 200);
  assert.equal(r.headers.get('content-type'), 'image/jpeg');
  const { default: sharp } = await import('sharp');
  const meta = await sharp(Buffer.from(await r.arrayBuffer())).metadata();
  assert.equal(meta.format, 'jpeg');
  assert.ok(meta.width! > 0 && meta.width! <= 256);
});

test('bad requests get 4xx problem+json with a useful detail', async () => {
  await problem(await post('/v1/search/text', { query: 'x', k: 1000 }), 400, /k: .*100/);
  await problem(await post('/v1/search/text', { query: 'x', k: -1 }), 400, /k:/);
  await problem(await post('/v1/search/text', { query: 'x'.repeat(1001) }), 400, /query: .*1000/);
  await problem(await post('/v1/search/text', { k: 3 }), 400, /query/);
  await problem(await post('/v1/search/text', { query: 'x', colour: 'red' }), 400, /colour|unrecognized/i);
  await problem(await post('/v1/search/text', { query: 'x', filter: { must: ['Pneumonitis'] } }), 400, /filter\.must\.0/);
  await problem(await post('/v1/search/text', '{"query":'), 400, /not valid JSON/);
  await problem(await post('/v1/search/text', 'query=x', { 'content-type': 'text/plain' }), 415, /./);
  await problem(await post('/v1/search/image', { image: '%%%not base64%%%' }), 400, /not valid base64/);
  await problem(await post('/v1/search/image', new Uint8Array(0), { 'content-type': 'image/png' }), 400, /empty/);
  await problem(await post('/v1/search/image', 'hello', { 'content-type': 'text/plain' }), 415, /multipart\/form-data/);
  await problem(
    await post('/v1/classify', new Uint8Array(png.subarray(0, png.length / 2)), { 'content-type': 'image/png' }),
    400,
    /truncated|corrupt/i,
  );
  await problem(
    await post('/v1/classify', new TextEncoder().encode('GIF89a...'), { 'content-type': 'image/png' }),
    415,
    /PNG, JPEG or DICOM/,
  );
  const bomb = Buffer.from(png);
  bomb.writeUInt32BE(16000, 16);
  bomb.writeUInt32BE(16000, 20);
  bomb.writeUInt32BE(crc32(bomb.subarray(12, 29)), 29);
  await problem(await post('/v1/classify', new Uint8Array(bomb), { 'content-type': 'image/png' }), 413, /pixels|large/i);
  await problem(await post('/v1/search/image?k=0', new Uint8Array(png), { 'content-type': 'image/png' }), 400, /k:/);
  await problem(await post('/v1/search/image?target=videos', new Uint8Array(png), { 'content-type': 'image/png' }), 400, /target/);
  await problem(await post('/v1/classify', { image: png.toString('base64'), classes: ['Pneumonia'] }), 400, /classes/);
  await problem(
    await post('/v1/classify', { image: png.toString('base64'), classes: ['Pneumonia', 'Hiccups'] }),
    400,
    /unknown built-in class "Hiccups"/,
  );
  const small = createApp(services, { auth: { mode: 'off' }, maxBodyBytes: 1000 });
  await problem(
    await small.request('/v1/classify', { method: 'POST', headers: { 'content-type': 'image/png' }, body: new Uint8Array(png) }),
    413,
    /limited to/,
  );
  await problem(await app().request('/v1/images/nope'), 404, /no image/);
  await problem(await app().request('/v1/reports/nope'), 404, /no report/);
  await problem(await app().request('/v2/anything'), 404, /no route/);
});

test('API keys: 401 without or with a wrong key, 200 with a right one (header or bearer); keys stored hashed', async () => {
  const key = 'correct horse battery staple';
  const secured = createApp(services, { auth: { mode: 'api-key', hashes: [createHash('sha256').update(key).digest()] } });
  const body = JSON.stringify({ query: 'effusion', k: 1 });
  const req = (headers: Record<string, string>) =>
    secured.request('/v1/search/text', { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body });
  await problem(await req({}), 401, /needs a key/);
  await problem(await req({ 'x-api-key': 'wrong' }), 401, /not valid/);
  assert.equal((await req({ 'x-api-key': key })).status, 200);
  assert.equal((await req({ authorization: `Bearer ${key}` })).status, 200);
  const spec = (await (await secured.request('/openapi.json')).json()) as { components: { securitySchemes: Record<string, unknown> } };
  assert.ok(spec.components.securitySchemes.apiKey);
});

test('/openapi.json is OpenAPI 3.1 generated from the validating schemas; /docs and / are pages', async () => {
  const spec = (await (await app().request('/openapi.json')).json()) as {
    openapi: string;
    paths: Record<string, Record<string, { requestBody?: { content: Record<string, unknown> } }>>;
    components: { schemas: Record<string, { properties?: Record<string, { maximum?: number }> }> };
  };
  assert.equal(spec.openapi, '3.1.0');
  for (const p of ['/v1/health', '/v1/search/text', '/v1/search/image', '/v1/classify', '/v1/images/{id}', '/v1/reports/{id}'])
    assert.ok(spec.paths[p], p);
  assert.deepEqual(Object.keys(spec.paths['/v1/search/image']!.post!.requestBody!.content).sort(), [
    'application/dicom',
    'application/json',
    'image/jpeg',
    'image/png',
    'multipart/form-data',
  ]);
  assert.equal(spec.components.schemas.TextSearchRequest!.properties!.k!.maximum, 100);
  assert.match(await (await app().request('/docs')).text(), /openapi\.json/);
  assert.equal((await app().request('/')).status, 200);
});

test('logs carry request ids, routes and status, never query text or pixels', async () => {
  logs.length = 0;
  const secret = 'patient John Q. Example has a pneumothorax';
  await post('/v1/search/text', { query: secret });
  await post('/v1/search/text', { query: secret, k: 5000 });
  const text = JSON.stringify(logs);
  assert.ok(logs.length >= 2);
  assert.ok(!text.includes('John'), 'no query text in logs');
  assert.ok(logs.every((l) => typeof l.requestId === 'string' && typeof l.status === 'number'));
});

test('end to end over HTTP: medclip serve answers on loopback, refuses to run keyless on a public address', async () => {
  const { startServer } = await import('../api/server.ts');
  const lines: string[] = [];
  const s = await startServer({ model: modelDir, index: indexDir, port: 0, host: '127.0.0.1', log: (l) => lines.push(l) });
  try {
    assert.match(lines[0]!, /auth OFF \(local use only, bound to loopback\)/);
    const health = await fetch(`${s.url}/v1/health`);
    assert.equal(health.status, 200);
    const r = await fetch(`${s.url}/v1/search/image?target=reports&k=2`, {
      method: 'POST',
      headers: { 'content-type': 'image/png' },
      body: new Uint8Array(png),
    });
    assert.equal(r.status, 200);
    assert.equal(((await r.json()) as { hits: unknown[] }).hits.length, 2);
    const page = await fetch(`${s.url}/`);
    assert.match(await page.text(), /drop an X-ray here/);
    assert.match(page.headers.get('content-security-policy') ?? '', /script-src 'self'/);
    const script = await fetch(`${s.url}/page/search.js`);
    assert.equal(script.headers.get('content-type'), 'text/javascript; charset=utf-8');
    assert.equal((await fetch(`${s.url}/page/..%2Fapp.ts`)).status, 404, 'only the page files are served');
  } finally {
    await s.close();
  }
  await assert.rejects(
    startServer({ model: modelDir, index: indexDir, port: 0, host: '0.0.0.0', log: () => {} }),
    /refusing to serve without API keys on 0\.0\.0\.0/,
  );
});

test('CORS: configured origins get the headers (preflight included, served methods only); none configured, none sent', async () => {
  const withCors = createApp(services, { auth: { mode: 'off' }, corsOrigins: ['https://radiology.example.org'] });
  const pre = await withCors.request('/v1/search/text', {
    method: 'OPTIONS',
    headers: {
      origin: 'https://radiology.example.org',
      'access-control-request-method': 'POST',
      'access-control-request-headers': 'content-type,x-api-key',
    },
  });
  assert.equal(pre.headers.get('access-control-allow-origin'), 'https://radiology.example.org');
  assert.match(pre.headers.get('access-control-allow-headers') ?? '', /x-api-key/);
  // only the methods some route serves
  assert.deepEqual((pre.headers.get('access-control-allow-methods') ?? '').split(',').sort(), ['GET', 'HEAD', 'POST']);
  const other = await withCors.request('/v1/health', { headers: { origin: 'https://evil.example.com' } });
  assert.notEqual(other.headers.get('access-control-allow-origin'), 'https://evil.example.com');
  const none = await app().request('/v1/health', { headers: { origin: 'https://radiology.example.org' } });
  assert.equal(none.headers.get('access-control-allow-origin'), null);
});
