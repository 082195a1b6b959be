/**
 * The image side of `medclip eval --task search`: text -> images P@10 by image similarity, image -> report hubs,
 * and report-mediated text -> images on a label-matched pairing of the val images with the val reports.
 */
import { writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { IndexBundle, type ImageMeta } from '../core/bundle/index.ts';
import { Rng } from '../core/util/index.ts';
import { OBSERVATIONS, type Observation } from '../core/labeler/index.ts';
import type { MedClipModel } from '../core/model/index.ts';
import { ReportSearch, SearchService, type RankWeights, imageFindings } from '../core/search/index.ts';
import { readReports, readTable } from '../core/tables/index.ts';
import { buildIndex } from '../index-builder/build.ts';
import { type JudgedQuery, type SearchEval, type SearchEvalOptions, mean } from './search-judgements.ts';

/**
 * Report-mediated text -> images on a label-matched pairing: each image of the table is given, as `report_id`, a
 * report (seeded choice among the closest: fewest extra findings) whose labels hold all the image's positive findings
 * (No Finding images a No Finding report);
 * a bundle of both is built and the `finding` queries are asked through the API's search service.
 */
export async function judgePairedImages(
  model: MedClipModel,
  o: SearchEvalOptions,
  dir: string,
  read: { q: JudgedQuery; text: string }[],
): Promise<NonNullable<SearchEval['pairedTextToImages']>> {
  const reports: { id: string; positives: Set<string> }[] = [];
  for await (const r of readReports(o.reports, { split: o.reportSplit }))
    if (r.labels) reports.push({ id: r.id, positives: new Set(OBSERVATIONS.filter((_, i) => r.labels![i] === 1)) });
  const rng = new Rng(17);
  const rows: string[] = [];
  let header = '';
  let paired = 0;
  for await (const { record } of readTable(o.images!.table)) {
    if (o.images!.split && record.split !== o.images!.split) continue;
    const cols = Object.keys(record);
    header ||= [...cols, 'report_id'].join(',');
    const positives = OBSERVATIONS.filter((f) => record[f] === '1' || record[f] === '1.0');
    // reports whose labels hold all the image's findings, the closest first (fewest findings the image lacks), as
    // an archive's own report describes its image
    const matches = reports.filter((r) => positives.length > 0 && positives.every((f) => r.positives.has(f)));
    const fewest = Math.min(...matches.map((r) => r.positives.size));
    const closest = matches.filter((r) => r.positives.size === fewest);
    const pick = closest.length ? closest[rng.int(closest.length)]!.id : '';
    if (pick) paired++;
    rows.push([...cols.map((c) => csvCell(record[c] ?? '')), pick].join(','));
  }
  const table = join(dir, 'paired-images.csv');
  await writeFile(table, [header, ...rows].join('\n') + '\n');
  const out = join(dir, 'paired-index');
  await buildIndex({
    model: model.dir,
    reports: o.reports,
    reportSplit: o.reportSplit,
    images: table,
    root: o.images!.root ?? dirname(o.images!.table),
    out,
  });
  const index = await IndexBundle.load(out, { model });
  const service = await SearchService.create(model, index);
  const entries = new Map([...index.entries('images')].map((e) => [e.meta.id, e.meta as ImageMeta]));
  const byFinding: Record<string, { p10: number; positives: number }> = {};
  for (const r of read) {
    if (r.q.kind !== 'finding' || r.q.polarity !== 'positive' || byFinding[r.q.finding]) continue;
    const positives = [...entries.values()].filter((m) => m.labels[r.q.finding] === 1).length;
    if (positives < 5) continue;
    const hits = (await service.searchText({ query: r.q.text, target: 'images', k: 10 })).hits;
    byFinding[r.q.finding] = { p10: hits.filter((h) => entries.get(h.id)?.labels[r.q.finding] === 1).length / 10, positives };
  }
  return { p10: mean(Object.values(byFinding).map((f) => f.p10)), paired, images: rows.length, byFinding };
}

/** A CSV cell, quoted when it holds a comma, a quote or a line break. */
export function csvCell(v: string): string {
  return /[",\n]/.test(v) ? `"${v.replaceAll('"', '""')}"` : v;
}

/** Text -> images P@10 (first `finding` query of each finding with >= 5 positive images) and image -> report hubs
 * (each image's reports ranked as the API ranks them: by agreement with the image's findings-mode findings). */
export async function judgeImages(
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
