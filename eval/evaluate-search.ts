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
import { OBSERVATIONS } from '../core/labeler/index.ts';
import type { MedClipModel } from '../core/model/index.ts';
import { QuerySpeller, ReportSearch, queryFindings, reportRelevance, type RankWeights } from '../core/search/index.ts';
import { readReports, readTable } from '../core/tables/index.ts';
import { extractModifiers } from '../core/labeler/index.ts';
import { rocAuc } from '../core/metrics/index.ts';
import { buildIndex } from '../index-builder/build.ts';
import { judgeImages, judgePairedImages } from './judge-images.ts';
export { fitRelevance } from './fit-relevance.ts';
export type { JudgedQuery, ModifierQuery, SearchEval, SearchEvalOptions } from './search-judgements.ts';
import { type JudgedQuery, type ModifierQuery, type SearchEval, type SearchEvalOptions, mean } from './search-judgements.ts';

export async function readModifierQueries(file: string): Promise<ModifierQuery[]> {
  const raw = JSON.parse(await readFile(file, 'utf8')) as { queries?: ModifierQuery[] };
  const queries = raw.queries ?? [];
  for (const q of queries)
    if (!OBSERVATIONS.includes(q.finding) || !q.headings?.length || !q.modifiers?.length)
      throw new Error(`${file}: query "${q.text}" needs a known finding, MeSH headings and modifiers`);
  return queries;
}

/** Whether a report's MeSH terms ("Pleural Effusion/left/small;Cardiomegaly/mild") hold a query's finding and modifiers. */
export function meshMatches(mesh: string, q: ModifierQuery): boolean {
  return mesh.split(';').some((term) => {
    const [head, ...subs] = term.split('/').map((x) => x.trim().toLowerCase());
    return q.headings.some((h) => h.toLowerCase() === head) && q.modifiers.every((m) => subs.includes(m.toLowerCase()));
  });
}

export async function readJudgedQueries(file: string): Promise<JudgedQuery[]> {
  const raw = JSON.parse(await readFile(file, 'utf8')) as { queries?: JudgedQuery[] };
  const queries = raw.queries ?? [];
  for (const q of queries)
    if (!OBSERVATIONS.includes(q.finding) || (q.polarity !== 'positive' && q.polarity !== 'negative'))
      throw new Error(`${file}: query "${q.text}" needs a known finding and polarity positive|negative`);
  return queries;
}

/** Hits judged per query for relevance: its first 50 (enough irrelevant ones to measure separation). */
export const JUDGE_DEPTH = 50;

