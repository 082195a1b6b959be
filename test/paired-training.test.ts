// Paired training (MedCLIP's paired + unpaired setting): the pair-positive targets against a plain reference on tiny
// seeded tensors, the pairing of images with their reports' sentences, a sampler that mixes true pairs with decoupled
// draws, `medclip train --json` on a paired image table, and end to end from a PACS: DICOM samples and dcmtk-written SR
// reports served by Orthanc, indexed, then trained on with `--from-index`.
import assert from 'node:assert/strict';
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import { NUM_OBSERVATIONS, OBSERVATIONS } from '../core/labeler/index.ts';
import { readReports, type Report } from '../core/tables/index.ts';
import { Rng } from '../core/util/index.ts';
import { buildIndex } from '../index-builder/build.ts';
import { selectBackend } from '../train/backend.ts';
import { checkpointFolder } from '../train/checkpoint.ts';
import { type ImageSet, loadSentences } from '../train/data.ts';
import { semanticLoss, semanticTargets, withPairs } from '../train/loss.ts';
import { pairImages, pairMatrix } from '../train/pairs.ts';
import { DecoupledSampler } from '../train/sampler.ts';
import { medclipWith } from './helpers/cli.ts';
import { ORTHANC_USER, orthancMissing, reidentify, startOrthanc, textSr, type Orthanc } from './helpers/orthanc.ts';
import { DATA, IMAGES_CSV, IU_REPORTS, outputDir, REPO } from './helpers/paths.ts';
import { TINY_TEST_CONFIG } from './helpers/tiny-run.ts';

const dir = outputDir('paired-training');
const CONFIG = join(dir, 'tiny-test.json');
const at = (name: string) => OBSERVATIONS.indexOf(name as never);

before(async () => {
  await selectBackend('wasm');
  await writeFile(CONFIG, JSON.stringify(TINY_TEST_CONFIG));
});

test('pair targets: each row is (semantic + w * pairs / count) / (1 + w), rows without a pair unchanged (vs a plain reference)', () => {
  const rng = new Rng(7);
  const B = 5;
  const imgL = Array.from({ length: B * NUM_OBSERVATIONS }, () => (rng.next() < 0.3 ? 1 : 0));
  const txtL = Array.from({ length: B * NUM_OBSERVATIONS }, () => (rng.next() < 0.3 ? 1 : 0));
  // image 0 pairs with sentence 0; image 2 with sentences 1 and 3; images 1, 3, 4 have none
  const P = new Float32Array(B * B);
  P[0] = 1;
  P[2 * B + 1] = 1;
  P[2 * B + 3] = 1;
  const w = 1.5;
  const [semantic] = semanticTargets(tf.tensor2d(imgL, [B, NUM_OBSERVATIONS]), tf.tensor2d(txtL, [B, NUM_OBSERVATIONS]));
  const got = withPairs(semantic, tf.tensor2d(P, [B, B]), w).arraySync();
  // reference: softmax of label dot products per row, then the pair share, in plain JS
  for (let i = 0; i < B; i++) {
    const dots = Array.from({ length: B }, (_, j) => {
      let s = 0;
      for (let f = 0; f < NUM_OBSERVATIONS; f++) s += imgL[i * NUM_OBSERVATIONS + f]! * txtL[j * NUM_OBSERVATIONS + f]!;
      return s;
    });
    const max = Math.max(...dots);
    const exp = dots.map((d) => Math.exp(d - max));
    const z = exp.reduce((a, b) => a + b, 0);
    const count = Array.from({ length: B }, (_, j) => P[i * B + j]!).reduce((a, b) => a + b, 0);
    for (let j = 0; j < B; j++) {
      const s = exp[j]! / z;
      const expected = count > 0 ? (s + (w * P[i * B + j]!) / count) / (1 + w) : s;
      assert.ok(Math.abs(got[i]![j]! - expected) < 1e-6, `row ${i} col ${j}: ${got[i]![j]} vs ${expected}`);
    }
    assert.ok(Math.abs(got[i]!.reduce((a, b) => a + b, 0) - 1) < 1e-6);
  }
  // the loss: no pairs (or weight 0) is MedCLIP's loss exactly; a true pair changes it
  const logits = tf.tensor2d(
    Array.from({ length: B * B }, () => rng.uniform(-3, 3)),
    [B, B],
  );
  const args = [logits, tf.tensor2d(imgL, [B, NUM_OBSERVATIONS]), tf.tensor2d(txtL, [B, NUM_OBSERVATIONS]), 1] as const;
  const plain = semanticLoss(...args).dataSync()[0]!;
  assert.equal(semanticLoss(...args, { matrix: tf.zeros([B, B]), weight: w }).dataSync()[0], plain);
  assert.equal(semanticLoss(...args, { matrix: tf.tensor2d(P, [B, B]), weight: 0 }).dataSync()[0], plain);
  assert.notEqual(semanticLoss(...args, { matrix: tf.tensor2d(P, [B, B]), weight: w }).dataSync()[0], plain);
});

