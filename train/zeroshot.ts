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

/** Softmax over classes of `scale * cos(image, class)` for L2-normalised embeddings. */
export function classProbabilities(image: Float32Array, classEmbeds: Float32Array[], scale: number): number[] {
  const logits = classEmbeds.map((c) => {
    let s = 0;
    for (let i = 0; i < c.length; i++) s += c[i]! * image[i]!;
    return s * scale;
  });
  const max = Math.max(...logits);
  const e = logits.map((l) => Math.exp(l - max));
  const z = e.reduce((a, b) => a + b, 0);
  return e.map((v) => v / z);
}

/** Mean of prompt embeddings, re-normalised: one embedding per class. */
export function meanEmbedding(rows: Float32Array[]): Float32Array {
  const dim = rows[0]!.length;
  const out = new Float32Array(dim);
  for (const r of rows) for (let i = 0; i < dim; i++) out[i]! += r[i]!;
  let norm = 0;
  for (let i = 0; i < dim; i++) norm += out[i]! * out[i]!;
  norm = Math.sqrt(norm) || 1;
  for (let i = 0; i < dim; i++) out[i]! /= norm;
  return out;
}

/** Images labelled exactly one of `classes` (by label index): [image index, class index] pairs. */
export function singleClassItems(labels: Float32Array, count: number, classIndices: number[], width: number): [number, number][] {
  const out: [number, number][] = [];
  for (let i = 0; i < count; i++) {
    const hits = classIndices.flatMap((ci, k) => (labels[i * width + ci]! > 0 ? [k] : []));
    if (hits.length === 1) out.push([i, hits[0]!]);
  }
  return out;
}
