// Query fan-out: an image collection split over two shard Lambdas (real handlers behind a local Invoke endpoint)
// answers like one index; a failing shard is a 503 problem, not a crash.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { LambdaClient } from '@aws-sdk/client-lambda';
import { IndexBundle } from '../core/bundle/index.ts';
import { MedClipModel } from '../core/model/index.ts';
import { buildIndex } from '../index-builder/build.ts';
import { createApp, createServices } from '../api/app.ts';
import { ShardFanout, shardRequest, type ShardRequest } from '../core/search/index.ts';
import { startLocalLambda, type LocalLambda } from './helpers/local-lambda.ts';
import { DATA, IMAGES_CSV, outputDir } from './helpers/paths.ts';
import { tinyIndexBundle } from './helpers/tiny-model.ts';

const dir = outputDir('fanout');
let local: LocalLambda;
let model: MedClipModel;
let whole: IndexBundle;
let fanout: ShardFanout;
let broken = false;

before(async () => {
  const { modelDir, indexDir, rows } = await tinyIndexBundle(dir, { images: 24, thumbnails: true });
  model = await MedClipModel.load(modelDir);
  whole = await IndexBundle.load(indexDir, { model });
  const header = readFileSync(IMAGES_CSV, 'utf8').split('\n')[0]!;
  const shards: IndexBundle[] = [];
  for (const [s, part] of [rows.slice(0, 12), rows.slice(12)].entries()) {
    writeFileSync(join(dir, `shard${s}.csv`), [header, ...part].join('\n') + '\n');
    rmSync(join(dir, `shard${s}`), { recursive: true, force: true });
    await buildIndex({ model: modelDir, images: join(dir, `shard${s}.csv`), root: DATA, out: join(dir, `shard${s}`), thumbnails: true });
    shards.push(await IndexBundle.load(join(dir, `shard${s}`), { model }));
  }
  local = await startLocalLambda({
    'medclip-shard-0': (e) => shardRequest(shards[0]!, e as ShardRequest),
    'medclip-shard-1': (e) => (broken ? Promise.reject(new Error('shard crashed')) : shardRequest(shards[1]!, e as ShardRequest)),
  });
  const client = new LambdaClient({
    region: 'us-east-1',
    endpoint: local.url,
    credentials: { accessKeyId: 'test', secretAccessKey: 'test' },
  });
  fanout = await ShardFanout.connect(['medclip-shard-0', 'medclip-shard-1'], client);
});

after(async () => {
  await local.close();
});

test('image search over two shards returns what one index would; previews come from the owning shard', async () => {
  assert.equal(fanout.count(), 24);
  const app = createApp(await createServices(model, whole, fanout), { auth: { mode: 'off' } });
  const single = createApp(await createServices(model, whole), { auth: { mode: 'off' } });
  for (const query of ['right lower lobe pneumonia', 'normal chest', 'cardiomegaly']) {
    const req = () => ({ method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ query, k: 8 }) });
    const a = (await (await app.request('/v1/search/text', req())).json()) as { hits: { id: string; score: number }[] };
    const b = (await (await single.request('/v1/search/text', req())).json()) as { hits: { id: string; score: number }[] };
    assert.deepEqual(
      a.hits.map((h) => h.id),
      b.hits.map((h) => h.id),
      query,
    );
  }
  const hits = (await (
    await app.request('/v1/search/text', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ query: 'effusion', k: 24 }),
    })
  ).json()) as { hits: { thumbnail: string }[] };
  const preview = await app.request(hits.hits[23]!.thumbnail);
  assert.equal(preview.status, 200);
  assert.equal(preview.headers.get('content-type'), 'image/jpeg');
  const health = (await (await app.request('/v1/health')).json()) as { index: { images: number } };
  assert.equal(health.index.images, 24);
  // facets: the shards' counts merged are the whole index's
  const facets = await (await app.request('/v1/facets')).json();
  assert.deepEqual(facets, whole.facets());
  assert.equal((facets as { images: number }).images, 24);
});

test('a failing shard gives a 503 problem naming the shard, and recovers when it does', async () => {
  const app = createApp(await createServices(model, whole, fanout), { auth: { mode: 'off' } });
  broken = true;
  const r = await app.request('/v1/search/text', {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ query: 'effusion', k: 3 }),
  });
  assert.equal(r.status, 503);
  assert.equal(r.headers.get('content-type'), 'application/problem+json');
  assert.match(((await r.json()) as { detail: string }).detail, /index shard 2 of 2 did not answer/);
  broken = false;
  assert.equal(
    (
      await app.request('/v1/search/text', {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ query: 'effusion', k: 3 }),
      })
    ).status,
    200,
  );
});
