/**
 * Validation during training: zero-shot accuracy of the live weights on the val images with the built-in class
 * prompts (and findings-mode AUC when the run trains the findings head), the number `best` checkpoints are chosen by.
 */
import * as tf from '@tensorflow/tfjs';
import { NUM_OBSERVATIONS, observationIndex } from '../core/labeler/index.ts';
import { samplePrompts, type TextTokenizer } from '../core/model/index.ts';
import { augmentInto } from './augment.ts';
import { tokenizeAll, type ImageSet } from './data.ts';
import type { DualEncoder } from './model.ts';
import { classificationReport, classProbabilities, meanEmbedding, singleClassItems } from '../core/metrics/index.ts';
import { type ResolvedTrainOptions, TrainError } from './options.ts';

export interface ValMetrics {
  step: number;
  /** Mean zero-shot accuracy over sources: the selection score. */
  score: number;
  bySource: Record<string, { accuracy: number; auc?: number; n: number }>;
}

/** Zero-shot validation in tfjs: images labelled exactly one of the classes, per source. */
export function makeValidator(
  model: DualEncoder,
  tokenizer: TextTokenizer,
  images: ImageSet,
  o: ResolvedTrainOptions,
): (step: number) => ValMetrics {
  const classIdx = o.valClasses.map((c) => observationIndex(c));
  const items = singleClassItems(images.labels, images.ids.length, classIdx, NUM_OBSERVATIONS);
  if (items.length === 0) throw new TrainError(`no validation image is labelled exactly one of ${o.valClasses.join(', ')}`);
  const size = model.config.image.size;
  const area = size * size;
  const prompts = o.valClasses.map((c) => samplePrompts(c, o.promptsPerClass, 0));
  const L = model.config.text.maxLength;
  return (step) => {
    const classEmbeds = prompts.map((ps) => {
      const tok = tokenizeAll(tokenizer, ps, L);
      const e = tf.tidy(
        () =>
          model
            .encodeText(tf.tensor2d(tok.ids, [ps.length, L], 'int32'), tf.tensor2d(tok.mask, [ps.length, L], 'int32'))
            .dataSync() as Float32Array,
      );
      const d = model.config.embedDim;
      return meanEmbedding(ps.map((_, i) => e.subarray(i * d, (i + 1) * d)));
    });
    const scale = tf.tidy(() => model.logitScale().dataSync()[0]!);
    const probs: number[][] = [];
    const chunk = 32;
    const buf = new Float32Array(chunk * area);
    for (let start = 0; start < items.length; start += chunk) {
      const part = items.slice(start, start + chunk);
      part.forEach(([img], b) =>
        augmentInto(
          images.pixels.subarray(img * area, (img + 1) * area),
          size,
          buf.subarray(b * area, (b + 1) * area),
          size,
          model.config.image,
          undefined,
        ),
      );
      const emb = tf.tidy(
        () => model.encodeImage(tf.tensor4d(buf.subarray(0, part.length * area), [part.length, size, size, 1])).dataSync() as Float32Array,
      );
      const d = model.config.embedDim;
      part.forEach((_, b) => probs.push(classProbabilities(emb.subarray(b * d, (b + 1) * d), classEmbeds, scale)));
    }
    const bySource: ValMetrics['bySource'] = {};
    const groups = new Map<string, number[]>();
    items.forEach(([img], i) => {
      const s = images.sources[img] || 'all';
      if (!groups.has(s)) groups.set(s, []);
      groups.get(s)!.push(i);
    });
    for (const [source, idx] of groups) {
      const r = classificationReport(
        o.valClasses,
        idx.map((i) => items[i]![1]),
        idx.map((i) => probs[i]!),
      );
      bySource[source] = { accuracy: r.accuracy, auc: r.auc, n: r.n };
    }
    const accs = Object.values(bySource).map((v) => v.accuracy);
    return { step, score: accs.reduce((a, b) => a + b, 0) / accs.length, bySource };
  };
}

export function round(x: number): number {
  return Math.round(x * 1e5) / 1e5;
}
