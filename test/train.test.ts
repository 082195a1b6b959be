// A real (tiny) training run on real images and IU sentences: learning step, flat memory, checkpoints,
// exact resume after an interruption, NaN stop, and the data-parallel worker path.
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, writeFileSync, existsSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { selectBackend } from '../train/backend.ts';
import { parseModelConfig } from '../train/config.ts';
import { train, TrainError, type TrainOptions } from '../train/trainer.ts';
import { checkpointFolder, readTensors } from '../train/checkpoint.ts';

/** The live checkpoint folder of a run's `checkpoint-latest` / `checkpoint-best`. */
const ckpt = (run: string, which: string): string => {
  const dir = checkpointFolder(join(run, which));
  assert.ok(dir, `${run} has no ${which}`);
  return dir;
};
import { DATA, IMAGES_CSV, IU_REPORTS, outputDir } from './helpers/paths.ts';
import { TINY_TEST_CONFIG } from './helpers/tiny-run.ts';

const dir = outputDir('train');
let base: TrainOptions;

before(async () => {
  await selectBackend('wasm');
  // A small image table: 12 NIH + 12 Kermany train images, 6 + 6 val, all real files.
  const lines = readFileSync(IMAGES_CSV, 'utf8').trim().split('\n');
  const pick = (source: string, split: string, n: number) =>
    lines.filter((l) => l.includes(`,${source},`) && l.includes(`,${split},`)).slice(0, n);
  writeFileSync(
    join(dir, 'images.csv'),
    [lines[0], ...pick('nih', 'train', 12), ...pick('kermany', 'train', 12), ...pick('nih', 'val', 6), ...pick('kermany', 'val', 6)].join(
      '\n',
    ) + '\n',
  );
  base = {
    config: parseModelConfig(TINY_TEST_CONFIG),
    images: join(dir, 'images.csv'),
    root: DATA,
    reports: IU_REPORTS,
    out: join(dir, 'run'),
    // DEFAULT_TRAIN but for a tiny run
    steps: 6,
    batch: 8,
    lr: 2e-3,
    warmup: 2,
    evalEvery: 3,
    seed: 1,
    cacheDir: join(dir, 'cache'),
    valClasses: ['No Finding', 'Pneumonia'],
    promptsPerClass: 4,
  };
});

function logOf(run: string): { step: number; loss?: number; numTensors?: number; val?: unknown }[] {
  return readFileSync(join(run, 'log.jsonl'), 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l));
}

test('train: runs, validates, checkpoints, and keeps the tensor count flat across steps', async () => {
  const out = join(dir, 'full');
  rmSync(out, { recursive: true, force: true });
  const r = await train({ ...base, out });
  assert.equal(r.steps, 6);
  const log = logOf(out);
  const steps = log.filter((l) => l.loss !== undefined);
  assert.equal(steps.length, 6);
  assert.ok(steps.every((s) => Number.isFinite(s.loss)));
  // validation (after step 3) and checkpoints must not leak either: the count is the same at every step
  const counts = new Set(steps.map((s) => s.numTensors));
  assert.equal(counts.size, 1, `tensor count changed across steps: ${[...counts]}`);
  assert.equal(log.filter((l) => l.val).length, 2);
  for (const c of ['checkpoint-latest', 'checkpoint-best']) assert.ok(existsSync(join(ckpt(out, c), 'weights', 'tensors.bin')));
  // a versioned folder: the live checkpoint and the previous one, switched by CURRENT
  const versions = readdirSync(join(out, 'checkpoint-latest')).filter((n) => n !== 'CURRENT');
  assert.equal(versions.length, 2, `latest + previous: ${versions}`);
  assert.ok(existsSync(join(out, 'tokenizer.json')));
});

