// Findings mode: multi-label zero-shot (positive vs negative prompts per observation), its temperature fit, the
// findings loss and sampler used to train it, `POST /v1/classify` with mode, `medclip classify` and
// `medclip eval --task findings`.
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { FINDING_PROMPTS, findingProbability, fitFindingsTemperature, resolveFindingNames, MedClipModel } from '../core/model/index.ts';
import { OBSERVATIONS, NUM_OBSERVATIONS } from '../core/labeler/index.ts';
import { IndexBundle } from '../core/bundle/index.ts';
import { Rng } from '../core/util/index.ts';
import { createApp, createServices } from '../api/app.ts';
import { selectBackend } from '../train/backend.ts';
import { findingsLoss } from '../train/loss.ts';
import type { ImageSet } from '../train/data.ts';
import { DecoupledSampler } from '../train/sampler.ts';
import { DATA, IMAGES_CSV, outputDir } from './helpers/paths.ts';
import { tinyIndexBundle } from './helpers/tiny-model.ts';
import { medclip } from './helpers/cli.ts';

const dir = outputDir('findings');
let modelDir: string;
let model: MedClipModel;
let app: ReturnType<typeof createApp>;
let png: Buffer;

before(async () => {
  await selectBackend('wasm');
  const built = await tinyIndexBundle(dir, { images: 6 });
  modelDir = built.modelDir;
  model = await MedClipModel.load(modelDir);
  app = createApp(await createServices(model, await IndexBundle.load(built.indexDir, { model })), { auth: { mode: 'off' } });
  png = readFileSync(join(DATA, built.rows[0]!.split(',')[0]!));
});

test('every observation has positive and negative prompts; names resolve case-insensitively', () => {
  for (const o of OBSERVATIONS) assert.ok(FINDING_PROMPTS[o].positive.length >= 3 && FINDING_PROMPTS[o].negative.length >= 3, o);
  assert.deepEqual(resolveFindingNames(['pleural effusion', 'PNEUMOTHORAX']), ['Pleural Effusion', 'Pneumothorax']);
  assert.equal(resolveFindingNames(undefined).length, 14);
  assert.throws(() => resolveFindingNames(['Pneumonitis']), /unknown finding "Pneumonitis"/);
  assert.throws(() => resolveFindingNames(['edema', 'Edema']), /listed twice/);
});

test('the fitted temperature recovers the one that generated the labels', () => {
  const rng = new Rng(7);
  for (const trueT of [0.5, 2, 6]) {
    const cases = Array.from({ length: 4000 }, () => {
      const margin = (rng.next() - 0.5) * 0.6;
      return { margin, present: rng.next() < findingProbability(margin, 14, trueT) };
    });
    const fit = fitFindingsTemperature(cases, 14);
    assert.ok(Math.abs(Math.log(fit.temperature / trueT)) < 0.15, `true ${trueT}, fitted ${fit.temperature}`);
  }
});

test('findings loss equals binary cross-entropy of scale * img.(pos - neg) computed by hand, masked by known labels', () => {
  const img = tf.tensor2d([
    [0.6, 0.8],
    [1, 0],
  ]);
  const pos = tf.tensor2d([
    [1, 0],
    [0, 1],
  ]);
  const neg = tf.tensor2d([
    [0, 1],
    [1, 0],
  ]);
  const labels = tf.tensor2d([
    [1, 0],
    [0, 1],
  ]);
  const known = tf.tensor2d([
    [1, 1],
    [1, 0],
  ]);
  const got = findingsLoss(img, pos, neg, 3, labels, known).dataSync()[0]!;
  const bce = (x: number, y: number) => -(y * Math.log(1 / (1 + Math.exp(-x))) + (1 - y) * Math.log(1 - 1 / (1 + Math.exp(-x))));
  // logits: row0: 3*(0.6-0.8) = -0.6, 3*(0.8-0.6) = 0.6; row1: 3*(1-0) = 3, 3*(0-1) = -3 (masked)
  const want = (bce(-0.6, 1) + bce(0.6, 0) + bce(3, 0)) / 3;
  assert.ok(Math.abs(got - want) < 1e-5, `${got} vs ${want}`);
});