/** An image set of `n` one-pixel images, the given report ids, no labels. */
function images(reportIds: (string | undefined)[]): ImageSet {
  const n = reportIds.length;
  return {
    ids: reportIds.map((_, i) => `img${i}`),
    side: 1,
    pixels: new Uint8Array(n),
    labels: new Float32Array(n * NUM_OBSERVATIONS),
    known: new Float32Array(n * NUM_OBSERVATIONS),
    sources: new Array(n).fill(''),
    reportIds,
    skipped: [],
  };
}

test("pairing: an image gets its report's labelled sentences and, having no labels, the report's labels; a missing report is counted", async () => {
  const reports: Report[] = [
    { id: 'r1', text: { findings: 'Small left pleural effusion. The heart is normal in size.' }, meta: {} },
    { id: 'r2', text: { findings: 'The lungs are clear.', impression: 'No acute disease.' }, meta: {} },
  ];
  const sentences = await loadSentences(reports);
  const set = images(['r1', 'r2', 'nope', undefined]);
  // image 1 has labels of its own: they are kept
  set.labels[NUM_OBSERVATIONS + at('Pneumonia')] = 1;
  set.known.fill(1, NUM_OBSERVATIONS, 2 * NUM_OBSERVATIONS);
  const pairing = pairImages(set, sentences);
  assert.equal(pairing.pairs, 2);
  assert.equal(pairing.missingReports, 1);
  assert.equal(pairing.labelsFromReports, 1);
  const textsOf = (i: number) => pairing.sentencesOf[i]!.map((s) => sentences.texts[s]);
  assert.ok(textsOf(0).some((t) => /pleural effusion/.test(t!)));
  assert.ok(textsOf(1).every((t) => !/effusion/.test(t!)));
  assert.equal(pairing.sentencesOf[2], undefined);
  assert.equal(pairing.sentencesOf[3], undefined);
  assert.equal(set.labels[at('Pleural Effusion')], 1, 'the unlabelled image took its report labels');
  assert.equal(set.known[at('Pleural Effusion')], 1);
  assert.equal(set.labels[NUM_OBSERVATIONS + at('Pneumonia')], 1, 'own labels kept');
  assert.equal(set.labels[NUM_OBSERVATIONS + at('No Finding')], 0);
  // the batch matrix marks exactly the (image, own sentence) cells
  const m = pairMatrix(
    [0, 1, 3],
    [pairing.sentencesOf[0]![0]!, pairing.sentencesOf[0]![0]!, pairing.sentencesOf[1]![0]!],
    pairing.sentencesOf,
  );
  assert.deepEqual([...m], [1, 1, 0, 0, 0, 1, 0, 0, 0]);
});

