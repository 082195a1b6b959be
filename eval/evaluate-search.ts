/**
 * `medclip eval --task search`: the judged query set (`samples/queries/search-val.json`) against an index bundle
 * built from the given reports (and images), searched by the same `ReportSearch` the API and `medclip search` use:
 * spelling correction, hybrid candidates (HNSW + BM25), fused ranking, collapsed duplicates. Metrics:
 * - text -> reports P@10 of positive queries by the reports' own (MeSH-derived) labels, per query kind;
 * - negated-query purity: share of the top 10 reports not labelled positive for the negated finding;
 * - relevance: mean calibrated `relevance` of relevant and of irrelevant hits in the top 10, and their gap;
 * - with images: text -> images P@10 (one `finding` query per finding with >= 5 positive images) and the hub share
 *   of image -> reports (share of image queries whose top 5 holds one of the 5 most returned reports).
 * `weights` lists the fusion weights to try (`--tune` sweeps a grid).
 */
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { IndexBundle } from '../core/bundle/index.ts';
import { OBSERVATIONS, type Observation } from '../core/labeler/index.ts';
import type { MedClipModel } from '../core/model/index.ts';
import {
  QuerySpeller,
  ReportSearch,
  type RELEVANCE,
  queryFindings,
  reportRelevance,
  type RankFeatures,
  type RankWeights,
  imageFindings,
} from '../core/search/index.ts';
import { readReports } from '../core/tables/index.ts';
import { buildIndex } from '../index-builder/build.ts';

export interface JudgedQuery {
  kind: string;
  text: string;
  finding: Observation;
  polarity: 'positive' | 'negative';
}

export interface SearchEval {
  weights: RankWeights;
  reports: number;
  sentences: number;
  /** Mean P@10 over positive queries; mean purity over negated ones. */
  p10: number;
  negatedPurity: number;
  /** Mean calibrated `relevance` of relevant and of irrelevant hits in the top 10 (core/search/rank.ts). */
  relevance: { relevant: number; irrelevant: number; gap: number };
  /** Every top-10 hit's features and whether it is relevant: what `fitRelevance` learns from. */
  judged: (RankFeatures & { relevant: boolean })[];
  byKind: Record<string, { queries: number; score: number }>;
  queries: { text: string; kind: string; score: number; corrected?: string }[];
  /** With images: text -> images P@10 per finding (dense search, as the API) and its mean. */
  textToImages?: { p10: number; byFinding: Record<string, { p10: number; positives: number }> };
  /** With images: share of image queries whose top 5 reports hold one of the 5 most returned ones, and the share of
   * top-5 reports that share a positive finding with the image (labels). */
  hubShare?: { queries: number; share: number; findingMatch: number; hubs: string[] };
}

export async function readJudgedQueries(file: string): Promise<JudgedQuery[]> {
  const raw = JSON.parse(await readFile(file, 'utf8')) as { queries?: JudgedQuery[] };
  const queries = raw.queries ?? [];
  for (const q of queries)
    if (!OBSERVATIONS.includes(q.finding) || (q.polarity !== 'positive' && q.polarity !== 'negative'))
      throw new Error(`${file}: query "${q.text}" needs a known finding and polarity positive|negative`);
  return queries;
}

export interface SearchEvalOptions {
  reports: string;
  reportSplit?: string;
  queries: JudgedQuery[];
  weights: RankWeights[];
  /** Also judge text -> images and image -> report hubs on these images. */
  images?: { table: string; root?: string; split?: string };
  /** Relevance coefficients to report with (default: the shipped ones). */
  relevance?: typeof RELEVANCE;
}

const mean = (xs: number[]) => (xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : Number.NaN);

