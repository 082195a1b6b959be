/**
 * One model replica: computes the loss and gradients of a batch and applies averaged updates.
 * Training runs one replica in-process, or one per worker thread (`--workers N`, data parallel: every replica
 * applies the same averaged gradient, so all stay identical). Gradients and BatchNorm statistics travel as flat
 * Float32Arrays in the order of `model.trainable` / the BatchNorm layer order.
 */
import * as tf from '@tensorflow/tfjs';
import { NUM_OBSERVATIONS } from '../core/labeler/index.ts';
import type { ModelConfig } from './config.ts';
import { findingsLoss, infoNceLoss, semanticLoss, similarityLogits, type LossName } from './loss.ts';
import { DualEncoder, type BatchNormUpdate } from './model.ts';
import { AdamW, type AdamWOptions } from './optimizer.ts';

export interface BatchArrays {
  n: number;
  /** [n, size, size, 1] normalised pixels. */
  pixels: Float32Array;
  ids: Int32Array;
  mask: Int32Array;
  imgLabels: Float32Array;
  txtLabels: Float32Array;
  /** Findings loss inputs: [n, 14] 1 where the image's label is known (0 or 1), and the prompt pairs of this step. */
  imgKnown?: Float32Array;
  /** 2 x 14 token rows: one positive prompt per observation, then one negative, in OBSERVATIONS order. */
  promptIds?: Int32Array;
  promptMask?: Int32Array;
  /** [n, n]: 1 where sentence j is from image i's own report (a true pair); absent when the data has no pairs. */
  pairs?: Float32Array;
}

export interface LossOptions {
  loss: LossName;
  labelTemperature: number;
  /** Weight of the auxiliary findings loss (0 = MedCLIP's loss alone). */
  findingsWeight?: number;
  /** Weight of a true pair on top of the semantic target (train/loss.ts `withPairs`); 0 = pairs ignored. */
  pairWeight?: number;
}

export interface StepResult {
  loss: number;
  grads: Float32Array;
  /** Per BatchNorm layer: mean then variance of this batch, concatenated. */
  bnStats: Float32Array;
}

export interface ReplicaInit {
  config: ModelConfig;
  values: Map<string, Float32Array>;
  optimizer: AdamWOptions;
  lossOptions: LossOptions;
}

export class Replica {
  readonly model: DualEncoder;
  readonly optimizer: AdamW;
  private readonly offsets: number[] = [];
  readonly gradSize: number;

  constructor(init: ReplicaInit) {
    this.model = new DualEncoder(init.config, init.values);
    this.optimizer = new AdamW(this.model.variables, this.model.trainable, init.optimizer);
    let o = 0;
    for (const n of this.model.trainable) {
      this.offsets.push(o);
      o += this.model.p(n).size;
    }
    this.gradSize = o;
    this.lossOptions = init.lossOptions;
  }

  private readonly lossOptions: LossOptions;

