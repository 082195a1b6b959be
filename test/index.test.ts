// Index bundles on real images and reports: build with bad input, search with filters, verification on load,
// resume after kill -9, append and delete.
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync, rmSync, cpSync } from 'node:fs';
import { join } from 'node:path';
import hnswlib from 'hnswlib-node';
import { IndexBundle, IndexError, hnswHeader } from '../core/bundle/index.ts';
import { MedClipModel } from '../core/model/index.ts';
import { buildIndex } from '../index-builder/build.ts';
import { deleteFromBundle } from '../index-builder/rewrite.ts';
import { DATA, IMAGES_CSV, IU_REPORTS, liveDir, outputDir, REPO } from './helpers/paths.ts';
import { tinyModelBundle } from './helpers/tiny-model.ts';

const dir = outputDir('index');
const shared = join(dir, 'shared');
let modelDir: string;
let table: string;
let model: MedClipModel;

function pickRows(split: string, n: number, offset = 0): string[] {
  const lines = readFileSync(IMAGES_CSV, 'utf8').trim().split('\n');
  return lines.filter((l) => l.includes(`,${split},`)).slice(offset, offset + n);
}
const header = () => readFileSync(IMAGES_CSV, 'utf8').split('\n')[0]!;

before(async () => {
  modelDir = await tinyModelBundle(dir);
  model = await MedClipModel.load(modelDir);
  // 30 real val images, a missing file, a truncated PNG and a text file posing as an image
  const truncated = join(dir, 'truncated.png');
  writeFileSync(truncated, readFileSync(join(DATA, pickRows('val', 1)[0]!.split(',')[0]!)).subarray(0, 300));
  const notImage = join(dir, 'notes.png');
  writeFileSync(notImage, 'not an image');
  const row = (path: string) => [path, ...pickRows('val', 1)[0]!.split(',').slice(1)].join(',');
  table = join(dir, 'images.csv');
  writeFileSync(table, [header(), ...pickRows('val', 30), row(join(dir, 'missing.png')), row(truncated), row(notImage)].join('\n') + '\n');
  // the bundle the read-only tests share, built here so that each test also runs alone (--test-name-pattern)
  rmSync(shared, { recursive: true, force: true });
  await buildIndex({ model: modelDir, images: table, root: DATA, reports: IU_REPORTS, reportSplit: 'val', out: shared, batchSize: 8 });
});

test('build: bad images are skipped and listed by id; everything else is indexed and searchable', async () => {
  const out = join(dir, 'bundle');
  rmSync(out, { recursive: true, force: true });
  const s = await buildIndex({ model: modelDir, images: table, root: DATA, reports: IU_REPORTS, reportSplit: 'val', out, batchSize: 8 });
  assert.equal(s.images.indexed, 30);
  assert.equal(s.images.skipped, 3);
  const errors = readFileSync(join(liveDir(out), 'errors.jsonl'), 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l));
  const imageErrors = errors.filter((e) => e.collection === 'images');
  assert.deepEqual(imageErrors.map((e) => e.reason.split(':')[0]).sort(), ['missing', 'truncated', 'unsupported'].sort());
  assert.ok(
    errors.every((e) => !/not an image/.test(e.reason)),
    'errors carry no file content',
  );
  const index = await IndexBundle.load(out, { model });
  assert.equal(index.count('images'), 30);
  assert.ok(index.count('reports') > 1000);
  const q = (await model.embedTexts(['right lower lobe pneumonia']))[0]!;
  const hits = index.search('images', q, { k: 5 });
  assert.equal(hits.length, 5);
  assert.ok(hits.every((h, i) => i === 0 || h.score <= hits[i - 1]!.score));
  // a source filter keeps only that source (the exact-scan test below checks filtered hits against brute force)
  const onlyNih = index.search('images', q, { k: 30, filter: { source: ['nih'] } });
  assert.ok(onlyNih.length > 0 && onlyNih.every((h) => h.meta.source === 'nih'));
  // these 30 val images are all No Finding: a pneumonia filter finds none, a No Finding filter all 30
  assert.deepEqual(index.search('images', q, { k: 30, filter: { must: ['Pneumonia'], mustNot: ['No Finding'] } }), []);
  const normal = index.search('images', q, { k: 30, filter: { must: ['No Finding'], mustNot: ['Pneumonia'] } });
  assert.equal(normal.length, 30);
  assert.ok(normal.every((h) => h.meta.labels['No Finding'] === 1 && h.meta.labels.Pneumonia !== 1));
  // the allow-list is kept per filter: asking again (after another filter) answers the same
  index.search('images', q, { k: 30, filter: { source: ['kermany'] } });
  assert.deepEqual(index.search('images', q, { k: 30, filter: { must: ['No Finding'], mustNot: ['Pneumonia'] } }), normal);
  const sent = index.search('reports', q, { k: 3, filter: { must: ['Cardiomegaly'] } });
  assert.equal(sent.length, 3, 'the val reports hold more than 3 cardiomegaly sentences');
  assert.ok(sent.every((h) => h.meta.labels.Cardiomegaly === 1 && index.report(h.meta.reportId)));
  assert.throws(() => index.search('images', q, { k: 3, filter: { must: ['Pneumonitis'] } }), /unknown finding "Pneumonitis"/);
  assert.throws(() => index.search('images', q.subarray(0, 4), { k: 3 }), /dimension 4/);
});