test('the sampler mixes true pairs at the pair rate and draws unpaired data exactly as before', async () => {
  const reports = await (async () => {
    const out = [];
    for await (const r of readReports(IU_REPORTS, { split: 'train' })) {
      out.push(r);
      if (out.length === 40) break;
    }
    return out;
  })();
  const sentences = await loadSentences(reports, { prompts: true });
  const set = images(reports.map((r, i) => (i % 2 === 0 ? r.id : undefined)));
  set.labels.fill(0);
  for (let i = 0; i < reports.length; i++) set.labels[i * NUM_OBSERVATIONS + (i % NUM_OBSERVATIONS)] = 1;
  const pairing = pairImages(set, sentences);
  const base = { matchRate: 0.5, balanceSources: false };
  const draw = (options: object, seed: number, batch = 400) =>
    new DecoupledSampler(set, sentences, { ...base, ...options }).sample(batch, new Rng(seed));
  const always = draw({ pairs: pairing.sentencesOf, pairRate: 1 }, 3);
  let own = 0;
  let paired = 0;
  always.images.forEach((img, b) => {
    const mine = pairing.sentencesOf[img];
    if (!mine) return;
    paired++;
    if (mine.includes(always.sentences[b]!)) own++;
  });
  assert.ok(paired > 100);
  assert.equal(own, paired, 'at pair rate 1 every paired image brings a sentence of its own report');
  const half = draw({ pairs: pairing.sentencesOf, pairRate: 0.5 }, 3);
  const share =
    half.images.filter((img, b) => pairing.sentencesOf[img]?.includes(half.sentences[b]!)).length /
    half.images.filter((img) => pairing.sentencesOf[img]).length;
  assert.ok(share > 0.4 && share < 0.75, `pair share at rate 0.5: ${share}`);
  // no pairs given: the same draws as the sampler always made
  const unpaired = images(reports.map(() => undefined));
  unpaired.labels.set(set.labels);
  const a = new DecoupledSampler(unpaired, sentences, base).sample(64, new Rng(9));
  const b = draw({}, 9, 64);
  assert.deepEqual(a, b);
});

test('medclip train --json on an image table with report_id: pairs counted, an unknown report named in the log', async () => {
  const lines = readFileSync(IMAGES_CSV, 'utf8').trim().split('\n');
  const reportIds: string[] = [];
  for await (const r of readReports(IU_REPORTS, { split: 'train' })) {
    reportIds.push(r.id);
    if (reportIds.length === 6) break;
  }
  const train = lines.filter((l) => l.includes(',nih,') && l.includes(',train,')).slice(0, 8);
  const val = lines.filter((l) => l.includes(',nih,') && l.includes(',val,')).slice(0, 4);
  // six train images name their report, one names a report that does not exist, one names none
  const ids = [...reportIds, 'no-such-report', ''];
  await writeFile(
    join(dir, 'images.csv'),
    [`${lines[0]},report_id`, ...train.map((l, i) => `${l},${ids[i]}`), ...val.map((l) => `${l},`)].join('\n') + '\n',
  );
  const r = await medclipWith(
    { timeoutMs: 120_000 },
    ...['train', '--config', CONFIG, '--images', join(dir, 'images.csv'), '--root', DATA],
    ...['--reports', IU_REPORTS, '--out', join(dir, 'table-run'), '--steps', '2', '--batch', '8', '--eval-every', '2'],
    ...['--backend', 'wasm', '--cache-dir', join(dir, 'cache'), '--json'],
  );
  assert.equal(r.code, 0, r.stderr);
  const summary = JSON.parse(r.stdout);
  assert.equal(summary.pairs, 6);
  assert.equal(summary.missingReports, 1);
  assert.equal(summary.images.train, 8);
  assert.equal(summary.images.val, 4);
  assert.equal(summary.steps, 2);
  assert.match(r.stderr, /pairs: 6 image\(s\) with their report .*1 name a report that is not among the reports/);
});

const missing = orthancMissing();
if (missing && process.env.CI) throw new Error(`CI=true but ${missing} are not installed: .ci/run must install them`);
const skip = missing ? `${missing} not installed (.ci/run installs them)` : false;

