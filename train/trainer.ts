/**
 * `medclip train`: the MedCLIP training loop on the decoupled sampler, with validation by zero-shot
 * accuracy, latest/best checkpoints and exact resume (weights, optimizer moments, schedule, RNG).
 */
import * as tf from '@tensorflow/tfjs';
import { appendFile, mkdir, readFile, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { NUM_OBSERVATIONS, OBSERVATIONS, labelReport } from '../core/labeler/index.ts';
import { FINDING_PROMPTS, TextTokenizer, trainWordPiece, BUILTIN_TEMPLATES, expandTemplate } from '../core/model/index.ts';
import { Rng } from '../core/util/index.ts';
import { type Report, reportText } from '../core/tables/index.ts';
import { augmentInto, DEFAULT_AUGMENT } from './augment.ts';
import { checkpointFolder, readTensors } from './checkpoint.ts';
import { tokenizeAll } from './data.ts';
import { pairMatrix } from './pairs.ts';
import { DecoupledSampler } from './sampler.ts';
import { loadTrainingData } from './training-data.ts';
import { DualEncoder, initialValues } from './model.ts';
import { DEFAULT_ADAMW, learningRate } from './optimizer.ts';
import { createReplicas, type OptimizerState } from './parallel.ts';
import { averageResults, clipGlobalNorm, type BatchArrays, type StepResult } from './replica.ts';
import { CHECKPOINT_BEST, CHECKPOINT_LATEST, type RunState, publicOptions, saveCheckpoint } from './run-state.ts';
import { type ValMetrics, makeValidator, round } from './validate.ts';
import { DEFAULT_TRAIN, type ResolvedTrainOptions, TRAIN_DECODE_MARGIN, TrainError, type TrainOptions } from './options.ts';

export { DEFAULT_TRAIN, TRAIN_DECODE_MARGIN, TrainError, type StepInfo, type TrainOptions } from './options.ts';

/** Build the tokenizer vocabulary from the training reports (and prompts), as `core/tokenizer` trains it. */
function buildTokenizer(o: ResolvedTrainOptions, reports: Report[]): TextTokenizer {
  const texts: string[] = [];
  for (const r of reports) texts.push(...labelReport(reportText(r)).sentences.map((s) => s.text));
  if (o.prompts) for (const t of Object.values(BUILTIN_TEMPLATES)) texts.push(...expandTemplate(t));
  if (texts.length === 0) throw new TrainError('no text to build a vocabulary from: give --reports or keep the prompts');
  return new TextTokenizer(trainWordPiece(texts, { vocabSize: o.config.text.vocabSize }));
}

export interface TrainResult {
  steps: number;
  best?: ValMetrics;
  runDir: string;
  /** Images trained on (after skips) and validated on. */
  images: { train: number; val: number; skipped: number };
  sentences: number;
  /** Image rows whose report was found (true pairs), and how they were used (train/pairs.ts). */
  pairs: number;
  pairedWithSentences: number;
  labelsFromReports: number;
  missingReports: number;
  /** With --from-index: the index's images and reports, and the instances fetched from its PACS by this run. */
  index?: { images: number; reports: number; fetched: number };
}

export async function train(options: TrainOptions): Promise<TrainResult> {
  const o: ResolvedTrainOptions = { ...DEFAULT_TRAIN, ...options };
  const log = o.log ?? (() => {});
  const runDir = resolve(o.out);
  await mkdir(runDir, { recursive: true });
  const { config } = o;
  const cacheDir = o.cacheDir ?? join(runDir, '..', '.cache');

  const side = Math.round((config.image.size * TRAIN_DECODE_MARGIN) / 2) * 2;
  const data = await loadTrainingData(o, { trainSide: side, valSide: config.image.size, cacheDir }, log);
  const { trainImages, valImages, sentences, pairing } = data;
  let tokenizer: TextTokenizer;
  const tokFile = join(runDir, 'tokenizer.json');
  if (o.resume && existsSync(tokFile)) tokenizer = await TextTokenizer.load(tokFile);
  else {
    tokenizer = buildTokenizer(o, data.reports);
    await tokenizer.save(tokFile);
  }
  if (tokenizer.vocabSize > config.text.vocabSize)
    throw new TrainError(`tokenizer has ${tokenizer.vocabSize} tokens but the config allows ${config.text.vocabSize}`);
  await writeFile(join(runDir, 'config.json'), JSON.stringify(config, null, 2));

  const tokens = tokenizeAll(tokenizer, sentences.texts, config.text.maxLength);
  log(
    `images ${trainImages.ids.length} train / ${valImages?.ids.length ?? 0} val; sentences ${sentences.texts.length} (${sentences.origin.filter((x) => x === 'prompt').length} prompts)`,
  );

  let values = initialValues(config, o.seed);
  let state: RunState = { step: 0, rng: new Rng(o.seed ^ 0x5eed).getState(), history: [], options: publicOptions(o) };
  let optimizerState: OptimizerState | undefined;
  const latestDir = join(runDir, CHECKPOINT_LATEST);
  if (o.resume) {
    const latest = checkpointFolder(latestDir);
    if (!latest) throw new TrainError(`--resume: no checkpoint in ${runDir}`);
    values = await readTensors(join(latest, 'weights'));
    const moments = await readTensors(join(latest, 'optimizer'));
    state = JSON.parse(await readFile(join(latest, 'state.json'), 'utf8')) as RunState;
    const names = [...moments.keys()].filter((k) => k.endsWith('/m')).map((k) => k.slice(0, -2));
    optimizerState = {
      step: state.step,
      m: new Map(names.map((n) => [n, moments.get(`${n}/m`)!])),
      v: new Map(names.map((n) => [n, moments.get(`${n}/v`)!])),
    };
    log(`resumed at step ${state.step}`);
  }
  const workers = Math.max(1, Math.min(o.workers ?? 1, o.batch));
  const replicas = await createReplicas(workers, tf.getBackend(), {
    config,
    values,
    optimizer: { ...DEFAULT_ADAMW, weightDecay: o.weightDecay },
    lossOptions: { loss: o.loss, labelTemperature: o.labelTemperature, findingsWeight: o.findingsWeight ?? 0, pairWeight: o.pairWeight },
  });
  try {
    if (optimizerState) await Promise.all(replicas.map((r) => r.loadOptimizer(optimizerState!)));
    // Validation and checkpoints read the weights into a model on this thread.
    const evalModel = new DualEncoder(config, values);
    log(
      `model ${config.name}: ${evalModel.parameterCount.toLocaleString('en')} parameters, backend ${tf.getBackend()}, ${workers} replica${workers > 1 ? 's (worker threads)' : ''}`,
    );
    const rng = Rng.fromState(state.rng);
    const sampler = new DecoupledSampler(trainImages, sentences, {
      matchRate: o.loss === 'infonce' ? 1 : o.matchRate,
      balanceSources: o.balanceSources,
      balanceFindings: !!o.balanceFindings,
      identical: o.loss === 'infonce',
      ...(pairing.pairedWithSentences > 0 ? { pairs: pairing.sentencesOf, pairRate: o.pairRate } : {}),
    });
    // true pairs in the loss: the semantic loss only (InfoNCE's diagonal already is its pair)
    const withPairMatrix = pairing.pairedWithSentences > 0 && o.loss === 'semantic';
    const validate = valImages ? makeValidator(evalModel, tokenizer, valImages, o) : undefined;
    const size = config.image.size;
    const area = size * size;
    const L = config.text.maxLength;
    const B = o.batch;
    const stepTimes: number[] = [];

    // Findings loss: every positive and negative prompt of every observation, tokenized once; each step draws one
    // of each per observation (the same pairs for all replicas of the step).
    const findingPrompts =
      (o.findingsWeight ?? 0) > 0
        ? OBSERVATIONS.map((name) => ({
            pos: tokenizeAll(tokenizer, FINDING_PROMPTS[name].positive, L),
            neg: tokenizeAll(tokenizer, FINDING_PROMPTS[name].negative, L),
            np: FINDING_PROMPTS[name].positive.length,
            nn: FINDING_PROMPTS[name].negative.length,
          }))
        : undefined;
    const drawPrompts = (): { ids: Int32Array; mask: Int32Array } | undefined => {
      if (!findingPrompts) return undefined;
      const ids = new Int32Array(2 * NUM_OBSERVATIONS * L);
      const mask = new Int32Array(2 * NUM_OBSERVATIONS * L);
      findingPrompts.forEach((f, k) => {
        const p = rng.int(f.np);
        const q = rng.int(f.nn);
        ids.set(f.pos.ids.subarray(p * L, (p + 1) * L), k * L);
        mask.set(f.pos.mask.subarray(p * L, (p + 1) * L), k * L);
        ids.set(f.neg.ids.subarray(q * L, (q + 1) * L), (NUM_OBSERVATIONS + k) * L);
        mask.set(f.neg.mask.subarray(q * L, (q + 1) * L), (NUM_OBSERVATIONS + k) * L);
      });
      return { ids, mask };
    };

    /** Split a sampled batch over the replicas; each computes its own contrastive loss over its share. */
    const buildParts = (batch: { images: number[]; sentences: number[] }): BatchArrays[] => {
      const parts: BatchArrays[] = [];
      const prompts = drawPrompts();
      for (let w = 0; w < workers; w++) {
        const from = Math.floor((w * B) / workers);
        const to = Math.floor(((w + 1) * B) / workers);
        const n = to - from;
        const part: BatchArrays = {
          n,
          pixels: new Float32Array(n * area),
          ids: new Int32Array(n * L),
          mask: new Int32Array(n * L),
          imgLabels: new Float32Array(n * NUM_OBSERVATIONS),
          txtLabels: new Float32Array(n * NUM_OBSERVATIONS),
          ...(prompts ? { imgKnown: new Float32Array(n * NUM_OBSERVATIONS), promptIds: prompts.ids, promptMask: prompts.mask } : {}),
          ...(withPairMatrix
            ? { pairs: pairMatrix(batch.images.slice(from, to), batch.sentences.slice(from, to), pairing.sentencesOf) }
            : {}),
        };
        for (let b = 0; b < n; b++) {
          const img = batch.images[from + b]!;
          const s = batch.sentences[from + b]!;
          augmentInto(
            trainImages.pixels.subarray(img * side * side, (img + 1) * side * side),
            side,
            part.pixels.subarray(b * area, (b + 1) * area),
            size,
            config.image,
            o.augment ? rng : undefined,
            DEFAULT_AUGMENT,
          );
          part.imgLabels.set(trainImages.labels.subarray(img * NUM_OBSERVATIONS, (img + 1) * NUM_OBSERVATIONS), b * NUM_OBSERVATIONS);
          part.imgKnown?.set(trainImages.known.subarray(img * NUM_OBSERVATIONS, (img + 1) * NUM_OBSERVATIONS), b * NUM_OBSERVATIONS);
          part.ids.set(tokens.ids.subarray(s * L, (s + 1) * L), b * L);
          part.mask.set(tokens.mask.subarray(s * L, (s + 1) * L), b * L);
          part.txtLabels.set(sentences.labels.subarray(s * NUM_OBSERVATIONS, (s + 1) * NUM_OBSERVATIONS), b * NUM_OBSERVATIONS);
        }
        parts.push(part);
      }
      return parts;
    };

    while (state.step < o.steps) {
      const t0 = performance.now();
      // Gradient accumulation: `accumulate` batches of B, averaged, then one update.
      const accumulate = Math.max(1, o.accumulate ?? 1);
      const allResults: StepResult[] = [];
      const allWeights: number[] = [];
      for (let micro = 0; micro < accumulate; micro++) {
        const parts = buildParts(sampler.sample(B, rng));
        const results = await Promise.all(replicas.map((r, w) => r.step(parts[w]!)));
        if (results.some((r) => !Number.isFinite(r.loss)))
          throw new TrainError(
            `loss became ${results.find((r) => !Number.isFinite(r.loss))!.loss} at step ${state.step + 1}; the last good checkpoint is ${checkpointFolder(latestDir) ?? '(none yet)'} (try a lower --lr)`,
          );
        allResults.push(...results);
        allWeights.push(...parts.map((p) => p.n));
      }
      const lr = learningRate(state.step, o.lr, o.warmup, o.steps);
      const avg = averageResults(allResults, allWeights);
      clipGlobalNorm(avg.grads, o.clip);
      await Promise.all(replicas.map((r) => r.apply(avg.grads, avg.bnStats, lr)));
      state.step++;
      stepTimes.push(performance.now() - t0);
      if (stepTimes.length > 20) stepTimes.shift();
      const pairsPerSecond = (B * accumulate * stepTimes.length * 1000) / stepTimes.reduce((a, b) => a + b, 0);
      o.onStep?.({ step: state.step, total: o.steps, loss: avg.loss, lr, pairsPerSecond });
      await appendFile(
        join(runDir, 'log.jsonl'),
        JSON.stringify({
          step: state.step,
          loss: round(avg.loss),
          lr: round(lr),
          pairsPerSecond: round(pairsPerSecond),
          numTensors: tf.memory().numTensors,
        }) + '\n',
      );

      if (state.step % o.evalEvery === 0 || state.step === o.steps) {
        state.rng = rng.getState();
        const snapshot = await replicas[0]!.state();
        evalModel.setValues(snapshot.values);
        if (validate) {
          const metrics = validate(state.step);
          state.history.push(metrics);
          await appendFile(join(runDir, 'log.jsonl'), JSON.stringify({ step: state.step, val: metrics }) + '\n');
          log(
            `step ${state.step}: val score ${metrics.score.toFixed(3)} ${Object.entries(metrics.bySource)
              .map(([k, v]) => `${k} acc ${v.accuracy.toFixed(3)} auc ${v.auc?.toFixed(3)}`)
              .join(', ')}`,
          );
          if (!state.best || metrics.score > state.best.score) {
            state.best = metrics;
            await saveCheckpoint(join(runDir, CHECKPOINT_BEST), snapshot.values, undefined, state);
          }
        } else await saveCheckpoint(join(runDir, CHECKPOINT_BEST), snapshot.values, undefined, state);
        await saveCheckpoint(latestDir, snapshot.values, snapshot.optimizer, state);
      }
    }
    evalModel.dispose();
  } finally {
    await Promise.all(replicas.map((r) => r.close()));
  }
  return {
    steps: state.step,
    best: state.best,
    runDir,
    images: {
      train: trainImages.ids.length,
      val: valImages?.ids.length ?? 0,
      skipped: trainImages.skipped.length + (valImages?.skipped.length ?? 0),
    },
    sentences: sentences.texts.length,
    pairs: pairing.pairs,
    pairedWithSentences: pairing.pairedWithSentences,
    labelsFromReports: pairing.labelsFromReports,
    missingReports: pairing.missingReports,
    ...(data.index ? { index: data.index } : {}),
  };
}
