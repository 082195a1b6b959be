// Evaluation metrics by hand, and `medclip export` / `medclip eval` end to end through the CLI.
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { classificationReport, rocAuc } from '../core/metrics/index.ts';
import { medclip } from './helpers/cli.ts';
import { DATA, IMAGES_CSV, IU_REPORTS, outputDir } from './helpers/paths.ts';
import { writeTinyRun } from './helpers/tiny-run.ts';

const dir = outputDir('eval');

test('rocAuc: the probability a positive outranks a negative, ties counted half', () => {
  assert.equal(rocAuc([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8]), 0.75);
  assert.equal(rocAuc([0, 1], [0.5, 0.5]), 0.5);
  assert.equal(rocAuc([1, 1, 0], [0.9, 0.8, 0.1]), 1);
  assert.ok(Number.isNaN(rocAuc([1, 1], [0.2, 0.3])));
});

test('classificationReport: accuracy, per-class recall and confusion matrix', () => {
  const r = classificationReport(
    ['A', 'B'],
    [0, 0, 1, 1, 1],
    [
      [0.9, 0.1],
      [0.4, 0.6],
      [0.2, 0.8],
      [0.3, 0.7],
      [0.6, 0.4],
    ],
  );
  assert.equal(r.n, 5);
  assert.equal(r.accuracy, 3 / 5);
  assert.deepEqual(r.confusion, [
    [1, 1],
    [1, 2],
  ]);
  assert.deepEqual(r.recall, { A: 0.5, B: 2 / 3 });
  assert.equal(r.auc, rocAuc([0, 0, 1, 1, 1], [0.1, 0.6, 0.8, 0.7, 0.4]));
});

let table: string;
before(async () => {
  await writeTinyRun(join(dir, 'run'));
  const lines = readFileSync(IMAGES_CSV, 'utf8').trim().split('\n');
  // half normal (No Finding is column 5), half not, per source
  const pick = (source: string, n: number) =>
    [true, false].flatMap((normal) =>
      lines.filter((l) => l.includes(`,${source},`) && l.includes(',val,') && (l.split(',')[5] === '1') === normal).slice(0, n / 2),
    );
  table = join(dir, 'val.csv');
  // 10 NIH + 10 Kermany val images, and one row whose file is not an image: it must be skipped, not fatal.
  writeFileSync(
    table,
    [
      lines[0],
      ...pick('nih', 10),
      ...pick('kermany', 10),
      lines[1]!.replace(/^[^,]+/, 'reports/iu_reports.csv').replace(',train,', ',val,'),
    ].join('\n') + '\n',
  );
});

test('medclip export writes a bundle and reports parity; medclip eval --json reports per-source metrics', async () => {
  const bundle = join(dir, 'bundle');
  const ex = await medclip('export', '--run', join(dir, 'run'), '--out', bundle, '--backend', 'wasm');
  assert.equal(ex.code, 0, ex.stderr);
  assert.match(ex.stdout, /parity max \|tfjs - onnx\| image \d\.\de-?\d+ \(8 images\), text \d\.\de-?\d+ \(\d+ sentences\)/);
  // export can write the model card in the same run
  const carded = join(dir, 'bundle-card');
  const withCard = await medclip(
    'export',
    '--run',
    join(dir, 'run'),
    '--out',
    carded,
    '--backend',
    'wasm',
    '--card-images',
    table,
    '--card-root',
    DATA,
  );
  assert.equal(withCard.code, 0, withCard.stderr);
  assert.match(withCard.stdout, /model card of .*: pooled over nih/);
  const manifest = JSON.parse(readFileSync(join(carded, 'manifest.json'), 'utf8')) as { card?: string };
  assert.equal(manifest.card, 'card.json');
  const ev = await medclip(
    'eval',
    '--model',
    bundle,
    '--images',
    table,
    '--root',
    DATA,
    '--group-by',
    'source',
    '--task',
    'all',
    '--reports',
    IU_REPORTS,
    '--report-split',
    'val',
    '--json',
  );
  assert.equal(ev.code, 0, ev.stderr);
  const out = JSON.parse(ev.stdout) as {
    zeroshot: Record<string, { accuracy: number; auc: number; n: number }>;
    retrieval: Record<string, { p1: number; p5: number; p10: number }>;
    skipped: { id: string; reason: string }[];
  };
  assert.deepEqual(Object.keys(out.zeroshot).sort(), ['kermany', 'nih']);
  for (const g of ['nih', 'kermany']) {
    // 10 images per source, 5 labelled No Finding and 5 Pneumonia: n and accuracy are counts over exactly those
    const z = out.zeroshot[g]!;
    assert.equal(z.n, 10);
    assert.ok(Number.isInteger(Math.round(z.accuracy * 10 * 1e6) / 1e6), `accuracy ${z.accuracy} is k/10`);
    assert.ok(z.accuracy >= 0 && z.accuracy <= 1 && z.auc >= 0 && z.auc <= 1);
    // precision@k over 10 retrieved sentences is a multiple of 1/10 per query, averaged
    assert.ok(out.retrieval[g]!.p10 >= 0 && out.retrieval[g]!.p10 <= 1 && out.retrieval[g]!.p1 >= 0);
  }
  assert.equal(out.skipped.length, 1);
  assert.equal(out.skipped[0]!.id, 'reports/iu_reports.csv');
  const text = await medclip('eval', '--model', bundle, '--images', table, '--root', DATA);
  assert.match(text.stdout, /zero-shot pneumonia \[all\] n=20: accuracy/);
  assert.match(text.stdout, /skipped 1 unreadable image/);
});

test('CLI errors: bad options and missing inputs give a message and exit code 1', async () => {
  const badLoss = await medclip('train', '--config', 'configs/tiny.json', '--images', table, '--out', join(dir, 'x'), '--loss', 'mse');
  assert.equal(badLoss.code, 1);
  assert.match(badLoss.stderr, /--loss must be semantic or infonce/);
  const noConfig = await medclip('train', '--config', 'configs/missing.json', '--images', table, '--out', join(dir, 'x'));
  assert.equal(noConfig.code, 1);
  assert.match(noConfig.stderr, /configs\/missing\.json: not found/);
  const noRun = await medclip('export', '--run', join(dir, 'no-run'), '--out', join(dir, 'y'));
  assert.equal(noRun.code, 1);
  assert.match(noRun.stderr, /no best checkpoint/);
  const noModel = await medclip('eval', '--model', join(dir, 'no-model'), '--images', table);
  assert.equal(noModel.code, 1);
  assert.match(noModel.stderr, /no manifest\.json/);
});