test('train --resume after an interruption ends with exactly the weights of an uninterrupted run', async () => {
  const full = join(dir, 'full');
  if (!checkpointFolder(join(full, 'checkpoint-latest'))) await train({ ...base, out: full });
  const out = join(dir, 'interrupted');
  rmSync(out, { recursive: true, force: true });
  // Crash during step 4: the last checkpoint is step 3.
  await assert.rejects(
    train({
      ...base,
      out,
      onStep: (s) => {
        if (s.step === 4) throw new Error('simulated crash');
      },
    }),
    /simulated crash/,
  );
  const resumed = await train({ ...base, out, resume: true });
  assert.equal(resumed.steps, 6);
  const a = await readTensors(join(ckpt(full, 'checkpoint-latest'), 'weights'));
  const b = await readTensors(join(ckpt(out, 'checkpoint-latest'), 'weights'));
  for (const [name, v] of a) assert.deepEqual(b.get(name), v, `${name} differs after resume`);
  const optA = await readTensors(join(ckpt(full, 'checkpoint-latest'), 'optimizer'));
  const optB = await readTensors(join(ckpt(out, 'checkpoint-latest'), 'optimizer'));
  for (const [name, v] of optA) assert.deepEqual(optB.get(name), v, `optimizer ${name} differs after resume`);
});

test('train stops with a clear error when the loss becomes NaN or infinite', async () => {
  const out = join(dir, 'nan');
  rmSync(out, { recursive: true, force: true });
  await assert.rejects(train({ ...base, out, lr: 1e30, clip: 1e30, warmup: 1, steps: 4, evalEvery: 10 }), (err: unknown) => {
    assert.ok(err instanceof TrainError);
    assert.match(err.message, /loss became (NaN|Infinity|-Infinity) at step \d/);
    return true;
  });
});

test('train --workers 2: data-parallel replicas on worker threads train and checkpoint', async () => {
  const out = join(dir, 'workers');
  rmSync(out, { recursive: true, force: true });
  const r = await train({ ...base, out, steps: 2, evalEvery: 2, workers: 2 });
  assert.equal(r.steps, 2);
  assert.ok(
    logOf(out)
      .filter((l) => l.loss !== undefined)
      .every((s) => Number.isFinite(s.loss)),
  );
  assert.ok(existsSync(join(ckpt(out, 'checkpoint-latest'), 'optimizer', 'tensors.bin')));
});

test('training lowers the loss, with one replica and with two on worker threads', async () => {
  const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
  for (const workers of [1, 2]) {
    const out = join(dir, `descent-${workers}`);
    rmSync(out, { recursive: true, force: true });
    await train({ ...base, out, steps: 30, evalEvery: 30, augment: false, workers });
    const losses = logOf(out).flatMap((l) => (l.loss === undefined ? [] : [l.loss]));
    assert.equal(losses.length, 30);
    const first = mean(losses.slice(0, 5));
    const last = mean(losses.slice(-5));
    assert.ok(last < 0.9 * first, `${workers} worker(s): loss ${first.toFixed(3)} -> ${last.toFixed(3)}`);
  }
});

test('train refuses an image table with no rows in the split, naming it', async () => {
  await assert.rejects(train({ ...base, out: join(dir, 'empty'), trainSplit: 'nope' }), /no trainable images .*split nope/);
});

test('train with the findings loss and finding-balanced sampling: finite losses, larger than the semantic loss alone', async () => {
  const plain = join(dir, 'plain');
  const withFindings = join(dir, 'findings');
  for (const d of [plain, withFindings]) rmSync(d, { recursive: true, force: true });
  await train({ ...base, out: plain, steps: 2, evalEvery: 2, balanceFindings: true });
  await train({ ...base, out: withFindings, steps: 2, evalEvery: 2, balanceFindings: true, findingsWeight: 1 });
  const first = (d: string) => logOf(d).find((l) => l.loss !== undefined)!.loss!;
  assert.ok(Number.isFinite(first(withFindings)));
  // same seed, same batch: the first step's loss differs exactly by the (positive) findings term
  assert.ok(first(withFindings) > first(plain) + 0.1, `${first(withFindings)} vs ${first(plain)}`);
});
