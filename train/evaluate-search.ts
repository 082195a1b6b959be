/**
 * `medclip eval --task search`: text -> reports on a judged query set (`samples/queries/search-val.json`), ranked
 * exactly as the API ranks them (core/query-terms spelling, core/search-rank polarity agreement fused with the dense
 * score, best sentence per report), over every sentence of the given reports (exact scores, no HNSW error).
 * Metrics: P@10 of positive queries by report labels; negated-query purity (share of the top 10 reports not
 * labelled positive for the negated finding); both per query kind. `tune` sweeps the agreement weight.
 */
import { readFile } from 'node:fs/promises';
import { labelReport } from '../core/labeler/labeler.ts';
import { OBSERVATIONS, type Observation } from '../core/labels.ts';
import { dot, type MedClipModel } from '../core/model.ts';
import { QuerySpeller } from '../core/query-terms.ts';
import { readReports, reportText } from '../core/reports.ts';
import { findingAgreement, fusedScore, queryFindings, reportRelevance } from '../core/search-rank.ts';
import { BUILTIN_TEMPLATES, expandTemplate } from '../core/prompts.ts';
import { FINDING_PROMPTS } from '../core/findings.ts';
import type { StoredLabels } from '../core/index.ts';

export interface JudgedQuery {
  kind: string;
  text: string;
  finding: Observation;
  polarity: 'positive' | 'negative';
}

export interface SearchEval {
  /** Sentence agreement weight and whole-report agreement weight. */
  weight: number;
  reportWeight: number;
  reports: number;
  sentences: number;
  /** Mean P@10 over positive queries; mean purity over negated ones. */
  p10: number;
  negatedPurity: number;
  /** Mean calibrated `relevance` of relevant and of irrelevant hits in the top 10 (core/search-rank.ts). */
  relevance: { relevant: number; irrelevant: number; gap: number };
  /** Every top-10 hit as (dense, agreement, relevant): what `fitRelevance` learns from. */
  judged: { dense: number; agreement: number; reportAgreement: number; relevant: boolean }[];
  byKind: Record<string, { queries: number; score: number }>;
  queries: { text: string; kind: string; score: number; corrected?: string }[];
}

export async function readJudgedQueries(file: string): Promise<JudgedQuery[]> {
  const raw = JSON.parse(await readFile(file, 'utf8')) as { queries?: JudgedQuery[] };
  const queries = raw.queries ?? [];
  for (const q of queries)
    if (!OBSERVATIONS.includes(q.finding) || (q.polarity !== 'positive' && q.polarity !== 'negative'))
      throw new Error(`${file}: query "${q.text}" needs a known finding and polarity positive|negative`);
  return queries;
}

interface Corpus {
  reports: { id: string; labels: (1 | 0 | -1 | null)[]; labeler: StoredLabels }[];
  sentences: { report: number; labels: StoredLabels; embedding: Float32Array }[];
  speller: QuerySpeller;
}

async function buildCorpus(model: MedClipModel, reportsFile: string, split: string | undefined): Promise<Corpus> {
  const reports: Corpus['reports'] = [];
  const texts: string[] = [];
  const metas: { report: number; labels: StoredLabels }[] = [];
  const words: string[] = [];
  for await (const r of readReports(reportsFile, { split })) {
    if (!r.labels) throw new Error(`${reportsFile}: --task search needs the 14 label columns to judge hits`);
    const labelled = labelReport(reportText(r));
    if (!labelled.sentences.length) continue;
    const labeler: StoredLabels = {};
    labelled.labels.forEach((v, i) => {
      if (v !== null) labeler[OBSERVATIONS[i]!] = v;
    });
    reports.push({ id: r.id, labels: r.labels, labeler });
    words.push(...Object.values(r.text));
    for (const s of labelled.sentences) {
      texts.push(s.text);
      const labels: StoredLabels = {};
      s.labels.forEach((v, i) => {
        if (v !== null) labels[OBSERVATIONS[i]!] = v;
      });
      metas.push({ report: reports.length - 1, labels });
    }
  }
  const embeddings = await model.embedTexts(texts);
  const speller = QuerySpeller.fromTexts([
    ...words,
    ...Object.values(BUILTIN_TEMPLATES).flatMap(expandTemplate),
    ...Object.values(FINDING_PROMPTS).flatMap((f) => [...f.positive, ...f.negative]),
    ...OBSERVATIONS,
  ]);
  return { reports, sentences: metas.map((m, i) => ({ ...m, embedding: embeddings[i]! })), speller };
}

/** Top-k reports by their best sentence's fused score, with that sentence's dense score and agreement. */
function rank(
  corpus: Corpus,
  query: Float32Array,
  findings: ReturnType<typeof queryFindings>,
  weight: number,
  reportWeight: number,
  k: number,
): { report: number; dense: number; agreement: number; reportAgreement: number }[] {
  const best = new Map<number, { fused: number; dense: number; agreement: number; reportAgreement: number }>();
  for (const s of corpus.sentences) {
    const dense = dot(query, s.embedding);
    const agreement = findingAgreement(findings, s.labels);
    const reportAgreement = findingAgreement(findings, corpus.reports[s.report]!.labeler);
    const fused = fusedScore(dense, agreement, reportAgreement, weight, reportWeight);
    if (fused > (best.get(s.report)?.fused ?? -Infinity)) best.set(s.report, { fused, dense, agreement, reportAgreement });
  }
  return [...best.entries()]
    .sort((a, b) => b[1].fused - a[1].fused)
    .slice(0, k)
    .map(([report, v]) => ({ report, ...v }));
}

