/**
 * `medclip eval --task hubs`: hubness of image -> reports. A hub is a report returned for many different X-rays
 * (normal images nearly always got the same five). Measured as the share of val image queries whose top 5 holds
 * one of the 5 most returned reports, and the share of top-5 reports sharing a positive finding with the image;
 * before and after query-bank normalisation (QB-Norm / CSLS-style): each sentence's score is lowered by its mean
 * similarity to its 10 nearest images in a bank of *train* images, so sentences close to everything stop winning.
 */
import { readFile } from 'node:fs/promises';
import { readImageTable } from '../core/image-table.ts';
import { imageToTensor } from '../core/image/index.ts';
import { labelReport } from '../core/labeler/labeler.ts';
import { dot, type MedClipModel } from '../core/model.ts';
import { readReports, reportText } from '../core/reports.ts';

export interface HubEval {
  queries: number;
  reports: number;
  bank: number;
  /** Share of queries whose top 5 holds one of the 5 most returned reports. */
  hubShare: { dense: number; normalised: number };
  /** Share of top-5 reports that share a positive finding with the query image (by labels). */
  findingMatchAt5: { dense: number; normalised: number };
}

async function embedImages(model: MedClipModel, table: string, root: string | undefined, split: string, limit: number) {
  const out: { embedding: Float32Array; labels: (1 | 0 | -1 | null)[] }[] = [];
  for await (const r of readImageTable(table, { root, split })) {
    if (out.length >= limit) break;
    try {
      const t = await imageToTensor(await readFile(r.file), model.imageSpec);
      const [e] = [(await model.embedPixels(t.data, 1)).slice(0, model.embedDim)];
      out.push({ embedding: e!, labels: r.labels });
    } catch {
      // unreadable images are skipped, as everywhere
    }
  }
  return out;
}

export async function evaluateHubs(
  model: MedClipModel,
  o: {
    images: string;
    root?: string;
    split?: string;
    bankSplit?: string;
    reports: string;
    reportSplit?: string;
    maxQueries?: number;
    bankSize?: number;
    weight?: number;
  },
): Promise<HubEval> {
  const weight = o.weight ?? 1;
  const queries = await embedImages(model, o.images, o.root, o.split ?? 'val', o.maxQueries ?? 1000);
  const bank = await embedImages(model, o.images, o.root, o.bankSplit ?? 'train', o.bankSize ?? 400);
  const reports: { labels: (1 | 0 | -1 | null)[]; sentences: number[] }[] = [];
  const texts: string[] = [];
  for await (const r of readReports(o.reports, { split: o.reportSplit })) {
    const sentences = labelReport(reportText(r)).sentences;
    if (!sentences.length || !r.labels) continue;
    reports.push({ labels: r.labels, sentences: sentences.map((_, i) => texts.length + i) });
    texts.push(...sentences.map((s) => s.text));
  }
  const sentenceEmbeds = await model.embedTexts(texts);
  // each sentence's mean similarity to its 10 nearest bank images
  const hub = sentenceEmbeds.map((s) => {
    const sims = bank.map((b) => dot(s, b.embedding)).sort((a, b) => b - a);
    const top = sims.slice(0, 10);
    return top.reduce((a, b) => a + b, 0) / Math.max(1, top.length);
  });
  const run = (normalise: boolean) => {
    const tops = queries.map((q) => {
      const scored = reports.map((r, ri) => ({
        ri,
        score: Math.max(...r.sentences.map((si) => dot(q.embedding, sentenceEmbeds[si]!) - (normalise ? weight * hub[si]! : 0))),
      }));
      return scored
        .sort((a, b) => b.score - a.score)
        .slice(0, 5)
        .map((x) => x.ri);
    });
    const counts = new Map<number, number>();
    for (const t of tops) for (const r of t) counts.set(r, (counts.get(r) ?? 0) + 1);
    const hubs = new Set(
      [...counts.entries()]
        .sort((a, b) => b[1] - a[1])
        .slice(0, 5)
        .map(([r]) => r),
    );
    const hubShare = tops.filter((t) => t.some((r) => hubs.has(r))).length / Math.max(1, tops.length);
    let match = 0;
    tops.forEach((t, qi) => {
      for (const r of t) if (queries[qi]!.labels.some((v, f) => v === 1 && reports[r]!.labels[f] === 1)) match++;
    });
    return { hubShare, match: match / Math.max(1, tops.length * 5) };
  };
  const dense = run(false);
  const normalised = run(true);
  return {
    queries: queries.length,
    reports: reports.length,
    bank: bank.length,
    hubShare: { dense: dense.hubShare, normalised: normalised.hubShare },
    findingMatchAt5: { dense: dense.match, normalised: normalised.match },
  };
}
