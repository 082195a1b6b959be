/**
 * Negation-aware ranking of report sentences. A text query is read by the labeler with polarity ("pneumothorax"
 * positive, "no pneumothorax" negative, "possible pneumothorax" uncertain); each candidate sentence's stored labels
 * (1 / 0 / -1, from the same labeler at index time) then agree or disagree with it, and the fused score is
 *
 *   fused = dense cosine + weight * agreement,   agreement in [-1, 1] averaged over the query's findings
 *
 * so for "pneumothorax" a sentence that affirms it outranks one that negates it, "no pneumothorax" prefers
 * negations, and uncertain mentions sit between. The weight is tuned on val queries (`medclip eval --task search
 * --tune`), not by hand; dense scores alone put "No pneumothorax." first for "pneumothorax" (cosine 0.97-1.00 for
 * nearly everything, since the text encoder was never taught polarity).
 */
import { labelSentence } from './labeler/labeler.ts';
import { OBSERVATIONS, type Observation } from './labels.ts';
import type { StoredLabels } from './index.ts';

export type Polarity = 'positive' | 'negative' | 'uncertain';

export interface QueryFinding {
  name: Observation;
  polarity: Polarity;
}

/** Measured on the val query set (`medclip eval --task search --tune`, see README): weight of finding agreement. */
export const AGREEMENT_WEIGHT = 0.05;

/**
 * Calibrated relevance of a report hit of a text query: P(relevant) = sigmoid(bias + dense * (cosine - center) +
 * agreement * agreement), fitted by logistic regression on the judged val queries' top-10 hits
 * (`medclip eval --task search --fit-relevance`; relevant = the report's labels agree with the query's finding).
 */
export const RELEVANCE = { bias: 1.141, dense: 102.41, agreement: -0.6385, reportAgreement: 2.3933, denseCenter: 0.9958 };

export function reportRelevance(dense: number, agreement: number, reportAgreement: number): number {
  const z =
    RELEVANCE.bias +
    RELEVANCE.dense * (dense - RELEVANCE.denseCenter) +
    RELEVANCE.agreement * agreement +
    RELEVANCE.reportAgreement * reportAgreement;
  return 1 / (1 + Math.exp(-z));
}

/** Weight of the whole report's agreement (the labeler over all its sentences), next to the sentence's. */
export const REPORT_AGREEMENT_WEIGHT = 0.05;

/** The ranking score of a report's sentence: cosine plus the weighted agreements. */
export function fusedScore(
  dense: number,
  agreement: number,
  reportAgreement: number,
  weight = AGREEMENT_WEIGHT,
  reportWeight = REPORT_AGREEMENT_WEIGHT,
): number {
  return dense + weight * agreement + reportWeight * reportAgreement;
}

const VALUE: Record<Polarity, number> = { positive: 1, uncertain: 0.5, negative: 0 };
const polarityOf = (v: 1 | 0 | -1): Polarity => (v === 1 ? 'positive' : v === 0 ? 'negative' : 'uncertain');

/**
 * The findings a query mentions, with polarity. "No Finding" is the labeler's derived label: it is a query finding
 * only when nothing specific is mentioned ("normal chest", "no acute disease").
 */
export function queryFindings(text: string): QueryFinding[] {
  const row = labelSentence(text);
  const out: QueryFinding[] = [];
  row.forEach((v, i) => {
    if (v !== null && OBSERVATIONS[i] !== 'No Finding') out.push({ name: OBSERVATIONS[i]!, polarity: polarityOf(v) });
  });
  if (out.length === 0 && row[0] === 1) out.push({ name: 'No Finding', polarity: 'positive' });
  return out;
}

/**
 * How far a sentence's labels agree with the query: per query finding, +1 same polarity, -1 opposite (affirmed vs
 * negated), 0 when one side is uncertain or the sentence does not mention it; averaged over the query's findings.
 */
export function findingAgreement(query: QueryFinding[], labels: StoredLabels): number {
  if (query.length === 0) return 0;
  let sum = 0;
  for (const q of query) {
    const v = labels[q.name];
    if (v === undefined) continue;
    sum += 1 - 2 * Math.abs(VALUE[q.polarity] - VALUE[polarityOf(v)]);
  }
  return sum / query.length;
}

/** The findings of `query` that a sentence states with the same polarity (what a hit "matched"). */
export function agreeingFindings(query: QueryFinding[], labels: StoredLabels): string[] {
  return query.filter((q) => labels[q.name] !== undefined && polarityOf(labels[q.name]!) === q.polarity).map((q) => q.name);
}
