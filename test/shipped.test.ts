// The shipped default model and sample index: they load, verify, and do the job on real X-rays and reports.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { IndexBundle } from '../core/bundle/index.ts';
import { MedClipModel, resolveClasses } from '../core/model/index.ts';
import { readImageTable } from '../core/tables/index.ts';
import { REPO } from './helpers/paths.ts';

const MODEL = join(REPO, 'models/medclip-tiny');
const INDEX = join(REPO, 'indexes/sample');
const CORPUS = join(REPO, 'samples/corpus');

test('models/medclip-tiny: manifest records data, config, steps and validation metrics; size <= 30 MB', async () => {
  const m = JSON.parse(readFileSync(join(MODEL, 'manifest.json'), 'utf8'));
  assert.equal(m.format, 'medclip-model/1');
  assert.ok(m.trainedOn.steps > 0 && m.trainedOn.architecture.name === 'tiny');
  assert.ok(m.metrics.validation.bySource.nih.accuracy > 0);
  const size = ['image_encoder.onnx', 'text_encoder.onnx', 'tokenizer.json'].reduce((s, f) => s + readFileSync(join(MODEL, f)).length, 0);
  assert.ok(size <= 30 * 1024 * 1024, `${size} bytes`);
});

test('shipped model: zero-shot Pneumonia vs No Finding on the sample corpus (real val images) beats chance by far', async () => {
  const model = await MedClipModel.load(MODEL, { threads: 2 });
  const classes = resolveClasses(['No Finding', 'Pneumonia'], 10, 0);
  const correct: Record<string, number[]> = { nih: [0, 0], kermany: [0, 0] };
  for await (const r of readImageTable(join(CORPUS, 'images.csv'))) {
    const truth = r.labels[0] === 1 ? 'No Finding' : r.labels[7] === 1 ? 'Pneumonia' : undefined;
    if (!truth) continue;
    const [e] = await model.embedImages([readFileSync(r.file)]);
    const probs = await model.classify(e!, classes);
    const best = probs[0]!.probability >= probs[1]!.probability ? probs[0]!.name : probs[1]!.name;
    const c = correct[r.meta.source!]!;
    c[0]! += best === truth ? 1 : 0;
    c[1]!++;
  }
  const nih = correct.nih![0]! / correct.nih![1]!;
  const kermany = correct.kermany![0]! / correct.kermany![1]!;
  assert.ok(nih >= 0.7, `NIH accuracy ${nih.toFixed(3)}`);
  assert.ok(kermany >= 0.85, `Kermany accuracy ${kermany.toFixed(3)}`);
  await model.close();
});

test('indexes/sample: loads with the shipped model; a pneumonia query ranks pneumonia X-rays and report sentences first', async () => {
  const model = await MedClipModel.load(MODEL);
  const index = await IndexBundle.load(INDEX, { model });
  assert.equal(index.count('images'), 200);
  const thumb = index.thumbnailFile(index.search('images', (await model.embedTexts(['normal chest']))[0]!, { k: 1 })[0]!.meta.id)!;
  assert.deepEqual([...readFileSync(thumb).subarray(0, 3)], [0xff, 0xd8, 0xff], 'the preview is a JPEG on disk');
  const [q] = await model.embedTexts(['right lower lobe pneumonia']);
  const hits = index.search('images', q!, { k: 20 });
  const rate = hits.filter((h) => h.meta.labels.Pneumonia === 1).length / hits.length;
  const base =
    readFileSync(join(CORPUS, 'images.csv'), 'utf8')
      .trim()
      .split('\n')
      .slice(1)
      .filter((l) => l.split(',')[12] === '1').length / 200;
  assert.ok(rate > base + 0.2, `pneumonia in top 20: ${rate} vs base rate ${base}`);
  const [e] = await model.embedTexts(['Large right pleural effusion.']);
  const sentences = index.search('reports', e!, { k: 10 });
  const effusion = sentences.filter((h) => h.meta.labels['Pleural Effusion'] === 1).length / 10;
  const metas = readFileSync(join(index.dir, 'reports.meta.jsonl'), 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as { labels: Record<string, number> });
  const sentenceBase = metas.filter((m) => m.labels['Pleural Effusion'] === 1).length / metas.length;
  assert.ok(effusion >= 5 * sentenceBase, `effusion sentences in top 10: ${effusion} vs base rate ${sentenceBase.toFixed(3)}`);
  await model.close();
});

test('the API reference examples were recorded from the shipped bundles and still match them', async () => {
  const { EXAMPLES } = await import('../api/examples.ts');
  const model = await MedClipModel.load(MODEL);
  const index = await IndexBundle.load(INDEX, { model });
  assert.equal(EXAMPLES.health.model.sha256, model.manifestSha256);
  assert.deepEqual(EXAMPLES.health.index, {
    version: index.manifest.version,
    images: index.count('images'),
    reports: index.reports.size,
    sentences: index.count('reports'),
  });
  const report = index.report(EXAMPLES.textSearch.hits[0]!.id)!;
  assert.ok(Object.values(report.text).join(' ').includes(EXAMPLES.textSearch.hits[0]!.sentence.text));
  for (const h of EXAMPLES.imageSearch.hits) assert.ok(index.image(h.id), h.id);
  // facets: shortened to the most frequent findings and the rarest one the page must still offer
  const facets = index.facets();
  assert.deepEqual({ ...EXAMPLES.facets, findings: [] }, { ...facets, findings: [] });
  for (const f of EXAMPLES.facets.findings)
    assert.deepEqual(
      facets.findings.find((x) => x.name === f.name),
      f,
    );
  await model.close();
});
