// The model card: AUC intervals by stratified bootstrap, a card measured on real val images (per source and pooled
// over the adult sources), written into a bundle and verified on load, and every answer saying which findings the
// model is validated for — with only those ranking image queries.
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { cpSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { aucInterval, rocAuc } from '../core/metrics/index.ts';
import { CARD_FILE, MedClipModel, writeModelCard, type ModelCard } from '../core/model/index.ts';
import { IndexBundle } from '../core/bundle/index.ts';
import { SearchService } from '../core/search/index.ts';
import { OBSERVATIONS } from '../core/labeler/index.ts';
import { adultSources, buildModelCard } from '../eval/model-card.ts';
import { DATA, IMAGES_CSV, outputDir, REPO } from './helpers/paths.ts';
import { tinyIndexBundle } from './helpers/tiny-model.ts';
import { medclip } from './helpers/cli.ts';

const dir = outputDir('model-card');
let modelDir: string;
let indexDir: string;
let rows: string[];
let card: ModelCard;

before(async () => {
  const lines = readFileSync(IMAGES_CSV, 'utf8').trim().split('\n');
  // val images of every source: NIH pneumonia/normal and NIH-14 (adults), Kermany (children, no ages)
  ({ modelDir, indexDir, rows } = await tinyIndexBundle(dir, {
    images: 0,
    rows: (all) => {
      const val = all.filter((l) => l.includes(',val,'));
      return [
        ...val.filter((l) => l.includes(',nih,')).slice(0, 30),
        ...val.filter((l) => l.includes(',nih14,')).slice(0, 30),
        ...val.filter((l) => l.includes(',kermany,')).slice(0, 10),
      ];
    },
  }));
  writeFileSync(join(dir, 'card-images.csv'), [lines[0], ...rows].join('\n') + '\n');
  const model = await MedClipModel.load(modelDir);
  card = await buildModelCard(model, { images: join(dir, 'card-images.csv'), root: DATA, resamples: 300 });
  await model.close();
});

test('AUC intervals: exact for perfect separation, seeded, around the AUC, none without both classes', () => {
  assert.deepEqual(aucInterval([1, 1, 0, 0], [0.9, 0.8, 0.2, 0.1]), { auc: 1, low: 1, high: 1, positives: 2, negatives: 2 });
  const labels = Array.from({ length: 80 }, (_, i) => (i % 3 === 0 ? 1 : 0));
  const scores = labels.map((l, i) => l * 0.3 + ((i * 7919) % 97) / 97);
  const a = aucInterval(labels, scores)!;
  assert.equal(a.auc, rocAuc(labels, scores));
  assert.ok(a.low < a.auc && a.auc < a.high && a.high - a.low < 0.5, JSON.stringify(a));
  assert.deepEqual(aucInterval(labels, scores), a, 'the same seed, the same interval');
  assert.equal(aucInterval([0, 0], [0.1, 0.2]), undefined);
});

test('a card measured on real val images: every finding, per source and pooled over the adult sources, validated by rule', () => {
  assert.deepEqual(card.evaluatedOn.pool, ['nih', 'nih14'], 'Kermany has no ages: not pooled as adults');
  assert.equal(card.evaluatedOn.pooled, 60);
  assert.deepEqual(Object.keys(card.findings), [...OBSERVATIONS]);
  for (const [name, f] of Object.entries(card.findings)) {
    assert.equal(f.validated, f.ci95 !== undefined && f.ci95[0] >= card.threshold, name);
    assert.deepEqual(Object.keys(f.bySource).sort(), ['kermany', 'nih', 'nih14'], name);
    if (f.auc !== undefined) assert.ok(f.ci95![0] <= f.auc && f.auc <= f.ci95![1], name);
  }
  // Pneumonia is labelled in both adult sources: its pooled counts are theirs added
  const p = card.findings.Pneumonia!;
  assert.equal(
    p.positives + p.negatives,
    p.bySource.nih!.positives + p.bySource.nih!.negatives + p.bySource.nih14!.positives + p.bySource.nih14!.negatives,
  );
  assert.match(card.rule, /lower end of the 95% bootstrap interval/);
});

test('a pooled source the table does not hold is refused, naming it', async () => {
  const model = await MedClipModel.load(modelDir);
  try {
    await assert.rejects(
      buildModelCard(model, { images: join(dir, 'card-images.csv'), root: DATA, pool: ['nih', 'nhi'], resamples: 10 }),
      /card pool: no image of source nhi in .* \(sources: kermany, nih, nih14\)/,
    );
  } finally {
    await model.close();
  }
});

test('a card is part of the bundle: listed with its sha256, verified on load; answers carry it, and only validated findings rank', async () => {
  const bundle = join(dir, 'model-with-card');
  rmSync(bundle, { recursive: true, force: true });
  cpSync(modelDir, bundle, { recursive: true });
  // a card that vouches for Pneumonia and No Finding only (the tiny random model earns none: the rule is tested above)
  const vouched: ModelCard = {
    ...card,
    findings: Object.fromEntries(
      Object.entries(card.findings).map(([n, f]) => [n, { ...f, validated: n === 'Pneumonia' || n === 'No Finding', auc: 0.9 }]),
    ),
  };
  await writeModelCard(bundle, vouched);
  const manifest = JSON.parse(readFileSync(join(bundle, 'manifest.json'), 'utf8')) as { card: string; sha256: Record<string, string> };
  assert.equal(manifest.card, CARD_FILE);
  assert.match(manifest.sha256[CARD_FILE]!, /^[0-9a-f]{64}$/);
  const model = await MedClipModel.load(bundle);
  try {
    assert.deepEqual(model.validity('Pneumonia'), { validated: true, auc: 0.9 });
    assert.deepEqual(model.validity('Pneumothorax'), { validated: false, auc: 0.9 });
    // the index was built with the model before its card: rebuild it against this identity for the service
    const index = await IndexBundle.load(indexDir).catch(() => undefined);
    assert.ok(index, 'the bundle itself loads without a model check');
    const service = await SearchService.create(model, index!);
    const png = readFileSync(join(DATA, rows[0]!.split(',')[0]!));
    const findings = await service.classify(png, { mode: 'findings' });
    for (const c of findings.classes) assert.equal(c.validated, c.name === 'Pneumonia' || c.name === 'No Finding', c.name);
    const exclusive = await service.classify(png, {
      mode: 'exclusive',
      classes: ['Pneumonia', { name: 'Clear', prompts: ['the lungs are clear'] }],
    });
    assert.deepEqual(
      exclusive.classes.map((c) => [c.name, c.validated]).sort(),
      [
        ['Clear', false],
        ['Pneumonia', true],
      ],
      'a custom class is never validated',
    );
    for (const target of ['images', 'reports'] as const) {
      const r = await service.searchImage(png, { target, k: 10 });
      assert.ok(
        r.query.findings.every((f) => typeof f.validated === 'boolean'),
        'each finding of an X-ray says whether it is validated',
      );
      const ranking = new Set(r.query.findings.filter((f) => f.validated).map((f) => f.name));
      for (const h of r.hits) for (const m of h.matched) assert.ok(ranking.has(m as never), `${target}: ${m} matched but not validated`);
    }
  } finally {
    await model.close();
  }
  // a card changed after the fact is refused, naming the file
  writeFileSync(join(bundle, CARD_FILE), readFileSync(join(bundle, CARD_FILE), 'utf8').replace('"validated": false', '"validated": true'));
  await assert.rejects(MedClipModel.load(bundle), /card\.json does not match its sha256/);
});

test('the shipped model has a card; medclip classify says which findings are validated', async () => {
  const shipped = JSON.parse(readFileSync(join(REPO, 'models/medclip-tiny', CARD_FILE), 'utf8')) as ModelCard;
  assert.ok(shipped.evaluatedOn.pooled > 100);
  const r = await medclip('classify', '--image', join(REPO, 'samples/corpus/images/nih/00005567_002.png'), '--mode', 'findings', '--json');
  assert.equal(r.code, 0, r.stderr);
  const out = JSON.parse(r.stdout) as { classes: { name: string; validated: boolean; auc?: number }[] };
  for (const c of out.classes) assert.equal(c.validated, shipped.findings[c.name]!.validated, c.name);
  assert.deepEqual(adultSources([]), []);
});