let orthanc: Orthanc | undefined;
after(async () => {
  await orthanc?.stop();
});

test('from a PACS: SR reports written with dcmtk, served by Orthanc, indexed, then `train --from-index` pairs each image with its study report', {
  skip,
}, async () => {
  const root = '1.2.826.0.1.3680043.10.543.77';
  const uid = (...p: number[]) => [root, ...p].join('.');
  const pacs = join(dir, 'pacs');
  await rm(pacs, { recursive: true, force: true });
  await mkdir(join(pacs, 'files'), { recursive: true });
  orthanc = await startOrthanc(join(pacs, 'orthanc'));
  // four studies with a chest X-ray each; three have an SR report, the fourth none
  const studies = [
    {
      sample: 'siim-cr-jpeg-baseline.dcm',
      report: { findings: 'There is a large right pleural effusion.', impression: 'Right pleural effusion.' },
    },
    {
      sample: 'nih-secondary-capture-test1.dcm',
      report: { findings: 'The lungs are clear. No pleural effusion.', impression: 'No acute disease.' },
    },
    {
      sample: 'nih-secondary-capture-test2.dcm',
      report: { findings: 'Right lower lobe consolidation.', impression: 'Findings consistent with pneumonia.' },
    },
    { sample: 'nih-secondary-capture-test3.dcm' },
  ];
  for (const [k, s] of studies.entries()) {
    const ids = { study: uid(k + 1), series: uid(k + 1, 1), instance: uid(k + 1, 1, 1), date: '20240301' };
    assert.ok(await orthanc.store(await reidentify(join(DATA, 'samples/dicom', s.sample), join(pacs, 'files', `${k}.dcm`), ids)));
    if (s.report)
      assert.ok(
        await orthanc.store(
          await textSr(join(pacs, 'files', `${k}-sr.dcm`), {
            study: uid(k + 1),
            series: uid(k + 1, 9),
            instance: uid(k + 1, 9, 1),
            date: '20240301',
            ...s.report,
          }),
        ),
      );
  }
  const bundle = join(pacs, 'bundle');
  await buildIndex({ model: join(REPO, 'models/medclip-tiny'), out: bundle, dicomweb: { url: orthanc.dicomweb, auth: ORTHANC_USER } });
  const trainFromIndex = (out: string) =>
    medclipWith(
      { timeoutMs: 120_000, env: { MEDCLIP_DICOMWEB_PASSWORD: ORTHANC_USER.password } },
      ...['train', '--config', CONFIG, '--from-index', bundle],
      ...['--dicomweb-user', ORTHANC_USER.user, '--out', join(pacs, out), '--steps', '2', '--batch', '4', '--eval-every', '2'],
      ...['--backend', 'wasm', '--cache-dir', join(pacs, 'cache'), '--json'],
    );
  const r = await trainFromIndex('run');
  assert.equal(r.code, 0, r.stderr);
  const summary = JSON.parse(r.stdout);
  assert.deepEqual(summary.index, { images: 4, reports: 3, fetched: 4 });
  assert.equal(summary.images.train, 4);
  assert.equal(summary.pairs, 3, 'each image with a study SR is a pair');
  assert.equal(summary.pairedWithSentences, 3);
  assert.equal(summary.labelsFromReports, 3, "the PACS images are unlabelled: they take their report's labels");
  assert.equal(summary.steps, 2);
  // credentials never reach the run folder
  const state = await readFile(join(checkpointFolder(join(pacs, 'run/checkpoint-latest'))!, 'state.json'), 'utf8');
  assert.ok(!state.includes(ORTHANC_USER.password));
  // a second run reads the fetched instances from the cache
  const again = await trainFromIndex('run-2');
  assert.equal(again.code, 0, again.stderr);
  assert.equal(JSON.parse(again.stdout).index.fetched, 0);
});
