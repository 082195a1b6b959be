import { test } from 'node:test';
import assert from 'node:assert/strict';
import { access, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { readFileSync } from 'node:fs';
import { parse } from 'csv-parse/sync';
import { readImageTable } from '../core/tables/index.ts';
import { OBSERVATIONS } from '../core/labeler/index.ts';
import { IMAGES_CSV, outputDir } from './helpers/paths.ts';

test('the shared image table: every val row points at a real file, with labels and metadata', async () => {
  const rows = [];
  for await (const r of readImageTable(IMAGES_CSV, { split: 'val' })) rows.push(r);
  // The expected count comes from the table itself (read here with a plain CSV parse), so new data does not break it.
  const table = parse(readFileSync(IMAGES_CSV), { columns: true }) as { split: string }[];
  const val = table.filter((r) => r.split === 'val').length;
  assert.ok(val > 0);
  assert.equal(rows.length, val);
  await Promise.all(rows.map((r) => access(r.file)));
  const pneumonia = OBSERVATIONS.indexOf('Pneumonia');
  assert.ok(rows.some((r) => r.meta.source === 'kermany' && r.labels[pneumonia] === 1));
  assert.ok(rows.every((r) => r.meta.split === 'val' && r.meta.patient_id));
  assert.ok(rows.some((r) => r.view === 'PA'));
});

test("CheXpert's own CSV loads: Path column, float labels, Frontal/Lateral; bad rows name the row", async () => {
  const dir = outputDir('image-table');
  const header = ['Path', 'Sex', 'Age', 'Frontal/Lateral', 'AP/PA', ...OBSERVATIONS].join(',');
  const row = (path: string, fl: string, appa: string, edema: string) =>
    [path, 'Female', '68', fl, appa, ...OBSERVATIONS.map((o) => (o === 'Edema' ? edema : o === 'No Finding' ? '' : '0.0'))].join(',');
  const file = join(dir, 'train.csv');
  await writeFile(
    file,
    [
      header,
      row('CheXpert-v1.0-small/train/patient1/study1/view1_frontal.jpg', 'Frontal', 'AP', '-1.0'),
      row('CheXpert-v1.0-small/train/patient1/study1/view2_lateral.jpg', 'Lateral', '', '1.0'),
    ].join('\n'),
  );
  const rows = [];
  for await (const r of readImageTable(file, { root: '/data' })) rows.push(r);
  assert.equal(rows[0]!.file, '/data/CheXpert-v1.0-small/train/patient1/study1/view1_frontal.jpg');
  assert.equal(rows[0]!.labels[OBSERVATIONS.indexOf('Edema')], -1);
  assert.equal(rows[0]!.labels[0], null);
  assert.equal(rows[0]!.view, 'AP');
  assert.equal(rows[1]!.view, 'LATERAL');
  assert.equal(rows[1]!.meta.Sex, 'Female');

  const bad = join(dir, 'bad.csv');
  await writeFile(bad, [header, row('a.jpg', 'Frontal', 'PA', 'maybe')].join('\n'));
  await assert.rejects(async () => {
    for await (const _ of readImageTable(bad)) void _;
  }, /bad\.csv, row 2: .*maybe/);
  const escaping = join(dir, 'escape.csv');
  await writeFile(escaping, [header, row('../../etc/passwd', 'Frontal', 'PA', '0')].join('\n'));
  await assert.rejects(async () => {
    for await (const _ of readImageTable(escaping)) void _;
  }, /leaves the root folder/);
});
