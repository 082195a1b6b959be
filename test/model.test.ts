// Export to ONNX and the model runtime: parity with tfjs on real images and sentences, bundle checks.
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync, cpSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { selectBackend } from '../train/backend.ts';
import { exportRun } from '../train/export.ts';
import { MedClipModel, ModelError, dot, resolveClasses } from '../core/model/index.ts';
import { outputDir } from './helpers/paths.ts';
import { realImages, writeTinyRun } from './helpers/tiny-run.ts';

const dir = outputDir('model');
const run = join(dir, 'run');
const bundle = join(dir, 'bundle');
let sentences: string[] = [];
let images: Uint8Array[] = [];

before(async () => {
  await selectBackend('wasm');
  sentences = (await writeTinyRun(run)).sentences;
  images = await realImages(8);
});

test('export: ONNX encoders agree with tfjs within 1e-4 on real X-rays and report sentences', async () => {
  const r = await exportRun({ run, out: bundle, parityImages: images, paritySentences: sentences.slice(0, 40) });
  assert.ok(r.parity.image <= 1e-4, `image parity ${r.parity.image}`);
  assert.ok(r.parity.text <= 1e-4, `text parity ${r.parity.text}`);
  const manifest = JSON.parse(readFileSync(join(bundle, 'manifest.json'), 'utf8'));
  assert.equal(manifest.format, 'medclip-model/1');
  assert.equal(manifest.labels.length, 14);
  assert.deepEqual(Object.keys(manifest.sha256).sort(), ['image_encoder.onnx', 'text_encoder.onnx', 'tokenizer.json']);
});

test('core/model: embeddings are unit vectors; zero-shot probabilities sum to 1; class prompts embedded once', async () => {
  const model = await MedClipModel.load(bundle);
  try {
    const embeds = await model.embedImages(images.slice(0, 3));
    for (const e of embeds) assert.ok(Math.abs(Math.sqrt(dot(e, e)) - 1) < 1e-5);
    const texts = await model.embedTexts(sentences.slice(0, 70), 32);
    assert.equal(texts.length, 70);
    // batching does not change results
    const single = await model.embedTexts([sentences[45]!]);
    assert.ok(single[0]!.every((v, i) => Math.abs(v - texts[45]![i]!) < 1e-5));
    const classes = resolveClasses(['No Finding', 'Pneumonia', 'Cardiomegaly'], 5);
    const probs = await model.classify(embeds[0]!, classes);
    assert.deepEqual(
      probs.map((p) => p.name),
      ['No Finding', 'Pneumonia', 'Cardiomegaly'],
    );
    assert.ok(Math.abs(probs.reduce((s, p) => s + p.probability, 0) - 1) < 1e-6);
    const first = await model.classEmbeddings(classes);
    assert.equal((await model.classEmbeddings(classes))[0], first[0], 'class embeddings are cached');
  } finally {
    await model.close();
  }
});

test('core/model refuses a corrupted file, a wrong format, and a manifest pointing outside the bundle', async () => {
  const bad = join(dir, 'bad');
  const reset = () => {
    rmSync(bad, { recursive: true, force: true });
    cpSync(bundle, bad, { recursive: true });
  };
  reset();
  const onnx = readFileSync(join(bad, 'text_encoder.onnx'));
  onnx[onnx.length - 10]! ^= 0xff;
  writeFileSync(join(bad, 'text_encoder.onnx'), onnx);
  await assert.rejects(
    MedClipModel.load(bad),
    (e: unknown) => e instanceof ModelError && /text_encoder\.onnx does not match its sha256/.test(e.message),
  );

  reset();
  const m = JSON.parse(readFileSync(join(bad, 'manifest.json'), 'utf8'));
  writeFileSync(join(bad, 'manifest.json'), JSON.stringify({ ...m, format: 'medclip-model/9' }));
  await assert.rejects(MedClipModel.load(bad), /unsupported model format "medclip-model\/9"/);

  writeFileSync(join(bad, 'manifest.json'), JSON.stringify({ ...m, image: { ...m.image, file: '../../secret.onnx' } }));
  await assert.rejects(MedClipModel.load(bad), /outside the bundle/);

  await assert.rejects(MedClipModel.load(join(dir, 'nothing-here')), /no manifest\.json/);
});

test('core/model: a bundle made elsewhere to the contract (no optional fields, mean/std as one-element arrays) loads', async () => {
  const other = join(dir, 'other');
  rmSync(other, { recursive: true, force: true });
  cpSync(bundle, other, { recursive: true });
  const m = JSON.parse(readFileSync(join(other, 'manifest.json'), 'utf8'));
  delete m.trainedOn;
  delete m.metrics;
  // MedCLIP-style manifests may hold mean/std as one-element arrays
  m.image.mean = [m.image.mean];
  m.image.std = [m.image.std];
  writeFileSync(join(other, 'manifest.json'), JSON.stringify(m));
  const model = await MedClipModel.load(other);
  assert.equal((await model.embedImages(images.slice(0, 1)))[0]!.length, m.embedDim);
  await model.close();
});
