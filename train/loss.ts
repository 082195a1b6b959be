/**
 * Contrastive losses over a batch of B images and B sentences.
 *
 * `semantic` (MedCLIP): logits = scale * img @ txt^T; the target of row i is softmax_j(label_img_i . label_txt_j)
 * (and column-wise for the text side), so sentences describing the same findings as an image are positives
 * rather than false negatives. `infonce` (CLIP): one-hot targets on the diagonal.
 */
import * as tf from '@tensorflow/tfjs';
import { matMul2d } from './ops.ts';

export type LossName = 'semantic' | 'infonce';

/** Soft cross-entropy -sum(target * log_softmax(logits)) / rows. */
export function softCrossEntropy(logits: tf.Tensor2D, targets: tf.Tensor2D): tf.Scalar {
  return tf.div(tf.neg(tf.sum(tf.mul(targets, tf.logSoftmax(logits)))), logits.shape[0]) as tf.Scalar;
}

/** scale * img @ txt^T. */
export function similarityLogits(img: tf.Tensor2D, txt: tf.Tensor2D, scale: tf.Scalar | number): tf.Tensor2D {
  return tf.mul(matMul2d(img, tf.transpose(txt)), scale) as tf.Tensor2D;
}

/**
 * Semantic matching targets: row-wise softmax of label similarity, divided by `temperature` (1 = MedCLIP).
 * Returns [image->text targets, text->image targets].
 */
export function semanticTargets(imgLabels: tf.Tensor2D, txtLabels: tf.Tensor2D, temperature = 1): [tf.Tensor2D, tf.Tensor2D] {
  const sim = tf.div(tf.matMul(imgLabels, tf.transpose(txtLabels)), temperature) as tf.Tensor2D;
  return [tf.softmax(sim), tf.softmax(tf.transpose(sim))];
}

/**
 * True pairs on top of the semantic targets (MedCLIP's paired + unpaired setting). `pairs` is [B, B] with 1 where
 * sentence j comes from image i's own report. Each row's target becomes
 *   T_i = (S_i + w * P_i / max(1, |P_i|)) / (1 + w * [|P_i| > 0])
 * where S_i is the semantic target row and |P_i| the number of the row's true pairs: a row with a true pair puts at
 * least w / (1 + w) of its mass on it (half at w = 1), a row without one keeps its semantic target, and every row still
 * sums to 1. The text side uses P^T the same way.
 */
export function withPairs(targets: tf.Tensor2D, pairs: tf.Tensor2D, weight: number): tf.Tensor2D {
  const count = tf.sum(pairs, 1, true);
  const has = tf.cast(tf.greater(count, 0), 'float32');
  const share = tf.div(pairs, tf.maximum(count, 1));
  return tf.div(tf.add(targets, tf.mul(share, weight)), tf.add(1, tf.mul(has, weight))) as tf.Tensor2D;
}

/**
 * MedCLIP's semantic matching loss: L = (CE(logits, T_img) + CE(logits^T, T_txt)) / 2 with the soft targets of
 * `semanticTargets`; with `pairs`, the targets of `withPairs` (a true pair counts as a positive on top of the labels).
 */
export function semanticLoss(
  logits: tf.Tensor2D,
  imgLabels: tf.Tensor2D,
  txtLabels: tf.Tensor2D,
  temperature = 1,
  pairs?: { matrix: tf.Tensor2D; weight: number },
): tf.Scalar {
  let [ti, tt] = semanticTargets(imgLabels, txtLabels, temperature);
  if (pairs && pairs.weight > 0) {
    ti = withPairs(ti, pairs.matrix, pairs.weight);
    tt = withPairs(tt, tf.transpose(pairs.matrix), pairs.weight);
  }
  return tf.div(tf.add(softCrossEntropy(logits, ti), softCrossEntropy(tf.transpose(logits), tt)), 2) as tf.Scalar;
}

/** CLIP's InfoNCE: row i's positive is column i. */
export function infoNceLoss(logits: tf.Tensor2D): tf.Scalar {
  const eye = tf.eye(logits.shape[0]) as tf.Tensor2D;
  return tf.div(tf.add(softCrossEntropy(logits, eye), softCrossEntropy(tf.transpose(logits), eye)), 2) as tf.Scalar;
}

/**
 * Auxiliary findings loss (this project's addition to MedCLIP): for every image and observation, the logit
 * scale * img . (pos_f - neg_f), where pos_f / neg_f embed a positive and a negative prompt of that observation
 * ("small left pleural effusion" / "no pleural effusion") with the text tower being trained, is pushed by binary
 * cross-entropy towards the image's label. It trains exactly what findings mode reads at inference. `known` masks
 * labels that are unknown or uncertain (the stated policy: they carry no signal here).
 * Written with relu/abs/exp/log only (stable: relu(x) - x*y + log(1 + exp(-|x|))), which every backend differentiates.
 */
export function findingsLoss(
  img: tf.Tensor2D,
  pos: tf.Tensor2D,
  neg: tf.Tensor2D,
  scale: tf.Scalar | number,
  labels: tf.Tensor2D,
  known: tf.Tensor2D,
): tf.Scalar {
  const logits = tf.mul(matMul2d(img, tf.transpose(tf.sub(pos, neg))), scale) as tf.Tensor2D;
  const perItem = tf.add(tf.sub(tf.relu(logits), tf.mul(logits, labels)), tf.log(tf.add(1, tf.exp(tf.neg(tf.abs(logits))))));
  return tf.div(tf.sum(tf.mul(perItem, known)), tf.maximum(tf.sum(known), 1)) as tf.Scalar;
}