test('load refuses a wrong format, another model, a dimension mismatch and a corrupted file', async () => {
  const out = shared;
  const bad = join(dir, 'bad');
  // a copy of the live version alone, in the layout bundles had before versions (still loadable)
  const reset = () => {
    rmSync(bad, { recursive: true, force: true });
    cpSync(liveDir(out), bad, { recursive: true });
  };
  const manifest = () => JSON.parse(readFileSync(join(bad, 'manifest.json'), 'utf8'));
  reset();
  writeFileSync(join(bad, 'manifest.json'), JSON.stringify({ ...manifest(), format: 'medclip-index/0' }));
  await assert.rejects(IndexBundle.load(bad, { model }), /unsupported index format/);
  reset();
  await assert.rejects(
    IndexBundle.load(bad, { model: { name: 'other', manifestSha256: 'f'.repeat(64), embedDim: 16 } }),
    (e: unknown) => e instanceof IndexError && /built with model "test-tiny".*not the loaded model "other"/.test(e.message),
  );
  reset();
  const m = manifest();
  m.collections.images.dim = 32;
  writeFileSync(join(bad, 'manifest.json'), JSON.stringify(m));
  await assert.rejects(IndexBundle.load(bad, { model }), /images vectors have dimension 32, the model embeds to 16/);
  // an HNSW file of another dimension (hnswlib itself would load it silently)
  reset();
  const other = new hnswlib.HierarchicalNSW('ip', 8);
  other.initIndex(30);
  for (let i = 0; i < 30; i++)
    other.addPoint(
      Array.from({ length: 8 }, (_, d) => Math.sin(i + d)),
      i,
    );
  other.writeIndexSync(join(bad, 'images.hnsw'));
  const m2 = manifest();
  const { sha256 } = await import('../core/model/index.ts');
  m2.sha256['images.hnsw'] = sha256(readFileSync(join(bad, 'images.hnsw')));
  writeFileSync(join(bad, 'manifest.json'), JSON.stringify(m2));
  assert.equal(hnswHeader(readFileSync(join(bad, 'images.hnsw'))).dim, 8);
  await assert.rejects(IndexBundle.load(bad, { model }), /images\.hnsw holds 8-dimensional vectors, the manifest says 16/);
  reset();
  const meta = readFileSync(join(bad, 'images.meta.jsonl'));
  meta[10]! ^= 1;
  writeFileSync(join(bad, 'images.meta.jsonl'), meta);
  await assert.rejects(IndexBundle.load(bad, { model }), /images\.meta\.jsonl does not match its sha256/);
  // the HNSW file is verified before hnswlib reads it, whether hashed on this thread or on a worker
  reset();
  const hnsw = readFileSync(join(bad, 'images.hnsw'));
  hnsw[Math.floor(hnsw.length / 2)]! ^= 0xff;
  writeFileSync(join(bad, 'images.hnsw'), hnsw);
  for (const hashInWorker of [false, true])
    await assert.rejects(IndexBundle.load(bad, { model, hashInWorker }), /images\.hnsw does not match its sha256/);
  reset();
  rmSync(join(bad, 'reports.jsonl'));
  await assert.rejects(IndexBundle.load(bad, { model, hashInWorker: true }), /missing reports\.jsonl/);
});

