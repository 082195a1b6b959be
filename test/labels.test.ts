import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import {
  hasLabelColumns,
  labelMask,
  labelRowFromRecord,
  labelRowToObject,
  labelVector,
  LabelParseError,
  OBSERVATIONS,
  parseLabelValue,
  positiveFindings,
} from '../core/labeler/index.ts';
import { readTable } from '../core/tables/index.ts';
import { IMAGES_CSV, IU_REPORTS } from './helpers/paths.ts';

test('the 14 observations are in the order of the shared image table header', async () => {
  const header = (await readFile(IMAGES_CSV, 'utf8')).split('\n')[0]!.split(',');
  const start = header.indexOf('No Finding');
  assert.deepEqual(header.slice(start, start + 14), [...OBSERVATIONS]);
});

test('label cells: 1 / 0 / -1 / empty and CheXpert float spellings; anything else is an error', () => {
  assert.equal(parseLabelValue('1'), 1);
  assert.equal(parseLabelValue(' 0 '), 0);
  assert.equal(parseLabelValue('-1'), -1);
  assert.equal(parseLabelValue(''), null);
  assert.equal(parseLabelValue('1.0'), 1);
  assert.equal(parseLabelValue('-1.0'), -1);
  assert.equal(parseLabelValue('0.0'), 0);
  assert.equal(parseLabelValue(undefined), null);
  assert.equal(parseLabelValue(Number.NaN), null);
  assert.throws(
    () => parseLabelValue('yes', 'Edema'),
    (e: unknown) => e instanceof LabelParseError && e.column === 'Edema',
  );
  assert.throws(() => parseLabelValue('2'), LabelParseError);
  assert.throws(() => parseLabelValue(0.5), LabelParseError);
});

test('uncertain policy: zero (MedCLIP), one, or ignored via the mask', () => {
  const row = labelRowFromRecord({ 'No Finding': '', Edema: '-1', Cardiomegaly: '1', Atelectasis: '0' });
  const edema = OBSERVATIONS.indexOf('Edema');
  const cardio = OBSERVATIONS.indexOf('Cardiomegaly');
  assert.equal(labelVector(row, 'zero')[edema], 0);
  assert.equal(labelVector(row, 'one')[edema], 1);
  assert.equal(labelVector(row)[cardio], 1);
  assert.equal(labelMask(row, 'ignore')[edema], 0);
  assert.equal(labelMask(row, 'zero')[edema], 1);
  assert.equal(labelMask(row)[0], 0, 'unknown is masked');
  assert.deepEqual(positiveFindings(row), ['Cardiomegaly']);
  assert.deepEqual(labelRowToObject(row), { Cardiomegaly: 1, Edema: -1, Atelectasis: 0 });
});

test('every row of the shared image table and IU report table parses', async () => {
  for (const file of [IMAGES_CSV, IU_REPORTS]) {
    let rows = 0;
    let positives = 0;
    for await (const { record } of readTable(file)) {
      if (rows === 0) assert.ok(hasLabelColumns(Object.keys(record)));
      const row = labelRowFromRecord(record);
      assert.equal(row.length, 14);
      positives += row.filter((v) => v === 1).length;
      rows++;
    }
    assert.ok(rows > 3000, `${file}: ${rows} rows`);
    assert.ok(positives > rows / 2);
  }
});
