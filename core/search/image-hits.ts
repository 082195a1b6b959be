/**
 * Image hits: what an image hit carries, and report-mediated text -> images — an archive whose images are paired with
 * their reports answers a text query through those reports (core/search/report-search.ts ranks them), each such hit
 * with the report sentence as evidence.
 */
import {
  filterPredicate,
  type Hit,
  type ImageMeta,
  type IndexBundle,
  type IndexReader,
  type SearchFilter,
  type StoredLabels,
} from '../bundle/index.ts';
import type { DicomUids } from '../dicom/index.ts';
import type { Modifiers } from '../labeler/index.ts';
import { dot } from '../model/index.ts';
import { MAX_HITS } from '../util/index.ts';
import { agreeingFindings, type QueryFinding } from './rank.ts';
import type { ReportSearch } from './report-search.ts';

/** A report this relevant (calibrated probability) puts its images ahead of images found by similarity alone. */
export const REPORT_MEDIATED_MIN = 0.5;

export interface ImageHit {
  id: string;
  score: number;
  labels: StoredLabels;
  matched: string[];
  view?: string;
  source?: string;
  thumbnail: string;
  /** Where `labels` come from: the image table (or DICOM), or the image's own report when it has no labels. */
  labelSource?: 'table' | 'report';
  /** Report-mediated hits: the sentence of the image's own report that made it relevant, and that relevance. */
  evidence?: { reportId: string; sentence: { index: number; text: string } };
  relevance?: number;
  /** For an image read from DICOM: its UIDs, a viewer link (when configured) and its study's report (when indexed). */
  dicom?: DicomUids;
  viewerUrl?: string;
  studyReport?: string;
}

/**
 * Report-mediated text -> images: the query ranks the archive's reports (hybrid ranking, relevance, modifiers); an
 * image whose own report is confidently relevant (relevance >= REPORT_MEDIATED_MIN) comes first, in that report's
 * relevance order (image similarity breaks ties); every other image — no report, or a report that is not
 * relevant — follows by image similarity. Computed to MAX_HITS whatever k asks. Filters read an image's own labels,
 * or its report's when it has none (`labelSource`).
 */
export async function reportMediatedImages(
  from: { index: IndexBundle; images: IndexReader; reports: ReportSearch },
  vector: Float32Array,
  q: { k: number; filter?: SearchFilter; findings: QueryFinding[]; text: string; modifiers?: Modifiers },
): Promise<(Pick<ImageHit, 'labelSource' | 'evidence' | 'relevance'> & { hit: ImageHit })[]> {
  const { findings, text, modifiers } = q;
  const byReport = from.index.imagesByReport();
  const pass = filterPredicate(q.filter);
  const labelled = (m: ImageMeta) => {
    const own = Object.keys(m.labels).length > 0;
    const report = m.reportId ? from.index.report(m.reportId) : undefined;
    return {
      labels: own || !report ? m.labels : report.labels,
      labelSource: own ? ('table' as const) : report ? ('report' as const) : undefined,
    };
  };
  const candidates = new Map<string, { meta: ImageMeta; score: number; relevance?: number; evidence?: ImageHit['evidence'] }>();
  const reports = from.reports.search(vector, { k: MAX_HITS, findings, text, relevance: true, modifiers });
  for (const r of reports)
    for (const meta of byReport.get(r.report.id) ?? []) {
      if (candidates.has(meta.id) || !pass({ ...meta, labels: labelled(meta).labels })) continue;
      const v = from.index.imageVector(meta.id);
      candidates.set(meta.id, {
        meta,
        score: v ? dot(vector, v) : 0,
        relevance: r.relevance ?? 0,
        evidence: { reportId: r.report.id, sentence: { index: r.hit.meta.index, text: r.sentence } },
      });
    }
  for (const h of await from.images.search(vector, MAX_HITS, q.filter, true))
    if (!candidates.has(h.meta.id)) candidates.set(h.meta.id, { meta: h.meta, score: h.score });
  const confident = (c: { relevance?: number }) => (c.relevance ?? 0) >= REPORT_MEDIATED_MIN;
  const ranked = [...candidates.values()].sort((a, b) =>
    confident(a) !== confident(b)
      ? confident(a)
        ? -1
        : 1
      : confident(a)
        ? b.relevance! - a.relevance! || b.score - a.score
        : b.score - a.score,
  );
  return ranked.slice(0, q.k).map((c) => {
    const { labels, labelSource } = labelled(c.meta);
    return {
      hit: imageHit({ score: c.score, meta: { ...c.meta, labels } }, findings),
      ...(labelSource ? { labelSource } : {}),
      ...(c.evidence && confident(c) ? { evidence: c.evidence, relevance: c.relevance } : {}),
    };
  });
}

export function imageHit(h: Hit<ImageMeta>, findings: QueryFinding[]): ImageHit {
  return {
    id: h.meta.id,
    score: h.score,
    labels: h.meta.labels,
    matched: agreeingFindings(findings, h.meta.labels),
    ...(h.meta.view ? { view: h.meta.view } : {}),
    ...(h.meta.source ? { source: h.meta.source } : {}),
    thumbnail: `/v1/images/${encodeURIComponent(h.meta.id)}`,
    ...(h.meta.dicom ? { dicom: h.meta.dicom } : {}),
  };
}
