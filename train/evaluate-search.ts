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
import { findingAgreement, queryFindings } from '../core/search-rank.ts';
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
  weight: number;
  reports: number;
  sentences: number;
  /** Mean P@10 over positive queries; mean purity over negated ones. */
  p10: number;
  negatedPurity: number;
  byKind: Record<string, { queries: number; score: number }>;
  queries: { text: string; kind: string; score: number; corrected?: string }[];
}

export async function readJudgedQueries(file: string): Promise<JudgedQuery[]> {
  const raw = JSON.parse(await readFile(file, 'utf8')) as { queries?: JudgedQuery[] };
  const queries = raw.queries ?? [];
  for (const q of queries) if (!OBSERVATIONS.includes(q.finding) || (q.polarity !== 'positive' && q.polarity !== 'negative')) throw new Error(`${file}: query "${q.text}" needs a known finding and polarity positive|negative`);
  return queries;
}

interface Corpus {
  reports: { id: string; labels: (1 | 0 | -1 | null)[] }[];
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
    reports.push({ id: r.id, labels: r.labels });
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
  const speller = QuerySpeller.fromTexts([...words, ...Object.values(BUILTIN_TEMPLATES).flatMap(expandTemplate), ...Object.values(FINDING_PROMPTS).flatMap((f) => [...f.positive, ...f.negative]), ...OBSERVATIONS]);
  return { reports, sentences: metas.map((m, i) => ({ ...m, embedding: embeddings[i]! })), speller };
}

function rank(corpus: Corpus, query: Float32Array, findings: ReturnType<typeof queryFindings>, weight: number, k: number): number[] {
  const best = new Map<number, number>();
  for (const s of corpus.sentences) {
    const fused = dot(query, s.embedding) + weight * findingAgreement(findings, s.labels);
    if (fused > (best.get(s.report) ?? -Infinity)) best.set(s.report, fused);
  }
  return [...best.entries()].sort((a, b) => b[1] - a[1]).slice(0, k).map(([r]) => r);
}

export async function evaluateSearch(model: MedClipModel, o: { reports: string; reportSplit?: string; queries: JudgedQuery[]; weights: number[] }): Promise<SearchEval[]> {
  const corpus = await buildCorpus(model, o.reports, o.reportSplit);
  const read = o.queries.map((q) => {
    const corrected = corpus.speller.analyse(q.text).corrected;
    return { q, corrected, text: corrected ?? q.text };
  });
  const vectors = await model.embedTexts(read.map((r) => r.text));
  return o.weights.map((weight) => {
    const scored = read.map((r, i) => {
      const top = rank(corpus, vectors[i]!, queryFindings(r.text), weight, 10);
      const fi = OBSERVATIONS.indexOf(r.q.finding);
      const positive = top.filter((t) => corpus.reports[t]!.labels[fi] === 1).length / Math.max(1, top.length);
      return { text: r.q.text, kind: r.q.kind, polarity: r.q.polarity, score: r.q.polarity === 'positive' ? positive : 1 - positive, ...(r.corrected ? { corrected: r.corrected } : {}) };
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
      reports: corpus.reports.length,
      sentences: corpus.sentences.length,
      p10: mean(scored.filter((s) => s.polarity === 'positive').map((s) => s.score)),
      negatedPurity: mean(scored.filter((s) => s.polarity === 'negative').map((s) => s.score)),
      byKind,
      queries: scored.map(({ polarity: _p, ...rest }) => rest),
    };
  });
}
