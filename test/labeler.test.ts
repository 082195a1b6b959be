import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  labelReport,
  labelSentence,
  splitClauses,
  splitSentences,
  evaluateLabels,
  extractModifiers,
  agreementOfModifiers,
  OBSERVATIONS,
  type LabelRow,
  type Observation,
} from '../core/labeler/index.ts';
import { readReports } from '../core/tables/index.ts';
import { IU_REPORTS } from './helpers/paths.ts';

const at = (row: LabelRow, name: Observation) => row[OBSERVATIONS.indexOf(name)];

test('sentence split: numbered lists, decimals, abbreviations, XXXX, missing final period', () => {
  assert.deepEqual(splitSentences('1. No acute disease. 2. Stable 2.5 cm nodule in the XXXX lobe'), [
    'No acute disease.',
    'Stable 2.5 cm nodule in the XXXX lobe',
  ]);
  assert.deepEqual(splitSentences('Heart size normal.Lungs clear.\n\nNo effusion'), ['Heart size normal.', 'Lungs clear.', 'No effusion']);
  assert.deepEqual(splitSentences('Approx. 3 mm nodule. vs. prior'), ['Approx. 3 mm nodule.', 'vs. prior']);
  assert.deepEqual(splitSentences('   '), []);
  assert.deepEqual(splitClauses('Mild cardiomegaly but no effusion; lungs clear'), ['mild cardiomegaly', 'no effusion', 'lungs clear']);
});

test('mentions, negation and uncertainty within a clause', () => {
  const cases: [string, Observation, 1 | 0 | -1 | null][] = [
    ['Mild bibasilar atelectasis.', 'Atelectasis', 1],
    ['No pneumothorax or pleural effusion.', 'Pleural Effusion', 0],
    ['No focal consolidation, suspicious pulmonary opacity, large pleural effusion, or pneumothorax is identified.', 'Pneumothorax', 0],
    ['Pneumothorax is not seen.', 'Pneumothorax', 0],
    ['Previously seen effusion has resolved.', 'Pleural Effusion', 0],
    ['Heart size and pulmonary vascular engorgement appear within limits of normal.', 'Edema', 0],
    ['Pulmonary vascular engorgement.', 'Edema', 1],
    ['Cannot exclude a small left pleural effusion.', 'Pleural Effusion', -1],
    ['Evaluation for pleural fluid limited but no large pleural effusion seen.', 'Pleural Effusion', -1],
    ['Assessment for pneumothorax is limited.', 'Pneumothorax', -1],
    ['Opacity may represent pneumonia.', 'Pneumonia', -1],
    ['Opacity may represent pneumonia.', 'Lung Opacity', 1],
    ['Heart size is normal.', 'Cardiomegaly', 0],
    ['Normal heart size.', 'Cardiomegaly', 0],
    ['The heart is mildly enlarged.', 'Cardiomegaly', 1],
    ['The heart is not enlarged.', 'Cardiomegaly', 0],
    ['Stable cardiomegaly.', 'Cardiomegaly', 1],
    ['The mediastinum is widened.', 'Enlarged Cardiomediastinum', 1],
    ['Mediastinal contours are within normal limits.', 'Enlarged Cardiomediastinum', 0],
    ['Right IJ central venous catheter tip in the SVC.', 'Support Devices', 1],
    ['Left chest wall pacemaker with leads in the right ventricle.', 'Support Devices', 1],
    ['Healed left rib fractures.', 'Fracture', 1],
    ['No displaced rib fracture.', 'Fracture', 0],
    ['Calcified granuloma in the right upper lobe.', 'Lung Lesion', null],
    ['1 cm nodule in the left lower lobe.', 'Lung Lesion', 1],
    ['Mild pulmonary vascular congestion.', 'Edema', 1],
    ['Mild cardiomegaly but no pulmonary edema.', 'Edema', 0],
    ['Mild cardiomegaly but no pulmonary edema.', 'Cardiomegaly', 1],
    ['Small left apical pneumothorax.', 'Pneumothorax', 1],
    ['Apical pleural thickening.', 'Pleural Other', 1],
    ['Residuals of prior granulomatous infection.', 'Pneumonia', null],
  ];
  for (const [sentence, name, expected] of cases) assert.equal(at(labelSentence(sentence), name), expected, `${name} in "${sentence}"`);
});

