// Bundles from S3 (real AWS SDK against a local S3-compatible endpoint): download, sha256 check, ETag cache,
// corrupted uploads refused while the cached copy stays intact.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { cpSync, existsSync, readdirSync, readFileSync, statSync, rmSync } from 'node:fs';
import { join, relative } from 'node:path';
import { BundleFetchError, fetchBundle, IndexBundle } from '../core/bundle/index.ts';
import { MedClipModel } from '../core/model/index.ts';
import { LiveSearch, SearchService } from '../core/search/index.ts';
import { deleteFromBundle } from '../index-builder/rewrite.ts';
import { startLocalS3, type LocalS3 } from './helpers/local-s3.ts';
import { liveDir, outputDir, REPO } from './helpers/paths.ts';

const cache = outputDir('bundle-fetch');
let s3: LocalS3;
const env = { ...process.env };

function upload(local: string, prefix: string): void {
  const walk = (d: string): string[] =>
    readdirSync(d).flatMap((n) => (statSync(join(d, n)).isDirectory() ? walk(join(d, n)) : [join(d, n)]));
  for (const f of walk(local)) s3.put('bundles', `${prefix}/${relative(local, f)}`, readFileSync(f));
}

before(async () => {
  s3 = await startLocalS3();
  process.env.AWS_ENDPOINT_URL_S3 = s3.url;
  process.env.AWS_REGION = 'eu-west-1';
  process.env.AWS_ACCESS_KEY_ID = 'test';
  process.env.AWS_SECRET_ACCESS_KEY = 'test';
  rmSync(cache, { recursive: true, force: true });
  upload(join(REPO, 'models/medclip-tiny'), 'models/medclip-tiny');
  upload(join(REPO, 'indexes/sample'), 'indexes/sample');
});

after(async () => {
  process.env = env;
  await s3.close();
});

test('fetchBundle downloads a model and an index bundle that then load and verify; a second call uses the cache', async () => {
  const modelDir = await fetchBundle({ uri: 's3://bundles/models/medclip-tiny', cacheDir: cache });
  const indexDir = await fetchBundle({ uri: 's3://bundles/indexes/sample', cacheDir: cache });
  const model = await MedClipModel.load(modelDir);
  const index = await IndexBundle.load(indexDir, { model });
  assert.equal(index.count('images'), 200);
  // the preview file itself came along (not just a path joined): a JPEG on disk
  const thumb = index.thumbnailFile(index.search('images', (await model.embedTexts(['pneumonia']))[0]!, { k: 1 })[0]!.meta.id)!;
  assert.deepEqual([...readFileSync(thumb).subarray(0, 3)], [0xff, 0xd8, 0xff], 'thumbnails came along');
  await model.close();
  s3.gets.length = 0;
  assert.equal(await fetchBundle({ uri: 's3://bundles/models/medclip-tiny', cacheDir: cache }), modelDir);
  assert.deepEqual(s3.gets, ['models/medclip-tiny/manifest.json'], 'only the manifest is read when its ETag is unchanged');
});

test('a corrupted or incomplete upload is refused and the cached copy stays usable', async () => {
  const good = await fetchBundle({ uri: 's3://bundles/models/medclip-tiny', cacheDir: cache });
  const manifest = JSON.parse(readFileSync(join(REPO, 'models/medclip-tiny/manifest.json'), 'utf8'));
  // a new manifest (new ETag) whose text encoder does not match its hash
  s3.put('bundles', 'models/medclip-tiny/manifest.json', JSON.stringify({ ...manifest, name: 'medclip-tiny-v2' }));
  const onnx = new Uint8Array(readFileSync(join(REPO, 'models/medclip-tiny/text_encoder.onnx')));
  onnx[1000]! ^= 0xff;
  s3.put('bundles', 'models/medclip-tiny/text_encoder.onnx', onnx);
  await assert.rejects(
    fetchBundle({ uri: 's3://bundles/models/medclip-tiny', cacheDir: cache }),
    (e: unknown) => e instanceof BundleFetchError && /text_encoder\.onnx does not match its sha256/.test(e.message),
  );
  const model = await MedClipModel.load(good);
  assert.equal(model.name, 'medclip-tiny');
  await model.close();
  s3.objects.delete('bundles/models/medclip-tiny/text_encoder.onnx');
  await assert.rejects(
    fetchBundle({ uri: 's3://bundles/models/medclip-tiny', cacheDir: cache }),
    /text_encoder\.onnx is listed in the manifest but missing/,
  );
  await assert.rejects(
    fetchBundle({ uri: 's3://bundles/models/nothing', cacheDir: cache }),
    /s3:\/\/bundles\/models\/nothing\/manifest\.json does not exist/,
  );
  await assert.rejects(fetchBundle({ uri: 'https://example.org/x', cacheDir: cache }), /not an S3 URI/);
});

test('a versioned bundle (CURRENT + version folder, as written locally) is fetched at the version CURRENT names', async () => {
  upload(liveDir(join(REPO, 'indexes/sample')), 'indexes/versioned/v000003');
  s3.put('bundles', 'indexes/versioned/CURRENT', 'v000003\n');
  const model = await MedClipModel.load(join(REPO, 'models/medclip-tiny'));
  try {
    const dir = await fetchBundle({ uri: 's3://bundles/indexes/versioned', cacheDir: cache });
    assert.equal((await IndexBundle.load(dir, { model })).count('images'), 200);
    s3.put('bundles', 'indexes/versioned/CURRENT', '../../etc\n');
    await assert.rejects(fetchBundle({ uri: 's3://bundles/indexes/versioned', cacheDir: cache }), /CURRENT does not name a version folder/);
  } finally {
    await model.close();
  }
});

test('a warm function follows a bundle in S3: a new upload is served, a request on the old copy finishes there', async () => {
  const local = join(cache, 'live-source');
  rmSync(local, { recursive: true, force: true });
  cpSync(join(REPO, 'indexes/sample'), local, { recursive: true });
  upload(local, 'indexes/live');
  const model = await MedClipModel.load(join(REPO, 'models/medclip-tiny'));
  const uri = 's3://bundles/indexes/live';
  const live = await LiveSearch.open({
    location: cache,
    locate: () => fetchBundle({ uri, cacheDir: cache }),
    open: async (dir) => SearchService.create(model, await IndexBundle.load(dir, { model })),
  });
  try {
    const held = live.acquire();
    const first = live.versionDir;
    const victim = [...held.service.index.entries('images')][0]!.meta.id;
    assert.equal(await live.refresh(), false, 'nothing new: the manifest ETag is unchanged');
    await deleteFromBundle(local, join(REPO, 'models/medclip-tiny'), [victim]);
    upload(local, 'indexes/live'); // the new version folder, then CURRENT
    assert.equal(await live.refresh(), true);
    assert.equal(live.current().health().index.images, 199);
    assert.notEqual(live.versionDir, first);
    // the old copy in /tmp is leased: the request that started on it still reads its files
    assert.ok((await held.service.imagePreview(victim)).length > 100);
    held.release();
    await deleteFromBundle(local, join(REPO, 'models/medclip-tiny'), [[...live.current().index.entries('images')][0]!.meta.id]);
    upload(local, 'indexes/live');
    assert.equal(await live.refresh(), true);
    assert.ok(!existsSync(first), 'released, the old copy is pruned at the next fetch');
  } finally {
    await live.close();
    await model.close();
  }
});
