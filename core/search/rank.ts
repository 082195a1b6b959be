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
import { labelSentence, OBSERVATIONS, type Observation } from '../labeler/index.ts';
import type { StoredLabels } from '../bundle/index.ts';

export type Polarity = 'positive' | 'negative' | 'uncertain';

export interface QueryFinding {
  name: Observation;
  polarity: Polarity;
  /** Image queries: whether the model card validates this finding (only validated ones rank and filter). */
  validated?: boolean;
  /** Image queries: the finding's pooled held-out AUC, from the model card. */
  auc?: number;
}

/** What a report hit is ranked and calibrated on. */
export interface RankFeatures {
  /** Cosine of the query and the sentence. */
  dense: number;
  /** Agreement of the sentence's labels with the query's findings, in [-1, 1] (`findingAgreement`). */
  agreement: number;
  /** The same for the whole report's labels (the labeler over all its sentences, stored at build time). */
  reportAgreement: number;
  /** BM25 of the sentence for the query, divided by the query's best (core/bundle/lexical.ts); 0 when not a lexical match. */
  lexical: number;
  /** Agreement of the sentence's modifiers (side, extent, change, location) with the query's, in [-1, 1]; 0 when the
   * query states none (core/labeler/modifiers.ts). */
  modifiers?: number;
}

export interface RankWeights {
  agreement: number;
  reportAgreement: number;
  lexical: number;
  /** Weight of the modifier agreement ("large right effusion": a right-sided, large one first, a left one last). */
  modifiers: number;
  /** Image queries: weight of a sentence's hubness subtracted from its cosine (CSLS-style; `TextMeta.hub`). */
  hub: number;
}

/**
 * Weights of the fused score, tuned on the judged val queries (`medclip eval --task search --tune`, README), not by
 * hand: fused = dense + agreement * a + reportAgreement * r + lexical * l.
 */
export const RANK_WEIGHTS: RankWeights = { agreement: 0.05, reportAgreement: 0.1, lexical: 0.01, modifiers: 0.05, hub: 0.1 };

/** The ranking score of a report's sentence: cosine plus the weighted agreements and lexical match. */
export function fusedScore(f: RankFeatures, w: RankWeights = RANK_WEIGHTS): number {
  return (
    f.dense + w.agreement * f.agreement + w.reportAgreement * f.reportAgreement + w.lexical * f.lexical + w.modifiers * (f.modifiers ?? 0)
  );
}

/**
 * Calibrated relevance of a report hit of a text query: P(relevant) = sigmoid(bias + dense * (cosine - center) +
 * agreement * a + reportAgreement * r + lexical * l + modifiers * m). The modifier weight was chosen on the val
 * modifier queries (samples/queries/modifiers-val.json; P@5 over weights 0, 2, 4, 8: 0.631, 0.769, 0.846, 0.908);
 * the rest is fitted by logistic regression on the judged val queries'
 * first 50 hits (`medclip eval --task search --fit-relevance`; relevant = the report's labels agree with the query).
 */
export const RELEVANCE = {
  bias: -1.2228,
  dense: 115.8408,
  agreement: 2.1037,
  reportAgreement: 2.2197,
  lexical: 3.2675,
  modifiers: 8,
  denseCenter: 0.9935,
};

export function reportRelevance(f: RankFeatures, c: typeof RELEVANCE = RELEVANCE): number {
  const z =
    c.bias +
    c.dense * (f.dense - c.denseCenter) +
    c.agreement * f.agreement +
    c.reportAgreement * f.reportAgreement +
    c.lexical * f.lexical +
    c.modifiers * (f.modifiers ?? 0);
  return 1 / (1 + Math.exp(-z));
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