test('change over time reads as the state now: "no change in X", stable, persistent X are present; resolved, removed X absent', () => {
  const cases: [string, Observation, 1 | 0 | -1 | null][] = [
    // present: the negation is about the change, or the wording says it is still there
    ['No significant change in right pneumothorax or pleural fluid.', 'Pneumothorax', 1],
    ['No significant change in right pneumothorax or pleural fluid.', 'Pleural Effusion', 1],
    ['No change in the small left pleural effusion.', 'Pleural Effusion', 1],
    ['No interval change in left lower lobe atelectasis.', 'Atelectasis', 1],
    ['No significant interval increase in cardiomegaly.', 'Cardiomegaly', 1],
    ['Unchanged mild cardiomegaly.', 'Cardiomegaly', 1],
    ['Persistent right lower lobe consolidation.', 'Consolidation', 1],
    ['Stable small right pleural effusion.', 'Pleural Effusion', 1],
    ['The left pleural effusion is unchanged.', 'Pleural Effusion', 1],
    ['Interval decrease in pulmonary edema.', 'Edema', 1],
    ['Slightly decreased right apical pneumothorax.', 'Pneumothorax', 1],
    // absent: gone since the last study
    ['Resolved right lower lobe pneumonia.', 'Pneumonia', 0],
    ['Interval resolution of the left pleural effusion.', 'Pleural Effusion', 0],
    ['The right chest tube has been removed.', 'Support Devices', 0],
    ['The previously seen pneumothorax is no longer seen.', 'Pneumothorax', 0],
    ['Pneumothorax has resolved.', 'Pneumothorax', 0],
    // a plain negation stays one
    ['No pneumothorax or pleural effusion.', 'Pneumothorax', 0],
    ['No change. No pneumothorax.', 'Pneumothorax', 0],
  ];
  for (const [sentence, name, want] of cases) {
    const row = labelReport(sentence).labels;
    assert.equal(at(row, name), want, `${sentence} -> ${name}`);
  }
});

test('modifiers: side, extent, change and location of a finding; agreement +1, contradiction -1, silence 0', () => {
  assert.deepEqual(extractModifiers('Small left pleural effusion.'), { side: ['left'], extent: ['small'] });
  assert.deepEqual(extractModifiers('Bibasilar atelectasis.'), { side: ['bilateral'], location: ['base'] });
  assert.deepEqual(extractModifiers('RLL pneumonia'), { side: ['right'], location: ['lower lobe'] });
  assert.deepEqual(extractModifiers('Interval increase in moderate right pleural effusion'), {
    side: ['right'],
    extent: ['moderate'],
    change: ['increased'],
  });
  assert.deepEqual(extractModifiers('Stable retrocardiac opacity.'), { change: ['stable'], location: ['retrocardiac'] });
  assert.deepEqual(extractModifiers('Clips in the right upper quadrant.'), {}, 'the abdomen is not a side of the chest');
  assert.deepEqual(extractModifiers('No pneumothorax.'), {});
  const q = extractModifiers('large right pleural effusion');
  assert.deepEqual(agreementOfModifiers(q, extractModifiers('Large right pleural effusion.')), {
    agreement: 1,
    matched: ['right', 'large'],
  });
  assert.equal(agreementOfModifiers(q, extractModifiers('Small left pleural effusion.')).agreement, -1);
  assert.equal(agreementOfModifiers(q, extractModifiers('Bilateral pleural effusions.')).agreement, 0, 'both sides: no contradiction');
  assert.equal(agreementOfModifiers(q, extractModifiers('Pleural effusion.')).agreement, 0);
  assert.equal(agreementOfModifiers(extractModifiers('mild cardiomegaly'), extractModifiers('Small heart.')).agreement, 1, 'small ~ mild');
});

test('No Finding: only when nothing abnormal is positive, including findings outside the 14', () => {
  assert.equal(at(labelSentence('No acute cardiopulmonary abnormality.'), 'No Finding'), 1);
  assert.equal(at(labelSentence('The lungs are clear.'), 'No Finding'), 1);
  assert.equal(at(labelSentence('Degenerative changes of the thoracic spine.'), 'No Finding'), 0);
  assert.equal(
    at(
      labelReport({ findings: 'Heart size is normal. The lungs are clear. No pneumothorax.', impression: 'Normal chest x-XXXX.' }).labels,
      'No Finding',
    ),
    1,
  );
  const abnormal = labelReport({ findings: 'The lungs are clear.', impression: 'Calcified granuloma in the right upper lobe.' });
  assert.equal(at(abnormal.labels, 'No Finding'), 0);
  assert.equal(at(labelReport({ findings: 'Stable cardiomegaly.', impression: '' }).labels, 'No Finding'), 0);
  assert.deepEqual(labelReport({ findings: '', impression: null }).sentences, []);
});

