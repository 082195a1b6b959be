// The Lambda entry with realistic Function URL (payload 2.0) and API Gateway v2 HTTP API events:
// JSON, base64 binary bodies in (PNG, multipart) and out (JPEG previews).
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { deleteFromBundle } from '../index-builder/rewrite.ts';
import { DATA, outputDir } from './helpers/paths.ts';
import { tinyIndexBundle } from './helpers/tiny-model.ts';

const dir = outputDir('lambda');
let handler: (
  event: unknown,
  context: unknown,
) => Promise<{ statusCode: number; headers: Record<string, string>; body: string; isBase64Encoded: boolean }>;
let png: Buffer;
let firstImageId: string;
let bundle: { modelDir: string; indexDir: string };

before(async () => {
  const { modelDir, indexDir, rows } = await tinyIndexBundle(dir, { images: 6, thumbnails: true });
  process.env.MEDCLIP_MODEL_DIR = modelDir;
  process.env.MEDCLIP_INDEX_DIR = indexDir;
  process.env.MEDCLIP_AUTH = 'iam'; // the Function URL authenticates callers (fail closed: nothing set = refused)
  process.env.MEDCLIP_INDEX_RELOAD_SECONDS = '1';
  bundle = { modelDir, indexDir };
  firstImageId = rows[0]!.split(',')[0]!;
  png = readFileSync(join(DATA, firstImageId));
  handler = (await import('../api/lambda.ts')).handler as unknown as typeof handler;
});

const context = {
  awsRequestId: 'c6af9ac6-7b61-11e6-9a41-93e812345678',
  functionName: 'medclip-api',
  getRemainingTimeInMillis: () => 29000,
};

/** A Function URL event (payload format 2.0); API Gateway v2 differs in routeKey and domain. */
function event(
  method: string,
  path: string,
  opts: { query?: string; headers?: Record<string, string>; body?: Buffer | string; apiGateway?: boolean } = {},
) {
  const body = opts.body;
  const binary = Buffer.isBuffer(body);
  return {
    version: '2.0',
    routeKey: opts.apiGateway ? 'ANY /{proxy+}' : '$default',
    rawPath: path,
    rawQueryString: opts.query ?? '',
    headers: {
      host: opts.apiGateway ? 'abc123.execute-api.eu-west-1.amazonaws.com' : 'abc123.lambda-url.eu-west-1.on.aws',
      'user-agent': 'curl/8.5.0',
      'x-forwarded-proto': 'https',
      ...(opts.headers ?? {}),
    },
    queryStringParameters: opts.query ? Object.fromEntries(new URLSearchParams(opts.query)) : undefined,
    requestContext: {
      accountId: '123456789012',
      apiId: 'abc123',
      domainName: opts.apiGateway ? 'abc123.execute-api.eu-west-1.amazonaws.com' : 'abc123.lambda-url.eu-west-1.on.aws',
      domainPrefix: 'abc123',
      http: { method, path, protocol: 'HTTP/1.1', sourceIp: '203.0.113.7', userAgent: 'curl/8.5.0' },
      requestId: 'JKJaXmPLvHcESHA=',
      routeKey: opts.apiGateway ? 'ANY /{proxy+}' : '$default',
      stage: '$default',
      time: '28/Nov/2026:01:00:00 +0000',
      timeEpoch: 1795827600000,
    },
    ...(body !== undefined
      ? { body: binary ? (body as Buffer).toString('base64') : body, isBase64Encoded: binary }
      : { isBase64Encoded: false }),
  };
}

test('Function URL: GET /v1/health and a JSON text search', async () => {
  const health = await handler(event('GET', '/v1/health'), context);
  assert.equal(health.statusCode, 200);
  assert.equal(JSON.parse(health.body).index.images, 6);
  const search = await handler(
    event('POST', '/v1/search/text', {
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ query: 'no acute cardiopulmonary process', target: 'reports', k: 2 }),
    }),
    context,
  );
  assert.equal(search.statusCode, 200);
  assert.equal(JSON.parse(search.body).hits.length, 2);
  assert.ok(search.headers['x-request-id']);
});

test('API Gateway v2: base64 PNG body to /v1/classify and /v1/search/image; multipart body', async () => {
  const classify = await handler(
    event('POST', '/v1/classify', { apiGateway: true, headers: { 'content-type': 'image/png' }, body: png }),
    context,
  );
  assert.equal(classify.statusCode, 200, classify.body);
  const probs = JSON.parse(classify.body).classes as { probability: number }[];
  assert.ok(Math.abs(probs.reduce((s, p) => s + p.probability, 0) - 1) < 1e-6);
  const similar = await handler(
    event('POST', '/v1/search/image', {
      apiGateway: true,
      query: 'target=images&k=1',
      headers: { 'content-type': 'image/png' },
      body: png,
    }),
    context,
  );
  assert.equal(JSON.parse(similar.body).hits[0].id, firstImageId);
  const boundary = '----medclip7d93';
  const multipart = Buffer.concat([
    Buffer.from(
      `--${boundary}\r\nContent-Disposition: form-data; name="target"\r\n\r\nimages\r\n--${boundary}\r\nContent-Disposition: form-data; name="image"; filename="x.png"\r\nContent-Type: image/png\r\n\r\n`,
    ),
    png,
    Buffer.from(`\r\n--${boundary}--\r\n`),
  ]);
  const form = await handler(
    event('POST', '/v1/search/image', {
      apiGateway: true,
      headers: { 'content-type': `multipart/form-data; boundary=${boundary}` },
      body: multipart,
    }),
    context,
  );
  assert.equal(form.statusCode, 200, form.body);
  assert.equal(JSON.parse(form.body).hits[0].id, firstImageId);
});

test('binary responses come back base64-encoded; errors are problem+json', async () => {
  const thumb = await handler(event('GET', `/v1/images/${encodeURIComponent(firstImageId)}`), context);
  assert.equal(thumb.statusCode, 200);
  assert.equal(thumb.isBase64Encoded, true);
  assert.deepEqual([...Buffer.from(thumb.body, 'base64').subarray(0, 3)], [0xff, 0xd8, 0xff]);
  const bad = await handler(
    event('POST', '/v1/search/text', { headers: { 'content-type': 'application/json' }, body: '{"query": ""}' }),
    context,
  );
  assert.equal(bad.statusCode, 400);
  assert.equal(bad.headers['content-type'], 'application/problem+json');
  const truncated = await handler(
    event('POST', '/v1/classify', { headers: { 'content-type': 'image/png' }, body: png.subarray(0, 200) }),
    context,
  );
  assert.equal(truncated.statusCode, 400);
});

test('a warm function serves a newly published index version once MEDCLIP_INDEX_RELOAD_SECONDS have passed', async () => {
  const images = async () => JSON.parse((await handler(event('GET', '/v1/health'), context)).body).index.images as number;
  const before = await images();
  await deleteFromBundle(bundle.indexDir, bundle.modelDir, [firstImageId]);
  await new Promise((r) => setTimeout(r, 1100));
  assert.equal(await images(), before - 1);
  const preview = await handler(event('GET', `/v1/images/${encodeURIComponent(firstImageId)}`), context);
  assert.equal(preview.statusCode, 404, 'the deleted image is gone');
});