export async function evaluateSearch(
  model: MedClipModel,
  o: { reports: string; reportSplit?: string; queries: JudgedQuery[]; weights: [number, number][] },
): Promise<SearchEval[]> {
  const corpus = await buildCorpus(model, o.reports, o.reportSplit);
  const read = o.queries.map((q) => {
    const corrected = corpus.speller.analyse(q.text).corrected;
    return { q, corrected, text: corrected ?? q.text };
  });
  const vectors = await model.embedTexts(read.map((r) => r.text));
  return o.weights.map(([weight, reportWeight]) => {
    const judged: SearchEval['judged'] = [];
    const scored = read.map((r, i) => {
      const top = rank(corpus, vectors[i]!, queryFindings(r.text), weight, reportWeight, 10);
      const fi = OBSERVATIONS.indexOf(r.q.finding);
      for (const t of top)
        judged.push({
          dense: t.dense,
          agreement: t.agreement,
          reportAgreement: t.reportAgreement,
          relevant: (corpus.reports[t.report]!.labels[fi] === 1) === (r.q.polarity === 'positive'),
        });
      const positive = top.filter((t) => corpus.reports[t.report]!.labels[fi] === 1).length / Math.max(1, top.length);
      return {
        text: r.q.text,
        kind: r.q.kind,
        polarity: r.q.polarity,
        score: r.q.polarity === 'positive' ? positive : 1 - positive,
        ...(r.corrected ? { corrected: r.corrected } : {}),
      };
    });
    const mean = (xs: number[]) => (xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : NaN);
    const byKind: SearchEval['byKind'] = {};
    for (const s of scored) {
      byKind[s.kind] ??= { queries: 0, score: 0 };
      byKind[s.kind]!.queries++;
      byKind[s.kind]!.score += s.score;
    }
    for (const v of Object.values(byKind)) v.score /= v.queries;
    return {
      weight,
      reportWeight,
      reports: corpus.reports.length,
      sentences: corpus.sentences.length,
      p10: mean(scored.filter((s) => s.polarity === 'positive').map((s) => s.score)),
      negatedPurity: mean(scored.filter((s) => s.polarity === 'negative').map((s) => s.score)),
      relevance: (() => {
        const rel = mean(judged.filter((j) => j.relevant).map((j) => reportRelevance(j.dense, j.agreement, j.reportAgreement)));
        const irr = mean(judged.filter((j) => !j.relevant).map((j) => reportRelevance(j.dense, j.agreement, j.reportAgreement)));
        return { relevant: rel, irrelevant: irr, gap: rel - irr };
      })(),
      judged,
      byKind,
      queries: scored.map(({ polarity: _p, ...rest }) => rest),
    };
  });
}

/**
 * Logistic regression of relevance on (dense cosine, agreement), by Newton's method on the judged top-10 hits:
 * the coefficients `reportRelevance` uses. Features are centred on the dense mean so the fit is well conditioned.
 */
export function fitRelevance(judged: SearchEval['judged']): {
  bias: number;
  dense: number;
  agreement: number;
  reportAgreement: number;
  denseCenter: number;
} {
  const denseCenter = judged.reduce((s, j) => s + j.dense, 0) / Math.max(1, judged.length);
  const X = judged.map((j) => [1, (j.dense - denseCenter) * 100, j.agreement, j.reportAgreement]);
  const y = judged.map((j) => (j.relevant ? 1 : 0));
  const n = 4;
  let w = new Array<number>(n).fill(0);
  for (let it = 0; it < 50; it++) {
    const g = new Array<number>(n).fill(0);
    const H = Array.from({ length: n }, () => new Array<number>(n).fill(0));
    X.forEach((x, i) => {
      const p = 1 / (1 + Math.exp(-x.reduce((s, v, a) => s + v * w[a]!, 0)));
      for (let a = 0; a < n; a++) {
        g[a]! += (p - y[i]!) * x[a]!;
        for (let b = 0; b < n; b++) H[a]![b]! += p * (1 - p) * x[a]! * x[b]!;
      }
    });
    for (let a = 0; a < n; a++) H[a]![a]! += 1e-3; // a touch of ridge: separable data stays finite
    const step = solve(H, g);
    w = w.map((v, a) => v - step[a]!);
  }
  return { bias: w[0]!, dense: w[1]! * 100, agreement: w[2]!, reportAgreement: w[3]!, denseCenter };
}

/** Gaussian elimination with partial pivoting (the 4x4 Newton step). */
function solve(A: number[][], b: number[]): number[] {
  const n = b.length;
  const m = A.map((row, i) => [...row, b[i]!]);
  for (let c = 0; c < n; c++) {
    let p = c;
    for (let r = c + 1; r < n; r++) if (Math.abs(m[r]![c]!) > Math.abs(m[p]![c]!)) p = r;
    [m[c], m[p]] = [m[p]!, m[c]!];
    for (let r = 0; r < n; r++) {
      if (r === c) continue;
      const f = m[r]![c]! / m[c]![c]!;
      for (let k = c; k <= n; k++) m[r]![k]! -= f * m[c]![k]!;
    }
  }
  return m.map((row, i) => row[n]! / row[i]!);
}
