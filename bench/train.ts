/**
 * Training throughput of `configs/tiny.json` at batch 32 (image + sentence pairs per second), per available
 * tfjs backend and worker count, on real data (decoded-image cache, augmentation and sampling included).
 * Baseline in the same run: the bare model step on a preloaded batch (no data loading, one replica).
 *
 *   node --import tsx bench/train.ts [--steps 8] [--backends wasm,cpu] [--workers 1,2]
 */
import { join } from 'node:path';
import { rmSync } from 'node:fs';
import { selectBackend } from '../train/backend.ts';
import { loadModelConfig } from '../train/config.ts';
import { initialValues } from '../train/model.ts';
import { Replica } from '../train/replica.ts';
import { train } from '../train/trainer.ts';
import { Rng } from '../core/util/index.ts';
import { benchArgs } from './harness.ts';

const { args } = benchArgs({
  steps: { type: 'string', default: '8' },
  backends: { type: 'string', default: 'wasm' },
  workers: { type: 'string', default: '1,2' },
  data: { type: 'string', default: join(import.meta.dirname, '../../shared/data') },
});
const steps = Number(args.steps);
const batch = 32;
const config = await loadModelConfig(join(import.meta.dirname, '../configs/tiny.json'));
const out = join(import.meta.dirname, '../.bench-output/train');

for (const backend of args.backends!.split(',')) {
  try {
    await selectBackend(backend);
  } catch (err) {
    console.log(`${backend}: not available (${(err as Error).message})`);
    continue;
  }
  // Baseline: one replica, a preloaded random batch, no data pipeline.
  const replica = new Replica({
    config,
    values: initialValues(config, 0),
    optimizer: { beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0.05 },
    lossOptions: { loss: 'semantic', labelTemperature: 1 },
  });
  const rng = new Rng(1);
  const s = config.image.size;
  const L = config.text.maxLength;
  const b = {
    n: batch,
    pixels: Float32Array.from({ length: batch * s * s }, () => rng.uniform(-2, 2)),
    ids: Int32Array.from({ length: batch * L }, () => 5 + rng.int(500)),
    mask: new Int32Array(batch * L).fill(1),
    imgLabels: Float32Array.from({ length: batch * 14 }, () => (rng.next() < 0.2 ? 1 : 0)),
    txtLabels: Float32Array.from({ length: batch * 14 }, () => (rng.next() < 0.2 ? 1 : 0)),
  };
  const one = replica.step(b);
  replica.apply(one.grads, one.bnStats, 1e-4);
  const t0 = performance.now();
  for (let i = 0; i < steps; i++) {
    const r = replica.step(b);
    replica.apply(r.grads, r.bnStats, 1e-4);
  }
  const baseline = (batch * steps * 1000) / (performance.now() - t0);
  replica.dispose();
  console.log(`${backend}: model step only (1 replica, preloaded batch): ${baseline.toFixed(1)} pairs/s`);

  for (const workers of args.workers!.split(',').map(Number)) {
    const dir = join(out, `${backend}-${workers}`);
    rmSync(dir, { recursive: true, force: true });
    let tStart = 0;
    let tEnd = 0;
    await train({
      config,
      images: join(args.data!, 'images.csv'),
      reports: join(args.data!, 'reports/iu_reports.csv'),
      out: dir,
      // the defaults (train/trainer.ts DEFAULT_TRAIN) but for what a throughput run changes
      valSplit: undefined,
      steps: steps + 2,
      batch,
      lr: 1e-4,
      warmup: 1,
      evalEvery: 10_000,
      cacheDir: join(import.meta.dirname, '../runs/.cache'),
      promptsPerClass: 4,
      workers,
      onStep: (i) => {
        if (i.step === 2) tStart = performance.now();
        if (i.step === steps + 2) tEnd = performance.now();
      },
    });
    const rate = (batch * steps * 1000) / (tEnd - tStart);
    console.log(
      `${backend}: full training loop, ${workers} worker${workers > 1 ? 's' : ''}: ${rate.toFixed(1)} pairs/s (${(rate / baseline).toFixed(2)}x the model-step baseline)`,
    );
  }
}
