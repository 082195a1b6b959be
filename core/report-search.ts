/**
 * Text -> reports, as the API and `medclip search` both run it: HNSW candidates, re-ranked by the query's polarity
 * agreement with each sentence and with its whole report (core/search-rank.ts), best sentence per report, k
 * distinct reports, each with its sentence text and, for a query naming a finding, a calibrated relevance.
 */
import type { Hit, IndexBundle, SearchFilter, SentenceMeta, StoredReport } from './index.ts';
import { ReportSentences } from './report-sentences.ts';
import { findingAgreement, fusedScore, reportRelevance, type QueryFinding } from './search-rank.ts';

export interface ReportHit {
  hit: Hit<SentenceMeta>;
  report: StoredReport;
  sentence: string;
  relevance?: number;
}

export class ReportSearch {
  private readonly sentences = new ReportSentences();

  constructor(private readonly index: IndexBundle) {}

  /** `findings` from a text query re-rank by agreement; an image query (no findings to agree with) ranks by cosine. */
  search(vector: Float32Array, o: { k: number; filter?: SearchFilter; findings?: QueryFinding[] }): ReportHit[] {
    const findings = o.findings ?? [];
    // a stored report's labels are the labeler's, over all its sentences, computed at build time: nothing is
    // re-labelled while serving
    const agreements = (meta: SentenceMeta): [number, number] => [
      findingAgreement(findings, meta.labels),
      findingAgreement(findings, this.index.report(meta.reportId)!.labels),
    ];
    const scoring = findings.length > 0;
    const rerank = scoring ? (meta: SentenceMeta, dense: number) => fusedScore(dense, ...agreements(meta)) : undefined;
    return this.index.searchReports(vector, { k: o.k, filter: o.filter, rerank }).map((h) => {
      const report = this.index.report(h.meta.reportId)!;
      return {
        hit: h,
        report,
        // v2 bundles store the sentence as split at build time; older ones are re-split (--upgrade stores it)
        sentence: h.meta.text ?? this.sentences.text(report, h.meta.index),
        ...(scoring ? { relevance: Math.round(reportRelevance(h.score, ...agreements(h.meta)) * 1000) / 1000 } : {}),
      };
    });
  }
}
