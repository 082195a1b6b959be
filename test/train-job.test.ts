// `medclip train-job` (the AWS Batch GPU job's command) against a local S3 endpoint with the real AWS SDK: inputs
// downloaded, `medclip train` run on them, the run folder uploaded (checkpoint versions before the CURRENT naming
// them), and a second attempt (a retried job) resuming from what the first uploaded.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { jobTrainArgs } from '../train/job.ts';
import { medclipWith } from './helpers/cli.ts';
import { type LocalS3, startLocalS3 } from './helpers/local-s3.ts';
import { DATA, IMAGES_CSV, IU_REPORTS, outputDir } from './helpers/paths.ts';

const dir = outputDir('train-job');
const BUCKET = 'medclip-training';
let s3: LocalS3;
let env: Record<string, string>;
const SECRET = 'local-s3-secret-7731';

before(async () => {
  s3 = await startLocalS3();
  env = { AWS_ENDPOINT_URL_S3: s3.url, AWS_REGION: 'eu-west-1', AWS_ACCESS_KEY_ID: 'test', AWS_SECRET_ACCESS_KEY: SECRET };
  // inputs: a small image table (paths relative to it), its images, and a report table
  const lines = readFileSync(IMAGES_CSV, 'utf8').trim().split('\n');
  const rows = [
    ...lines.filter((l) => l.includes(',nih,') && l.includes(',train,')).slice(0, 8),
    ...lines.filter((l) => l.includes(',nih,') && l.includes(',val,')).slice(0, 4),
  ];
  s3.put(BUCKET, 'training/inputs/images.csv', [lines[0], ...rows].join('\n') + '\n');
  for (const r of rows) {
    const path = r.split(',')[0]!;
    s3.put(BUCKET, `training/inputs/${path}`, readFileSync(join(DATA, path)));
  }
  s3.put(BUCKET, 'training/inputs/reports.csv', readFileSync(IU_REPORTS, 'utf8').split('\n').slice(0, 80).join('\n') + '\n');
});

after(async () => {
  await s3?.close();
});

const job = (steps: number, work: string) =>
  medclipWith(
    { env, timeoutMs: 180_000 },
    ...[
      'train-job',
      '--input',
      `s3://${BUCKET}/training/inputs`,
      '--run',
      `s3://${BUCKET}/training/runs/r1`,
      '--work-dir',
      join(dir, work),
    ],
    ...['--', '--config', 'tiny', '--images', 'images.csv', '--reports', 'reports.csv', '--steps', String(steps)],
    ...['--batch', '8', '--eval-every', '2', '--warmup', '1', '--backend', 'wasm'],
  );

const runObject = (name: string) => s3.objects.get(`${BUCKET}/training/runs/r1/${name}`);

test('train-job: inputs from S3, the run folder to S3, a retried job resumes from the uploaded checkpoint', async () => {
  const first = await job(2, 'attempt-1');
  assert.equal(first.code, 0, first.stderr);
  assert.match(first.stderr, /train-job: \d+ input file\(s\) from s3:\/\/medclip-training\/training\/inputs; new run/);
  const current = new TextDecoder().decode(runObject('checkpoint-latest/CURRENT')).trim();
  assert.match(current, /^step-0000002-/);
  for (const f of ['weights/tensors.bin', 'weights/tensors.json', 'optimizer/tensors.bin', 'state.json'])
    assert.ok(runObject(`checkpoint-latest/${current}/${f}`), `uploaded ${f}`);
  assert.ok(runObject('tokenizer.json') && runObject('config.json'));
  assert.ok(![...s3.objects.keys()].some((k) => k.includes('/.')), 'no staging folder or hidden file uploaded');

  // a retry on a fresh machine: the same job with a larger budget continues from step 2
  const second = await job(4, 'attempt-2');
  assert.equal(second.code, 0, second.stderr);
  assert.match(second.stderr, /resuming the run in s3:\/\/medclip-training\/training\/runs\/r1/);
  assert.match(second.stderr, /resumed at step 2/);
  const steps = new TextDecoder()
    .decode(runObject('log.jsonl'))
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as { step: number; loss?: number })
    .filter((l) => l.loss !== undefined)
    .map((l) => l.step);
  assert.deepEqual(steps, [1, 2, 3, 4], 'one log across both attempts, no step trained twice');
  const state = JSON.parse(
    new TextDecoder().decode(
      runObject(`checkpoint-latest/${new TextDecoder().decode(runObject('checkpoint-latest/CURRENT')).trim()}/state.json`),
    ),
  );
  assert.equal(state.step, 4);
  assert.equal(JSON.stringify(state).includes(SECRET), false, 'no credential in the run state');
});

test('train-job: options the job sets itself are refused, a shipped config is found by name, a bad input prefix is one line', async () => {
  assert.throws(() => jobTrainArgs(['--out', 'x'], dir), /train-job sets --out itself/);
  assert.match(jobTrainArgs(['--config', 'tiny'], dir)[1]!, /configs\/tiny\.json$/);
  assert.equal(jobTrainArgs(['--config', 'mine.json'], dir)[1], 'mine.json', 'a config not shipped is left for train to resolve');
  const empty = await medclipWith(
    { env, timeoutMs: 60_000 },
    ...[
      'train-job',
      '--input',
      `s3://${BUCKET}/nothing-here`,
      '--run',
      `s3://${BUCKET}/training/runs/r2`,
      '--work-dir',
      join(dir, 'empty'),
    ],
    ...['--', '--config', 'tiny', '--images', 'images.csv'],
  );
  assert.equal(empty.code, 1);
  assert.equal(empty.stderr.trim(), 'medclip: s3://medclip-training/nothing-here: nothing to train on (no objects under the prefix)');
  const bad = await medclipWith({ env }, 'train-job', '--input', 'http://x', '--run', `s3://${BUCKET}/r`, '--', '--config', 'tiny');
  assert.equal(bad.code, 1);
  assert.match(bad.stderr, /not an S3 URI: http:\/\/x/);
});