test('a bundle hashed on a worker thread, with the model still loading, answers as one loaded in sequence', async () => {
  const out = shared;
  // the writer's marker would spare both loads the hashing: both hash here
  const sequential = await IndexBundle.load(out, { model, hashInWorker: false, trustMarker: false });
  const parallel = await IndexBundle.load(out, { model: Promise.resolve(model), hashInWorker: true, trustMarker: false });
  const [q] = await model.embedTexts(['small left pleural effusion']);
  for (const c of ['images', 'reports'] as const) {
    const a = sequential.search(c as 'images', q!, { k: 5 });
    const b = parallel.search(c as 'images', q!, { k: 5 });
    assert.deepEqual(
      b.map((h) => [h.meta.id, h.score]),
      a.map((h) => [h.meta.id, h.score]),
    );
    assert.ok(a.length > 0);
  }
  assert.equal(parallel.reports.size, sequential.reports.size);
});

test('a build killed with SIGKILL resumes when run again and yields the same items and vectors', async () => {
  const big = join(dir, 'big.csv');
  writeFileSync(big, [header(), ...pickRows('val', 200)].join('\n') + '\n');
  const full = join(dir, 'full');
  rmSync(full, { recursive: true, force: true });
  await buildIndex({ model: modelDir, images: big, root: DATA, out: full, batchSize: 4 });
  const out = join(dir, 'killed');
  rmSync(out, { recursive: true, force: true });
  rmSync(`${out}.partial`, { recursive: true, force: true });
  const args = [
    'bin/medclip.js',
    'index',
    '--model',
    modelDir,
    '--images',
    big,
    '--root',
    DATA,
    '--out',
    out,
    '--batch',
    '2',
    '--threads',
    '1',
  ];
  const child = spawn(process.execPath, args, { cwd: REPO, stdio: 'ignore' });
  const itemsFile = join(`${out}.partial`, 'images.items.jsonl');
  await new Promise<void>((resolve, reject) => {
    const timer = setInterval(() => {
      const lines = existsSync(itemsFile) ? readFileSync(itemsFile, 'utf8').split('\n').length - 1 : 0;
      if (lines >= 20) {
        clearInterval(timer);
        child.kill('SIGKILL');
        resolve();
      }
    }, 5);
    child.on('exit', () => {
      clearInterval(timer);
      reject(new Error('the build finished before it could be killed'));
    });
  });
  await new Promise((r) => child.once('exit', r));
  assert.ok(
    !existsSync(join(out, 'manifest.json')) && !existsSync(join(out, 'CURRENT')),
    'no bundle is visible before the build completes',
  );
  // the same command again continues where the killed one stopped
  const said: string[] = [];
  const s = await buildIndex({ model: modelDir, images: big, root: DATA, out, batchSize: 4, log: (l) => said.push(l) });
  assert.ok(
    said.some((l) => /^resuming an interrupted build of /.test(l)),
    said.join('\n'),
  );
  assert.equal(s.images.indexed, 200);
  const a = await IndexBundle.load(full, { model });
  const b = await IndexBundle.load(out, { model });
  const ids = (x: IndexBundle) =>
    readFileSync(join(x.dir, 'images.meta.jsonl'), 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l).id as string);
  assert.deepEqual(ids(b).sort(), ids(a).sort());
  assert.equal(new Set(ids(b)).size, 200, 'no item indexed twice');
  const vectors = (x: IndexBundle) => {
    const h = new hnswlib.HierarchicalNSW('ip', 16);
    h.readIndexSync(join(x.dir, 'images.hnsw'));
    return new Map(ids(x).map((id, label) => [id, h.getPoint(label)]));
  };
  const va = vectors(a);
  for (const [id, v] of vectors(b))
    assert.ok(
      v.every((x, i) => Math.abs(x - va.get(id)![i]!) < 1e-6),
      id,
    );
});