export async function evaluateSearch(model: MedClipModel, o: SearchEvalOptions): Promise<SearchEval[]> {
  const dir = await mkdtemp(join(tmpdir(), 'medclip-search-eval-'));
  try {
    await buildIndex({
      model: model.dir,
      reports: o.reports,
      reportSplit: o.reportSplit,
      ...(o.images ? { images: o.images.table, root: o.images.root, split: o.images.split } : {}),
      out: join(dir, 'index'),
    });
    const index = await IndexBundle.load(join(dir, 'index'), { model });
    // the reports' own labels judge the hits (the bundle stores the labeler's)
    const gold = new Map<string, (1 | 0 | -1 | null)[]>();
    for await (const r of readReports(o.reports, { split: o.reportSplit })) {
      if (!r.labels) throw new Error(`${o.reports}: --task search needs the 14 label columns to judge hits`);
      gold.set(r.id, r.labels);
    }
    const speller = QuerySpeller.forIndex(index);
    const read = o.queries.map((q) => {
      const corrected = speller.analyse(q.text).corrected;
      return { q, corrected, text: corrected ?? q.text };
    });
    const vectors = await model.embedTexts(read.map((r) => r.text));
    const images = new Map<RankWeights, Awaited<ReturnType<typeof judgeImages>>>();
    if (o.images) for (const w of o.weights) images.set(w, await judgeImages(model, index, read, vectors, w));
    return o.weights.map((weights) => {
      const search = new ReportSearch(index, weights, o.relevance);
      const judged: SearchEval['judged'] = [];
      const scored = read.map((r, i) => {
        const findings = queryFindings(r.text);
        const top = search.search(vectors[i]!, { k: 10, findings, text: r.text, relevance: true });
        const fi = OBSERVATIONS.indexOf(r.q.finding);
        const positive = top.map((t) => gold.get(t.report.id)?.[fi] === 1);
        // relevance is given (and judged) only where the API gives it: queries that name a finding
        if (findings.length) top.forEach((t, n) => judged.push({ ...t.features, relevant: positive[n] === (r.q.polarity === 'positive') }));
        const share = positive.filter(Boolean).length / Math.max(1, top.length);
        return {
          text: r.q.text,
          kind: r.q.kind,
          polarity: r.q.polarity,
          score: r.q.polarity === 'positive' ? share : 1 - share,
          ...(r.corrected ? { corrected: r.corrected } : {}),
        };
      });
      const byKind: SearchEval['byKind'] = {};
      for (const s of scored) {
        byKind[s.kind] ??= { queries: 0, score: 0 };
        byKind[s.kind]!.queries++;
        byKind[s.kind]!.score += s.score;
      }
      for (const v of Object.values(byKind)) v.score /= v.queries;
      const rel = mean(judged.filter((j) => j.relevant).map((j) => reportRelevance(j, o.relevance)));
      const irr = mean(judged.filter((j) => !j.relevant).map((j) => reportRelevance(j, o.relevance)));
      return {
        weights,
        reports: index.reports.size,
        sentences: index.count('reports'),
        p10: mean(scored.filter((s) => s.polarity === 'positive').map((s) => s.score)),
        negatedPurity: mean(scored.filter((s) => s.polarity === 'negative').map((s) => s.score)),
        relevance: { relevant: rel, irrelevant: irr, gap: rel - irr },
        judged,
        byKind,
        queries: scored.map(({ polarity: _p, ...rest }) => rest),
        ...images.get(weights),
      };
    });
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** Text -> images P@10 (first `finding` query of each finding with >= 5 positive images) and image -> report hubs
 * (each image's reports ranked as the API ranks them: by agreement with the image's findings-mode findings). */
async function judgeImages(
  model: MedClipModel,
  index: IndexBundle,
  read: { q: JudgedQuery; text: string }[],
  vectors: Float32Array[],
  weights: RankWeights,
): Promise<Pick<SearchEval, 'textToImages' | 'hubShare'>> {
  const entries = [...index.entries('images')];
  const byFinding: Record<string, { p10: number; positives: number }> = {};
  const done = new Set<string>();
  read.forEach((r, i) => {
    if (r.q.kind !== 'finding' || r.q.polarity !== 'positive' || done.has(r.q.finding)) return;
    const positives = entries.filter((e) => e.meta.labels[r.q.finding] === 1).length;
    if (positives < 5) return;
    done.add(r.q.finding);
    const hits = index.search('images', vectors[i]!, { k: 10, crossModal: true });
    byFinding[r.q.finding] = { p10: hits.filter((h) => h.meta.labels[r.q.finding] === 1).length / 10, positives };
  });
  const reports = new ReportSearch(index, weights);
  const tops: string[][] = [];
  let match = 0;
  for (const e of entries) {
    const top = reports.search(e.vector, { k: 5, findings: await imageFindings(model, e.vector), byReportSimilarity: true });
    tops.push(top.map((h) => h.report.id));
    // a hit "matches" when its report (by its labeler labels) shares a positive finding with the image (by its labels)
    for (const h of top) if (Object.entries(e.meta.labels).some(([f, v]) => v === 1 && h.report.labels[f as Observation] === 1)) match++;
  }
  const counts = new Map<string, number>();
  for (const t of tops) for (const id of t) counts.set(id, (counts.get(id) ?? 0) + 1);
  const hubs = [...counts.entries()]
    .sort((a, b) => b[1] - a[1])
    .slice(0, 5)
    .map(([id]) => id);
  return {
    textToImages: { p10: mean(Object.values(byFinding).map((f) => f.p10)), byFinding },
    hubShare: {
      queries: tops.length,
      share: tops.filter((t) => t.some((id) => hubs.includes(id))).length / Math.max(1, tops.length),
      findingMatch: match / Math.max(1, tops.length * 5),
      hubs,
    },
  };
}

/**
 * Logistic regression of relevance on (dense cosine, agreement), by Newton's method on the judged top-10 hits:
 * the coefficients `reportRelevance` uses. Features are centred on the dense mean so the fit is well conditioned.
 */
export function fitRelevance(judged: SearchEval['judged']): typeof RELEVANCE {
  const denseCenter = judged.reduce((s, j) => s + j.dense, 0) / Math.max(1, judged.length);
  const X = judged.map((j) => [1, (j.dense - denseCenter) * 100, j.agreement, j.reportAgreement, j.lexical]);
  const y = judged.map((j) => (j.relevant ? 1 : 0));
  const n = 5;
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
  const r = (x: number) => Math.round(x * 10000) / 10000;
  return {
    bias: r(w[0]!),
    dense: r(w[1]! * 100),
    agreement: r(w[2]!),
    reportAgreement: r(w[3]!),
    lexical: r(w[4]!),
    denseCenter: r(denseCenter),
  };
}

/** Gaussian elimination with partial pivoting (the Newton step). */
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
