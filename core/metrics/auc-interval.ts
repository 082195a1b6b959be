/**
 * ROC AUC with a 95% bootstrap interval: positives and negatives resampled with replacement separately (stratified,
 * so every resample has both classes), the interval read from the percentiles of the resampled AUCs. Seeded: the same
 * data gives the same interval.
 *
 *   aucInterval([1, 0, 1, 0], [0.9, 0.2, 0.6, 0.4]);   // { auc: 1, low: 1, high: 1, positives: 2, negatives: 2 }
 */
import { Rng } from '../util/index.ts';
import { rocAuc } from './zeroshot.ts';

export interface AucInterval {
  auc: number;
  low: number;
  high: number;
  positives: number;
  negatives: number;
}

export function aucInterval(
  labels: readonly number[],
  scores: readonly number[],
  o: { resamples?: number; seed?: number; level?: number } = {},
): AucInterval | undefined {
  const pos = scores.filter((_, i) => labels[i] === 1);
  const neg = scores.filter((_, i) => labels[i] !== 1);
  if (pos.length === 0 || neg.length === 0) return undefined;
  const auc = rocAuc([...labels], [...scores]);
  const rng = new Rng(o.seed ?? 1);
  const resamples = o.resamples ?? 2000;
  const truth = [...pos.map(() => 1), ...neg.map(() => 0)];
  const draws: number[] = [];
  const sample = new Array<number>(truth.length);
  for (let r = 0; r < resamples; r++) {
    for (let i = 0; i < pos.length; i++) sample[i] = pos[rng.int(pos.length)]!;
    for (let i = 0; i < neg.length; i++) sample[pos.length + i] = neg[rng.int(neg.length)]!;
    draws.push(rocAuc(truth, sample));
  }
  draws.sort((a, b) => a - b);
  const tail = (1 - (o.level ?? 0.95)) / 2;
  const at = (q: number) => draws[Math.min(draws.length - 1, Math.max(0, Math.floor(q * draws.length)))]!;
  return { auc, low: at(tail), high: at(1 - tail), positives: pos.length, negatives: neg.length };
}