test('--append adds a new version, keeping old items; --delete hides items from search', async () => {
  const out = join(dir, 'appended');
  rmSync(out, { recursive: true, force: true });
  const first = join(dir, 'first.csv');
  const second = join(dir, 'second.csv');
  writeFileSync(first, [header(), ...pickRows('val', 10)].join('\n') + '\n');
  writeFileSync(second, [header(), ...pickRows('val', 15, 5)].join('\n') + '\n');
  await buildIndex({ model: modelDir, images: first, root: DATA, out, thumbnails: true });
  const v2 = await buildIndex({ model: modelDir, images: second, root: DATA, out, append: true, thumbnails: true });
  assert.equal(v2.version, 2);
  assert.equal(v2.images.indexed, 20, '10 old + 10 new (5 overlapping ids are not indexed twice)');
  const victim = pickRows('val', 1)[0]!.split(',')[0]!;
  const d = await deleteFromBundle(out, modelDir, [victim, 'no-such-id']);
  assert.deepEqual([d.deleted, d.unknown, d.version], [1, ['no-such-id'], 3]);
  const index = await IndexBundle.load(out, { model });
  assert.equal(index.count('images'), 19);
  const q = (await model.embedImages([readFileSync(join(DATA, victim))]))[0]!;
  assert.ok(!index.search('images', q, { k: 20 }).some((h) => h.meta.id === victim));
  assert.equal(index.image(victim), undefined);
  // thumbnails: every remaining image has one, the deleted image's is gone
  const survivor = pickRows('val', 1, 12)[0]!.split(',')[0]!;
  const thumb = index.thumbnailFile(survivor)!;
  assert.ok(
    existsSync(thumb) &&
      readFileSync(thumb)
        .subarray(0, 2)
        .equals(Buffer.from([0xff, 0xd8])),
    'a JPEG thumbnail',
  );
  const { thumbnailName } = await import('../core/image/index.ts');
  assert.ok(!existsSync(join(liveDir(out), 'thumbs', thumbnailName(victim))), 'deleted image leaves no thumbnail');
});

test('build refuses to overwrite an existing bundle and reports when nothing could be indexed', async () => {
  await assert.rejects(buildIndex({ model: modelDir, images: table, root: DATA, out: shared }), /already exists: use --append/);
  const junk = join(dir, 'junk.csv');
  writeFileSync(junk, [header(), [join(dir, 'notes.png'), ...pickRows('val', 1)[0]!.split(',').slice(1)].join(',')].join('\n') + '\n');
  await assert.rejects(buildIndex({ model: modelDir, images: junk, root: DATA, out: join(dir, 'junk') }), /nothing could be indexed/);
});

test('--workers lambda: embedding fans out to Lambda through the real SDK and worker handler; a failing worker is retried, then reported', async () => {
  const { startLocalLambda } = await import('./helpers/local-lambda.ts');
  const { handler } = await import('../index-builder/lambda-worker.ts');
  const { LambdaEmbedder } = await import('../index-builder/lambda-embedder.ts');
  const { LambdaClient } = await import('@aws-sdk/client-lambda');
  process.env.MEDCLIP_MODEL_DIR = modelDir;
  let flaky = 0;
  const local = await startLocalLambda({
    'medclip-embed': (e) => handler(e as never),
    // fails its first two invocations, then works
    'medclip-flaky': (e) => (++flaky <= 2 ? Promise.reject(new Error('cold start crashed')) : handler(e as never)),
    'medclip-broken': () => Promise.reject(new TypeError('always broken')),
  });
  const prevEndpoint = process.env.AWS_ENDPOINT_URL_LAMBDA;
  process.env.AWS_ENDPOINT_URL_LAMBDA = local.url;
  const client = () => new LambdaClient({ region: 'us-east-1', credentials: { accessKeyId: 'test', secretAccessKey: 'test' } });
  try {
    const small = join(dir, 'lambda.csv');
    writeFileSync(small, [header(), ...pickRows('val', 12)].join('\n') + '\n');
    // reference: the same corpus embedded in-process
    const local0 = join(dir, 'lambda-ref');
    rmSync(local0, { recursive: true, force: true });
    await buildIndex({ model: modelDir, images: small, root: DATA, out: local0 });
    const viaLambda = join(dir, 'lambda-ok');
    rmSync(viaLambda, { recursive: true, force: true });
    const s = await buildIndex({
      model: modelDir,
      images: small,
      root: DATA,
      out: viaLambda,
      batchSize: 4,
      inFlight: 3,
      embedder: new LambdaEmbedder('medclip-embed', { client: client() }),
    });
    assert.equal(s.images.indexed, 12);
    assert.equal(local.invocations.get('medclip-embed'), 3);
    const ref = await IndexBundle.load(local0, { model });
    const got = await IndexBundle.load(viaLambda, { model });
    const q = (await model.embedTexts(['pleural effusion']))[0]!;
    assert.deepEqual(
      got.search('images', q, { k: 12 }).map((h) => h.meta.id),
      ref.search('images', q, { k: 12 }).map((h) => h.meta.id),
    );

    const flakyOut = join(dir, 'lambda-flaky');
    rmSync(flakyOut, { recursive: true, force: true });
    const f = await buildIndex({
      model: modelDir,
      images: small,
      root: DATA,
      out: flakyOut,
      batchSize: 12,
      embedder: new LambdaEmbedder('medclip-flaky', { client: client(), retries: 3, backoffMs: 5 }),
    });
    assert.equal(f.images.indexed, 12, 'retried until the worker answered');
    assert.equal(local.invocations.get('medclip-flaky'), 3);

    const brokenOut = join(dir, 'lambda-broken');
    rmSync(brokenOut, { recursive: true, force: true });
    const mixed = join(dir, 'lambda-mixed.csv');
    writeFileSync(mixed, [header(), ...pickRows('val', 4)].join('\n') + '\n');
    await assert.rejects(
      buildIndex({
        model: modelDir,
        images: mixed,
        root: DATA,
        out: brokenOut,
        embedder: new LambdaEmbedder('medclip-broken', { client: client(), retries: 2, backoffMs: 5 }),
      }),
      /nothing could be indexed .*worker-failed: Unhandled: TypeError \(after 3 attempts\)/,
    );
    assert.equal(local.invocations.get('medclip-broken'), 3);
  } finally {
    if (prevEndpoint === undefined) delete process.env.AWS_ENDPOINT_URL_LAMBDA;
    else process.env.AWS_ENDPOINT_URL_LAMBDA = prevEndpoint;
    await local.close();
  }
});