/** A reliability diagram in 10 equal-width bins of relevance, and its expected calibration error. */
export function reliability(truth: number[], probabilities: number[]): { ece: number; bins: SearchEval['relevance']['bins'] } {
  const bins: SearchEval['relevance']['bins'] = [];
  let ece = 0;
  for (let b = 0; b < 10; b++) {
    const from = b / 10;
    const to = (b + 1) / 10;
    const inBin = probabilities.flatMap((p, i) => (p >= from && (p < to || (b === 9 && p <= 1)) ? [i] : []));
    if (!inBin.length) continue;
    const meanRelevance = mean(inBin.map((i) => probabilities[i]!));
    const relevantShare = mean(inBin.map((i) => truth[i]!));
    ece += (inBin.length / probabilities.length) * Math.abs(meanRelevance - relevantShare);
    const r = (x: number) => Math.round(x * 1000) / 1000;
    bins.push({ from, to, hits: inBin.length, meanRelevance: r(meanRelevance), relevantShare: r(relevantShare) });
  }
  return { ece: Math.round(ece * 1000) / 1000, bins };
}

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
    const mesh = new Map<string, string>();
    if (o.modifierQueries?.length)
      for await (const { record } of readTable(o.reports))
        if (!o.reportSplit || record.split === o.reportSplit) mesh.set(record.uid ?? record.id ?? '', record.MeSH ?? '');
    const speller = QuerySpeller.forIndex(index);
    const read = o.queries.map((q) => {
      const corrected = speller.analyse(q.text).corrected;
      return { q, corrected, text: corrected ?? q.text };
    });
    const vectors = await model.embedTexts(read.map((r) => r.text));
    const modifierVectors = o.modifierQueries?.length ? await model.embedTexts(o.modifierQueries.map((q) => q.text)) : [];
    const images = new Map<RankWeights, Awaited<ReturnType<typeof judgeImages>>>();
    if (o.images) for (const w of o.weights) images.set(w, await judgeImages(model, index, read, vectors, w));
    const paired = o.images && o.pairImages ? await judgePairedImages(model, o, dir, read) : undefined;
    return o.weights.map((weights) => {
      const search = new ReportSearch(index, weights, o.relevance);
      const judged: SearchEval['judged'] = [];
      const scored = read.map((r, i) => {
        const findings = queryFindings(r.text);
        // the first 50 hits (the first 10 of them are what a k=10 request gets: ranking does not depend on k)
        const deep = search.search(vectors[i]!, { k: JUDGE_DEPTH, findings, text: r.text, relevance: true });
        const fi = OBSERVATIONS.indexOf(r.q.finding);
        const positive = deep.map((t) => gold.get(t.report.id)?.[fi] === 1);
        // relevance is given (and judged) only where the API gives it: queries that name a finding
        if (findings.length)
          deep.forEach((t, n) => judged.push({ ...t.features, relevant: positive[n] === (r.q.polarity === 'positive'), query: i }));
        const top = positive.slice(0, 10);
        const share = top.filter(Boolean).length / Math.max(1, top.length);
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
      // modifier queries: P@5 by MeSH (finding and every modifier). Their hits stay out of the relevance calibration:
      // MeSH names a modifier only now and then, so "no modifier in MeSH" is no evidence that a hit lacks it.
      const modifiers = o.modifierQueries?.length ? judgeModifiers(search, o.modifierQueries, modifierVectors, mesh, speller) : undefined;
      const probabilities = judged.map((j) => reportRelevance(j, o.relevance));
      const truth = judged.map((j) => (j.relevant ? 1 : 0));
      return {
        weights,
        reports: index.reports.size,
        sentences: index.count('reports'),
        p10: mean(scored.filter((s) => s.polarity === 'positive').map((s) => s.score)),
        negatedPurity: mean(scored.filter((s) => s.polarity === 'negative').map((s) => s.score)),
        relevance: {
          relevant: rel,
          irrelevant: irr,
          gap: rel - irr,
          auc: rocAuc(truth, probabilities),
          queryAuc: mean(
            [...new Set(judged.map((j) => j.query))]
              .map((q) => judged.flatMap((j, i) => (j.query === q ? [i] : [])))
              .map((ids) =>
                rocAuc(
                  ids.map((i) => truth[i]!),
                  ids.map((i) => probabilities[i]!),
                ),
              )
              .filter((a) => !Number.isNaN(a)),
          ),
          ...reliability(truth, probabilities),
        },
        judged,
        byKind,
        queries: scored.map(({ polarity: _p, ...rest }) => rest),
        ...(modifiers ? { modifiers } : {}),
        ...images.get(weights),
        ...(paired ? { pairedTextToImages: paired } : {}),
      };
    });
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** P@5 of the modifier queries, each searched as the API searches a text query (findings, modifiers, relevance). */
function judgeModifiers(
  search: ReportSearch,
  queries: ModifierQuery[],
  vectors: Float32Array[],
  mesh: Map<string, string>,
  speller: QuerySpeller,
): NonNullable<SearchEval['modifiers']> {
  const per = queries.map((q, i) => {
    const text = speller.analyse(q.text).corrected ?? q.text;
    const top = search.search(vectors[i]!, {
      k: 5,
      findings: queryFindings(text),
      text,
      relevance: true,
      modifiers: extractModifiers(text),
    });
    const relevant = top.filter((t) => meshMatches(mesh.get(t.report.id) ?? '', q)).length;
    return { text: q.text, p5: relevant / 5, relevant: [...mesh.values()].filter((m) => meshMatches(m, q)).length };
  });
  return { p5: mean(per.map((p) => p.p5)), queries: per };
}