test('the finding-balanced sampler brings a rare finding into most batches', () => {
  // 1,000 images: 990 Pneumonia, 10 Pneumothorax
  const n = 1000;
  const labels = new Float32Array(n * NUM_OBSERVATIONS);
  const pneu = OBSERVATIONS.indexOf('Pneumonia');
  const ptx = OBSERVATIONS.indexOf('Pneumothorax');
  for (let i = 0; i < n; i++) labels[i * NUM_OBSERVATIONS + (i < 10 ? ptx : pneu)] = 1;
  const images: ImageSet = {
    ids: Array.from({ length: n }, (_, i) => `i${i}`),
    side: 1,
    pixels: new Uint8Array(n),
    labels,
    known: new Float32Array(n * NUM_OBSERVATIONS).fill(1),
    sources: new Array(n).fill('a'),
    reportIds: new Array(n).fill(undefined),
    skipped: [],
  };
  const sentences = {
    texts: ['pneumonia'],
    labels: new Float32Array(NUM_OBSERVATIONS),
    origin: ['report' as const],
    byReport: new Map(),
    reportLabels: new Map(),
  };
  const share = (balanceFindings: boolean) => {
    const s = new DecoupledSampler(images, sentences, { matchRate: 0, balanceSources: true, balanceFindings });
    const rng = new Rng(3);
    let withRare = 0;
    for (let b = 0; b < 200; b++) if (s.sample(16, rng).images.some((i) => i < 10)) withRare++;
    return withRare / 200;
  };
  assert.ok(share(false) < 0.3, `uniform: ${share(false)}`);
  assert.ok(share(true) > 0.9, `balanced: ${share(true)}`);
});

test('POST /v1/classify mode=findings: independent probabilities for all 14 (or the named) observations, in three body forms', async () => {
  const raw = await app.request('/v1/classify?mode=findings', { method: 'POST', headers: { 'content-type': 'image/png' }, body: png });
  assert.equal(raw.status, 200);
  const body = (await raw.json()) as { mode: string; classes: { name: string; probability: number }[] };
  assert.equal(body.mode, 'findings');
  assert.deepEqual(
    body.classes.map((c) => c.name),
    [...OBSERVATIONS],
  );
  assert.ok(body.classes.every((c) => c.probability > 0 && c.probability < 1));
  const json = await app.request('/v1/classify', {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ image: png.toString('base64'), mode: 'findings', classes: ['pleural effusion', 'Pneumothorax'] }),
  });
  const jb = (await json.json()) as { classes: { name: string; probability: number }[] };
  assert.deepEqual(
    jb.classes.map((c) => c.name),
    ['Pleural Effusion', 'Pneumothorax'],
  );
  // the same image and finding give the same probability whatever else is asked: each is independent
  assert.equal(jb.classes[0]!.probability, body.classes.find((c) => c.name === 'Pleural Effusion')!.probability);
  const form = new FormData();
  form.append('image', new Blob([new Uint8Array(png)], { type: 'image/png' }), 'x.png');
  form.append('mode', 'findings');
  const f = await app.request('/v1/classify', { method: 'POST', body: form });
  assert.equal(((await f.json()) as { classes: unknown[] }).classes.length, 14);
  const excl = (await (
    await app.request('/v1/classify', { method: 'POST', headers: { 'content-type': 'image/png' }, body: png })
  ).json()) as { mode: string; classes: { probability: number }[] };
  assert.equal(excl.mode, 'exclusive');
  assert.ok(Math.abs(excl.classes.reduce((s, c) => s + c.probability, 0) - 1) < 1e-6, 'exclusive mode sums to 1');
  for (const [what, b] of [
    ['bad mode', { mode: 'multi' }],
    ['an unknown finding', { mode: 'findings', classes: ['Pneumonitis'] }],
    ['a custom class in findings mode', { mode: 'findings', classes: [{ name: 'x', prompts: ['y'] }] }],
  ] as const) {
    const r = await app.request('/v1/classify', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ image: png.toString('base64'), ...b }),
    });
    assert.equal(r.status, 400, what);
  }
});

