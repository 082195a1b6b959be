/** Zero-shot metrics shared by training-time validation and `medclip eval`. */

/** Area under the ROC curve for binary labels (1 positive) and scores; ties count half. */
export function rocAuc(labels: number[], scores: number[]): number {
  const idx = scores.map((s, i) => [s, labels[i]!] as const).sort((a, b) => a[0] - b[0]);
  let pos = 0;
  let neg = 0;
  let rankSum = 0;
  let i = 0;
  while (i < idx.length) {
    let j = i;
    while (j < idx.length && idx[j]![0] === idx[i]![0]) j++;
    const avgRank = (i + j + 1) / 2;
    for (let k = i; k < j; k++)
      if (idx[k]![1] === 1) {
        rankSum += avgRank;
        pos++;
      } else neg++;
    i = j;
  }
  if (pos === 0 || neg === 0) return Number.NaN;
  return (rankSum - (pos * (pos + 1)) / 2) / (pos * neg);
}

export interface ClassificationReport {
  n: number;
  accuracy: number;
  /** Binary tasks: AUC of the second class's probability. */
  auc?: number;
  recall: Record<string, number>;
  /** confusion[true][predicted]. */
  confusion: number[][];
}

/** Metrics from true class indices and per-class probabilities. */
export function classificationReport(classes: string[], truth: number[], probs: number[][]): ClassificationReport {
  const k = classes.length;
  const confusion = classes.map(() => new Array<number>(k).fill(0));
  let correct = 0;
  truth.forEach((t, i) => {
    const p = probs[i]!;
    let best = 0;
    for (let c = 1; c < k; c++) if (p[c]! > p[best]!) best = c;
    confusion[t]![best]!++;
    if (best === t) correct++;
  });
  const recall = Object.fromEntries(
    classes.map((c, i) => {
      const row = confusion[i]!;
      const total = row.reduce((a, b) => a + b, 0);
      return [c, total ? row[i]! / total : Number.NaN];
    }),
  );
  const out: ClassificationReport = { n: truth.length, accuracy: truth.length ? correct / truth.length : Number.NaN, recall, confusion };
  if (k === 2)
    out.auc = rocAuc(
      truth,
      probs.map((p) => p[1]!),
    );
  return out;
}

/** Softmax over classes of `scale * cos(image, class)`, and a class's embedding from its prompts': core/util/vectors.ts. */
export { classSoftmax as classProbabilities, meanNormalized as meanEmbedding } from '../util/index.ts';

/** Images labelled exactly one of `classes` (by label index): [image index, class index] pairs. */
export function singleClassItems(labels: Float32Array, count: number, classIndices: number[], width: number): [number, number][] {
  const out: [number, number][] = [];
  for (let i = 0; i < count; i++) {
    const hits = classIndices.flatMap((ci, k) => (labels[i * width + ci]! > 0 ? [k] : []));
    if (hits.length === 1) out.push([i, hits[0]!]);
  }
  return out;
}