test('--workers 2: worker threads embed the same vectors as the in-process embedder', async () => {
  const small = join(dir, 'threads.csv');
  writeFileSync(small, [header(), ...pickRows('val', 16)].join('\n') + '\n');
  const a = join(dir, 'threads-1');
  const b = join(dir, 'threads-2');
  for (const d of [a, b]) rmSync(d, { recursive: true, force: true });
  await buildIndex({ model: modelDir, images: small, root: DATA, out: a, batchSize: 4 });
  await buildIndex({ model: modelDir, images: small, root: DATA, out: b, batchSize: 4, workers: 2 });
  assert.equal(readFileSync(join(liveDir(a), 'images.meta.jsonl'), 'utf8'), readFileSync(join(liveDir(b), 'images.meta.jsonl'), 'utf8'));
  const read = (d: string) => {
    const h = new hnswlib.HierarchicalNSW('ip', 16);
    h.readIndexSync(join(liveDir(d), 'images.hnsw'));
    return Array.from({ length: 16 }, (_, i) => h.getPoint(i));
  };
  const va = read(a);
  read(b).forEach((v, i) => assert.ok(v.every((x, d) => Math.abs(x - va[i]![d]!) < 1e-5)));
});

test('report search returns k distinct reports whenever the index holds k, each with its best sentence', async () => {
  const index = await IndexBundle.load(shared, { model });
  const q = (await model.embedTexts(['no acute cardiopulmonary process']))[0]!;
  const all = index.reports.size;
  assert.ok(all > 100);
  const hits = index.searchReports(q, { k: all });
  assert.equal(hits.length, all, 'every report, although most sentences say the same');
  assert.equal(new Set(hits.map((h) => h.meta.reportId)).size, all);
  // each report's hit is its best sentence: no sentence of that report scores higher
  const sentences = index.search('reports', q, { k: index.count('reports') });
  const top = new Map<string, number>();
  for (const s of sentences) if (!top.has(s.meta.reportId)) top.set(s.meta.reportId, s.score);
  for (const h of hits.slice(0, 20)) assert.equal(h.score, top.get(h.meta.reportId));
  assert.ok(hits.every((h, i) => i === 0 || h.score <= hits[i - 1]!.score));
});

test('a selective filter is answered by an exact scan of the allowed vectors: the same hits as brute force', async () => {
  const index = await IndexBundle.load(shared, { model });
  const q = (await model.embedTexts(['small left pleural effusion']))[0]!;
  for (const [collection, filter] of [
    ['reports', { must: ['Pleural Effusion'] }],
    ['reports', { mustNot: ['No Finding'] }],
    ['images', { source: ['nih'] }],
  ] as const) {
    const brute = [...index.entries(collection)]
      .filter((e) => {
        const labels = e.meta.labels as Record<string, number>;
        if ('must' in filter) return filter.must.every((f) => labels[f] === 1);
        if ('mustNot' in filter) return filter.mustNot.every((f) => labels[f] !== 1);
        return (e.meta as { source?: string }).source === 'nih';
      })
      .map((e) => ({ id: e.meta.id, score: e.vector.reduce((s, x, d) => s + x * q[d]!, 0) }))
      .sort((a, b) => b.score - a.score)
      .slice(0, 10);
    const got = (index.search as (c: string, q: Float32Array, o: object) => { meta: { id: string }; score: number }[])(collection, q, {
      k: 10,
      filter,
    });
    assert.ok(brute.length > 0);
    assert.deepEqual(
      got.map((h) => h.meta.id),
      brute.map((b) => b.id),
      `${collection} ${JSON.stringify(filter)}`,
    );
    got.forEach((h, i) => assert.ok(Math.abs(h.score - brute[i]!.score) < 1e-5));
  }
});