  step(b: BatchArrays): StepResult {
    const { config } = this.model;
    const size = config.image.size;
    const L = config.text.maxLength;
    const updates: BatchNormUpdate[] = [];
    const weight = this.lossOptions.findingsWeight ?? 0;
    const withFindings = weight > 0 && !!b.promptIds && !!b.promptMask && !!b.imgKnown;
    const P = 2 * NUM_OBSERVATIONS;
    const inputs = tf.tidy(() => ({
      pixels: tf.tensor4d(b.pixels, [b.n, size, size, 1]),
      ids: tf.tensor2d(b.ids, [b.n, L], 'int32'),
      mask: tf.tensor2d(b.mask, [b.n, L], 'int32'),
      imgLabels: tf.tensor2d(b.imgLabels, [b.n, NUM_OBSERVATIONS]),
      txtLabels: tf.tensor2d(b.txtLabels, [b.n, NUM_OBSERVATIONS]),
      ...(b.pairs ? { pairs: tf.tensor2d(b.pairs, [b.n, b.n]) } : {}),
      ...(withFindings
        ? {
            imgKnown: tf.tensor2d(b.imgKnown!, [b.n, NUM_OBSERVATIONS]),
            promptIds: tf.tensor2d(b.promptIds!, [P, L], 'int32'),
            promptMask: tf.tensor2d(b.promptMask!, [P, L], 'int32'),
          }
        : {}),
    }));
    const { value, grads } = tf.variableGrads(
      () => {
        const img = this.model.encodeImage(inputs.pixels, { training: true, updates });
        const txt = this.model.encodeText(inputs.ids, inputs.mask);
        const logits = similarityLogits(img, txt, this.model.logitScale());
        const main =
          this.lossOptions.loss === 'semantic'
            ? semanticLoss(
                logits,
                inputs.imgLabels,
                inputs.txtLabels,
                this.lossOptions.labelTemperature,
                inputs.pairs ? { matrix: inputs.pairs, weight: this.lossOptions.pairWeight ?? 0 } : undefined,
              )
            : infoNceLoss(logits);
        if (!withFindings) return main;
        const prompts = this.model.encodeText(inputs.promptIds!, inputs.promptMask!);
        const pos = tf.slice(prompts, [0, 0], [NUM_OBSERVATIONS, -1]) as tf.Tensor2D;
        const neg = tf.slice(prompts, [NUM_OBSERVATIONS, 0], [NUM_OBSERVATIONS, -1]) as tf.Tensor2D;
        // the scale findings mode uses at inference (the learned logit scale), so P(present) needs no refit at T = 1
        const aux = findingsLoss(img, pos, neg, this.model.logitScale(), inputs.imgLabels, inputs.imgKnown!);
        return tf.add(main, tf.mul(aux, weight)) as tf.Scalar;
      },
      this.model.trainable.map((n) => this.model.p(n)),
    );
    const loss = value.dataSync()[0]!;
    const flat = new Float32Array(this.gradSize);
    this.model.trainable.forEach((n, i) => flat.set(grads[this.model.p(n).name]!.dataSync() as Float32Array, this.offsets[i]!));
    const byName = new Map(updates.map((u) => [u.name, u]));
    const stats: number[] = [];
    for (const name of this.model.batchNormLayers()) {
      const u = byName.get(name)!;
      stats.push(...(u.mean.dataSync() as Float32Array), ...(u.variance.dataSync() as Float32Array));
    }
    tf.dispose([value, ...Object.values(grads), ...Object.values(inputs), ...updates.flatMap((u) => [u.mean, u.variance])]);
    return { loss, grads: flat, bnStats: Float32Array.from(stats) };
  }

  /** Apply an (averaged, already clipped) gradient and BatchNorm statistics. */
  apply(grads: Float32Array, bnStats: Float32Array, lr: number): void {
    const named: Record<string, tf.Tensor> = {};
    this.model.trainable.forEach((n, i) => {
      const v = this.model.p(n);
      named[n] = tf.tensor(grads.subarray(this.offsets[i]!, this.offsets[i]! + v.size), v.shape);
    });
    this.optimizer.apply(named, lr, Number.POSITIVE_INFINITY);
    tf.dispose(Object.values(named));
    const updates: BatchNormUpdate[] = [];
    let o = 0;
    for (const name of this.model.batchNormLayers()) {
      const c = this.model.p(`${name}.mean`).size;
      updates.push({ name, mean: tf.tensor1d(bnStats.subarray(o, o + c)), variance: tf.tensor1d(bnStats.subarray(o + c, o + 2 * c)) });
      o += 2 * c;
    }
    this.model.applyBatchNormUpdates(updates);
  }

  dispose(): void {
    this.model.dispose();
    this.optimizer.dispose();
  }
}

/** The replicas' step results averaged, each weighted by its share of the batch: new arrays, the inputs untouched. */
export function averageResults(results: StepResult[], weights: number[]): { loss: number; grads: Float32Array; bnStats: Float32Array } {
  const total = weights.reduce((a, b) => a + b, 0);
  const grads = new Float32Array(results[0]!.grads.length);
  const bnStats = new Float32Array(results[0]!.bnStats.length);
  let loss = 0;
  results.forEach((r, k) => {
    const w = weights[k]! / total;
    loss += r.loss * w;
    for (let i = 0; i < grads.length; i++) grads[i]! += r.grads[i]! * w;
    for (let i = 0; i < bnStats.length; i++) bnStats[i]! += r.bnStats[i]! * w;
  });
  return { loss, grads, bnStats };
}

/** Scale `grads` in place to global L2 norm <= maxNorm; returns the norm before clipping. */
export function clipGlobalNorm(grads: Float32Array, maxNorm: number): number {
  let sq = 0;
  for (let i = 0; i < grads.length; i++) sq += grads[i]! * grads[i]!;
  const norm = Math.sqrt(sq);
  if (Number.isFinite(norm) && norm > maxNorm) {
    const k = maxNorm / norm;
    for (let i = 0; i < grads.length; i++) grads[i]! *= k;
  }
  return norm;
}
