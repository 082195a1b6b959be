/**
 * Compare predicted report-level labels with reference labels: per-class precision / recall / F1 / support over
 * positives, and micro-F1 pooled over all classes. Rows where the reference value is unknown are skipped.
 */
import { OBSERVATIONS, type LabelRow, type LabelValue, type Observation } from './labels.ts';

export interface ClassScores {
  precision: number;
  recall: number;
  f1: number;
  /** Reference positives. */
  support: number;
  tp: number;
  fp: number;
  fn: number;
}

export interface LabelerEvaluation {
  microF1: number;
  microPrecision: number;
  microRecall: number;
  n: number;
  perClass: Record<Observation, ClassScores>;
}

/** How a predicted uncertain (-1) counts against a binary reference. */
export type UncertainAs = 'positive' | 'negative';

const ratio = (a: number, b: number) => (b === 0 ? 0 : a / b);
const f1 = (p: number, r: number) => (p + r === 0 ? 0 : (2 * p * r) / (p + r));

export function evaluateLabels(
  pairs: Iterable<{ predicted: LabelRow; reference: LabelRow }>,
  uncertainAs: UncertainAs = 'positive',
): LabelerEvaluation {
  const counts = OBSERVATIONS.map(() => ({ tp: 0, fp: 0, fn: 0 }));
  let n = 0;
  const isPositive = (v: LabelValue) => v === 1 || (v === -1 && uncertainAs === 'positive');
  for (const { predicted, reference } of pairs) {
    n++;
    OBSERVATIONS.forEach((_, i) => {
      const ref = reference[i];
      if (ref === null || ref === undefined) return;
      const truth = ref === 1;
      const pred = isPositive(predicted[i] ?? null);
      const c = counts[i]!;
      if (truth && pred) c.tp++;
      else if (!truth && pred) c.fp++;
      else if (truth && !pred) c.fn++;
    });
  }
  const perClass = {} as Record<Observation, ClassScores>;
  let tp = 0;
  let fp = 0;
  let fn = 0;
  OBSERVATIONS.forEach((name, i) => {
    const c = counts[i]!;
    tp += c.tp;
    fp += c.fp;
    fn += c.fn;
    const precision = ratio(c.tp, c.tp + c.fp);
    const recall = ratio(c.tp, c.tp + c.fn);
    perClass[name] = { precision, recall, f1: f1(precision, recall), support: c.tp + c.fn, ...c };
  });
  const microPrecision = ratio(tp, tp + fp);
  const microRecall = ratio(tp, tp + fn);
  return { microF1: f1(microPrecision, microRecall), microPrecision, microRecall, n, perClass };
}

/** A fixed-width table for people. */
export function formatEvaluation(e: LabelerEvaluation): string {
  const pad = (s: string, n: number) => s.padEnd(n);
  const num = (x: number) => x.toFixed(3).padStart(9);
  const lines = [`${pad('observation', 28)}${'precision'.padStart(9)}${'recall'.padStart(9)}${'F1'.padStart(9)}${'support'.padStart(9)}`];
  for (const name of OBSERVATIONS) {
    const c = e.perClass[name];
    lines.push(`${pad(name, 28)}${num(c.precision)}${num(c.recall)}${num(c.f1)}${String(c.support).padStart(9)}`);
  }
  lines.push(
    `${pad('micro (positives)', 28)}${num(e.microPrecision)}${num(e.microRecall)}${num(e.microF1)}${String(Object.values(e.perClass).reduce((s, c) => s + c.support, 0)).padStart(9)}`,
  );
  lines.push(`reports: ${e.n}`);
  return lines.join('\n');
}