test('report aggregate keeps each sentence and takes positive over uncertain over negative', () => {
  const r = labelReport({
    findings: 'No pleural effusion. Possible small right effusion. Mild atelectasis.',
    impression: 'No pneumothorax.',
  });
  assert.equal(r.sentences.length, 4);
  assert.deepEqual(
    r.sentences.map((s) => s.index),
    [0, 1, 2, 3],
  );
  assert.equal(at(r.labels, 'Pleural Effusion'), -1);
  assert.equal(at(r.labels, 'Atelectasis'), 1);
  assert.equal(at(r.labels, 'Pneumothorax'), 0);
  assert.equal(at(r.labels, 'Edema'), null);
});

test('IU val split: report labels agree with MeSH-derived labels at micro-F1 >= 0.80', async () => {
  const pairs: { predicted: LabelRow; reference: LabelRow }[] = [];
  for await (const report of readReports(IU_REPORTS, { split: 'val' })) {
    pairs.push({ predicted: labelReport(report.text).labels, reference: report.labels! });
  }
  assert.equal(pairs.length, 379);
  const e = evaluateLabels(pairs, 'negative');
  assert.ok(e.microF1 >= 0.8, `micro-F1 ${e.microF1.toFixed(3)}`);
  for (const name of ['No Finding', 'Cardiomegaly', 'Lung Opacity', 'Support Devices'] as const)
    assert.ok(e.perClass[name].f1 >= 0.75, `${name} F1 ${e.perClass[name].f1.toFixed(3)}`);
});

test('evaluation arithmetic on a hand-made example', () => {
  const row = (o: Partial<Record<Observation, 1 | 0 | -1>>): LabelRow => OBSERVATIONS.map((n) => o[n] ?? 0);
  const e = evaluateLabels(
    [
      { predicted: row({ Edema: 1 }), reference: row({ Edema: 1 }) },
      { predicted: row({ Edema: -1 }), reference: row({ Edema: 0 }) },
      { predicted: row({}), reference: row({ Edema: 1, Fracture: 1 }) },
    ],
    'positive',
  );
  assert.deepEqual([e.perClass.Edema.tp, e.perClass.Edema.fp, e.perClass.Edema.fn], [1, 1, 1]);
  assert.equal(e.perClass.Edema.f1, 0.5);
  // micro: tp 1, fp 1, fn 2 -> p 0.5, r 1/3, F1 0.4
  assert.ok(Math.abs(e.microF1 - 0.4) < 1e-12);
  const strict = evaluateLabels([{ predicted: row({ Edema: -1 }), reference: row({ Edema: 0 }) }], 'negative');
  assert.equal(strict.perClass.Edema.fp, 0);
});

test('the labeler version pins its output: a change to the split or the labels must bump LABELER_VERSION', async () => {
  const { createHash } = await import('node:crypto');
  const { LABELER_VERSION, labelReport: label } = await import('../core/labeler/index.ts');
  const { readReports, reportText } = await import('../core/tables/index.ts');
  // sha256 of the labeler's output (sentences and labels) on every IU val report, per version
  const FINGERPRINTS: Record<string, string> = {
    '1': '11024f0c059afa6f40a44b1d44077ddcabb76737244c6a3751107dfb36f60766',
    // 2: "within limits of normal" / "within normal range" negate what precedes them
    '2': '1250a0e75519a6493731c8f30fb32f38968e8bbd98d1655fefaacdf3fc01597c',
    // 3: "no (significant) change in X" leaves X present (val F1: Pneumothorax 0.857 -> 1.000, Effusion 0.865 -> 0.895)
    '3': 'e1f621bec186587474e25eb4ea73ecd91ccae9b2c4615bbe9773aae75899205e',
    // 4: "evaluation for X" / "assessment for X" leave X uncertain (val F1: Pleural Effusion 0.895 -> 0.919)
    '4': '6f39b275340b9804e4f38cf18db579197e8ccbe06c1cda1b12ef0dd1e97301af',
  };
  const h = createHash('sha256');
  for await (const r of readReports(IU_REPORTS, { split: 'val' })) h.update(JSON.stringify(label(reportText(r))));
  assert.equal(
    h.digest('hex'),
    FINGERPRINTS[LABELER_VERSION],
    `the labeler's output changed: bump LABELER_VERSION (index bundles record it) and add the new fingerprint here`,
  );
});