test('image queries report findings from findings mode, never No Finding together with a positive finding', async () => {
  const lines = readFileSync(IMAGES_CSV, 'utf8')
    .trim()
    .split('\n')
    .filter((l) => l.includes(',val,'))
    .slice(0, 12);
  for (const l of lines) {
    const r = await app.request('/v1/search/image?target=images&k=1', {
      method: 'POST',
      headers: { 'content-type': 'image/png' },
      body: readFileSync(join(DATA, l.split(',')[0]!)),
    });
    const findings = ((await r.json()) as { query: { findings: { name: string }[] } }).query.findings.map((f) => f.name);
    assert.ok(findings.length >= 1);
    assert.ok(!(findings.includes('No Finding') && findings.length > 1), `contradictory: ${findings}`);
  }
});

test('medclip classify --mode findings --json, and eval --task findings --json with per-finding AUC and P@10', async () => {
  const c = await medclip(
    'classify',
    '--model',
    modelDir,
    '--image',
    join(DATA, readFileSync(IMAGES_CSV, 'utf8').split('\n')[1]!.split(',')[0]!),
    '--mode',
    'findings',
    '--json',
  );
  assert.equal(c.code, 0, c.stderr);
  assert.equal((JSON.parse(c.stdout) as { classes: unknown[] }).classes.length, 14);
  const missing = await medclip('classify', '--model', modelDir, '--image', join(dir, 'nope.png'));
  assert.equal(missing.code, 1);
  assert.match(missing.stderr.trim(), /^medclip: .*nope\.png: file not found$/);
  // a small table: nih14 val rows (many findings) + a few kermany
  const lines = readFileSync(IMAGES_CSV, 'utf8').trim().split('\n');
  const rows = [
    ...lines.filter((l) => l.includes(',nih14,') && l.includes(',val,')),
    ...lines.filter((l) => l.includes(',kermany,') && l.includes(',val,')).slice(0, 10),
  ];
  const table = join(dir, 'eval.csv');
  writeFileSync(table, [lines[0], ...rows].join('\n') + '\n');
  const e = await medclip(
    'eval',
    '--model',
    modelDir,
    '--images',
    table,
    '--root',
    DATA,
    '--task',
    'findings',
    '--group-by',
    'source',
    '--json',
  );
  assert.equal(e.code, 0, e.stderr);
  const out = JSON.parse(e.stdout) as {
    findings: Record<
      string,
      {
        n: number;
        meanAuc?: number;
        meanOver: string[];
        findings: Record<string, { auc?: number; positives: number; negatives: number }>;
        textToImage: Record<string, number>;
      }
    >;
  };
  const nih14 = out.findings.nih14!;
  assert.equal(nih14.n, rows.length - 10);
  for (const name of nih14.meanOver) assert.ok(nih14.findings[name]!.positives >= 9 && nih14.findings[name]!.negatives >= 9);
  assert.ok(nih14.meanOver.length >= 3 && nih14.meanAuc! > 0 && nih14.meanAuc! < 1);
  const mean = nih14.meanOver.reduce((s, n) => s + nih14.findings[n]!.auc!, 0) / nih14.meanOver.length;
  assert.ok(Math.abs(mean - nih14.meanAuc!) < 1e-9);
  for (const [name, p] of Object.entries(nih14.textToImage)) assert.ok(nih14.findings[name]!.positives >= 5 && p >= 0 && p <= 1);
});