test('a bundle in several HNSW shards answers as one: the same hits, filtered or not, and the same entries', async () => {
  const out = join(dir, 'sharded');
  rmSync(out, { recursive: true, force: true });
  await buildIndex({ model: modelDir, images: table, root: DATA, out, hnsw: { shardSize: 7 } });
  const sharded = await IndexBundle.load(out, { model });
  const single = await IndexBundle.load(shared, { model });
  assert.equal(sharded.manifest.collections.images!.shards.length, 5, '30 images in shards of 7');
  assert.equal(sharded.count('images'), single.count('images'));
  for (const text of ['right lower lobe pneumonia', 'normal chest']) {
    const [q] = await model.embedTexts([text]);
    for (const filter of [undefined, { mustNot: ['Pneumonia'] }, { must: ['No Finding'] }]) {
      const a = sharded.search('images', q!, { k: 12, filter });
      const b = single.search('images', q!, { k: 12, filter });
      assert.ok(a.length > 0, `${text} ${JSON.stringify(filter)}`);
      assert.deepEqual(
        a.map((h) => h.meta.id),
        b.map((h) => h.meta.id),
        `${text} ${JSON.stringify(filter)}`,
      );
    }
  }
  assert.deepEqual([...sharded.entries('images')].map((e) => e.meta.id).sort(), [...single.entries('images')].map((e) => e.meta.id).sort());
});

test('reports: --append adds reports (an id already there is not added twice), --delete removes a report everywhere', async () => {
  const { readReports } = await import('../core/tables/index.ts');
  const val: { id: string; findings: string; impression: string }[] = [];
  for await (const r of readReports(IU_REPORTS, { split: 'val' }))
    if (r.text.findings || r.text.impression) val.push({ id: r.id, findings: r.text.findings ?? '', impression: r.text.impression ?? '' });
  const jsonl = (rows: typeof val) => rows.map((r) => JSON.stringify(r)).join('\n') + '\n';
  const first = join(dir, 'reports-a.jsonl');
  const second = join(dir, 'reports-b.jsonl');
  writeFileSync(first, jsonl(val.slice(0, 20)));
  writeFileSync(second, jsonl(val.slice(15, 40)));
  const out = join(dir, 'reports-only');
  rmSync(out, { recursive: true, force: true });
  await buildIndex({ model: modelDir, reports: first, out, hnsw: { M: 8, efConstruction: 64 } });
  const v2 = await buildIndex({ model: modelDir, reports: second, out, append: true });
  assert.equal(v2.version, 2);
  let index = await IndexBundle.load(out, { model });
  const c = index.manifest.collections.reports!;
  assert.deepEqual([c.M, c.efConstruction, c.shards.length], [8, 64, 1], 'an append keeps the HNSW parameters the bundle was built with');
  assert.equal(index.reports.size, 40, '20 + 25, of which 5 were already there');
  const victim = val[3]!;
  assert.ok(index.hasTextIndex, 'the distinct-text index is rewritten with every version');
  const d = await deleteFromBundle(out, modelDir, [victim.id]);
  assert.equal(d.deleted, 1);
  index = await IndexBundle.load(out, { model });
  assert.equal(index.reports.size, 39);
  assert.equal(index.report(victim.id), undefined);
  const [q] = await model.embedTexts([victim.impression || victim.findings]);
  const { ReportSearch } = await import('../core/search/index.ts');
  const hits = new ReportSearch(index).search(q!, { k: 39 });
  assert.ok(hits.length > 0);
  for (const h of hits) {
    assert.notEqual(h.report.id, victim.id);
    assert.ok(!h.same.includes(victim.id), 'nor among the collapsed');
  }
  assert.ok(![...index.entries('reports')].some((e) => (e.meta as { reportId: string }).reportId === victim.id));
  assert.ok(index.hasTextIndex && index.textCount() > 0);
});
