/** `medclip train`: MedCLIP pretraining with TensorFlow.js on image tables and report tables. */
import type { Command } from 'commander';
import { SingleBar } from 'cli-progress';
import { loadModelConfig } from '../train/config.ts';
import { selectBackend } from '../train/backend.ts';
import { DEFAULT_TRAIN as D, train } from '../train/trainer.ts';
import { CliError } from './errors.ts';
import { dicomwebAuth } from './index.ts';

function int(name: string) {
  return (v: string) => {
    const n = Number(v);
    if (!Number.isInteger(n) || n <= 0) throw new CliError(`${name} must be a positive integer, got "${v}"`);
    return n;
  };
}
function num(name: string, min = 0) {
  return (v: string) => {
    const n = Number(v);
    if (!Number.isFinite(n) || n < min) throw new CliError(`${name} must be a number >= ${min}, got "${v}"`);
    return n;
  };
}

export function registerTrain(program: Command): void {
  program
    .command('train')
    .description('pretrain the dual encoder (MedCLIP: decoupled batches, semantic matching loss)')
    .requiredOption('--config <file>', 'model architecture (configs/tiny.json, configs/base.json)')
    .option('--images <file>', 'image table (CSV): path + 14 label columns, optional report_id (its report: a true pair)')
    .option('--root <dir>', "folder the image paths start from (default: the table's folder)")
    .option('--reports <file>', 'report table (CSV or JSONL): sentences labelled by the rule labeler')
    .option(
      '--from-index <dir>',
      "train on an index bundle's images and reports too, paired by the bundle's links (e.g. one built from a PACS)",
    )
    .option('--index-root <dir>', "with --from-index: folder the bundle's image paths start from (default: the working folder)")
    .option('--dicomweb <url>', 'with --from-index: fetch its DICOMweb images from this server (default: the one the bundle records)')
    .option(
      '--dicomweb-user <user>',
      'DICOMweb Basic Auth user (password from MEDCLIP_DICOMWEB_PASSWORD; MEDCLIP_DICOMWEB_TOKEN for a token)',
    )
    .requiredOption('--out <dir>', 'run folder: checkpoints, tokenizer, log')
    .option('--train-split <name>', 'use rows whose split column equals this', D.trainSplit)
    .option('--val-split <name>', 'validate zero-shot on image rows of this split ("" to skip)', D.valSplit)
    .option('--steps <n>', 'optimizer steps', int('--steps'), D.steps)
    .option('--batch <n>', 'images (and sentences) per step', int('--batch'), D.batch)
    .option('--lr <x>', 'peak learning rate', num('--lr'), D.lr)
    .option('--warmup <n>', 'warmup steps', int('--warmup'), D.warmup)
    .option('--weight-decay <x>', 'AdamW decoupled weight decay', num('--weight-decay'), D.weightDecay)
    .option('--clip <x>', 'gradient clipping (global L2 norm)', num('--clip'), D.clip)
    .option('--loss <name>', 'semantic (MedCLIP) or infonce (CLIP)', D.loss)
    .option(
      '--label-temperature <x>',
      'temperature of the semantic targets (1 = the paper)',
      num('--label-temperature', 1e-3),
      D.labelTemperature,
    )
    .option('--match-rate <x>', 'share of sentences drawn to share a finding with their image', num('--match-rate'), D.matchRate)
    .option('--no-balance-sources', 'sample images uniformly instead of evenly over the source column')
    .option('--balance-findings', 'draw half of the images by finding, so rare findings reach most batches')
    .option(
      '--findings-weight <x>',
      'weight of the auxiliary findings loss (positive vs negative prompt per observation; 0 = off)',
      num('--findings-weight'),
      D.findingsWeight,
    )
    .option(
      '--pair-rate <x>',
      'share of paired images drawn with a sentence of their own report (a true pair)',
      num('--pair-rate'),
      D.pairRate,
    )
    .option(
      '--pair-weight <x>',
      'weight of a true pair on top of the semantic target (0 = sampled only)',
      num('--pair-weight'),
      D.pairWeight,
    )
    .option('--no-prompts', 'do not add the built-in prompt sentences as text-only data')
    .option('--no-augment', 'no image augmentation')
    .option('--eval-every <n>', 'validate and checkpoint every n steps', int('--eval-every'), D.evalEvery)
    .option('--val-classes <list>', 'zero-shot validation classes (comma-separated observations)', D.valClasses.join(','))
    .option('--seed <n>', 'random seed', (v) => Number(v), D.seed)
    .option(
      '--accumulate <n>',
      'average the gradients of n batches per update (a larger effective batch)',
      int('--accumulate'),
      D.accumulate,
    )
    .option('--workers <n>', 'data-parallel replicas on worker threads (one per core is fastest)', int('--workers'), D.workers)
    .option('--backend <name>', 'tensorflow-gpu, tensorflow, wasm, cpu or auto', 'auto')
    .option('--resume', 'continue the run in --out from its latest checkpoint')
    .option('--cache-dir <dir>', 'decoded-image cache (default: <out>/../.cache)')
    .option('--json', 'print a summary as one JSON object (images, sentences, pairs, steps, best)')
    .action(async (opts) => {
      if (!opts.images && !opts.fromIndex) throw new CliError('give --images (an image table) or --from-index (an index bundle), or both');
      if (opts.dicomweb && !opts.fromIndex) throw new CliError('--dicomweb goes with --from-index');
      if (opts.loss !== 'semantic' && opts.loss !== 'infonce') throw new CliError(`--loss must be semantic or infonce, got "${opts.loss}"`);
      const config = await loadModelConfig(opts.config).catch((err: Error) => {
        throw new CliError(err.message);
      });
      const backend = await selectBackend(opts.backend).catch((err: Error) => {
        throw new CliError(err.message);
      });
      console.error(`backend: ${backend}`);
      const bar = new SingleBar({
        format: 'train [{bar}] {value}/{total} | loss {loss} | {pps} pairs/s | ETA {eta_formatted}',
        stream: process.stderr,
        etaBuffer: 50,
        noTTYOutput: true,
        notTTYSchedule: 30000,
      });
      let started = false;
      const result = await train({
        config,
        images: opts.images,
        root: opts.root,
        reports: opts.reports,
        fromIndex: opts.fromIndex,
        indexRoot: opts.indexRoot,
        ...(opts.fromIndex ? { dicomweb: { url: opts.dicomweb, auth: dicomwebAuth(opts.dicomwebUser) } } : {}),
        out: opts.out,
        trainSplit: opts.trainSplit || undefined,
        valSplit: opts.valSplit || undefined,
        steps: opts.steps,
        batch: opts.batch,
        lr: opts.lr,
        warmup: opts.warmup,
        weightDecay: opts.weightDecay,
        clip: opts.clip,
        loss: opts.loss,
        labelTemperature: opts.labelTemperature,
        matchRate: Math.min(1, opts.matchRate),
        balanceSources: opts.balanceSources,
        balanceFindings: !!opts.balanceFindings,
        findingsWeight: opts.findingsWeight,
        prompts: opts.prompts,
        augment: opts.augment,
        evalEvery: opts.evalEvery,
        seed: opts.seed,
        resume: !!opts.resume,
        cacheDir: opts.cacheDir,
        valClasses: String(opts.valClasses)
          .split(',')
          .map((s: string) => s.trim()),
        workers: opts.workers,
        accumulate: opts.accumulate,
        pairRate: Math.min(1, opts.pairRate),
        pairWeight: opts.pairWeight,
        log: (line) => {
          if (started) bar.stop();
          started = false;
          console.error(line);
        },
        onStep: (s) => {
          if (!started) {
            bar.start(s.total, s.step - 1, { loss: '-', pps: '-' });
            started = true;
          }
          bar.update(s.step, { loss: s.loss.toFixed(4), pps: s.pairsPerSecond.toFixed(1) });
        },
      }).finally(() => {
        // stopped on every path: a running bar's timer would keep the process alive after an error
        if (started) bar.stop();
        started = false;
      });
      if (opts.json) {
        const { runDir, best, ...summary } = result;
        console.log(JSON.stringify({ ...summary, runDir, ...(best ? { best: { step: best.step, score: best.score } } : {}) }));
      }
      console.error(
        `done: ${result.steps} steps; best checkpoint ${result.runDir}/checkpoint-best${result.best ? ` (val score ${result.best.score.toFixed(3)} at step ${result.best.step})` : ''}`,
      );
    });
}
