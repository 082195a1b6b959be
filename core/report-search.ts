/**
 * Text -> reports and image -> reports, as the API, `medclip search` and `medclip eval --task search` all run it:
 * hybrid candidates (HNSW on the text encoder + BM25 over the distinct sentence texts, core/lexical.ts), ranked by
 * the fused score of core/search-rank.ts (cosine, the query's polarity agreement with each sentence and with its
 * whole report, lexical match), best sentence per report, identical sentences collapsed into one hit, k hits, each
 * with its sentence text and, for a query naming a finding, a calibrated relevance.
 */
import type { Hit, IndexBundle, SearchFilter, SentenceMeta, StoredReport } from './index.ts';
import { ReportSentences } from './report-sentences.ts';
import {
  RANK_WEIGHTS,
  findingAgreement,
  fusedScore,
  reportRelevance,
  type QueryFinding,
  type RankFeatures,
  type RankWeights,
} from './search-rank.ts';

/** Distinct sentence texts taken from BM25 per query (each brings its sentences, up to 100 of each). */
export const LEXICAL_CANDIDATES = 50;

export interface ReportHit {
  hit: Hit<SentenceMeta>;
  report: StoredReport;
  sentence: string;
  /** What the hit was ranked on. */
  features: RankFeatures;
  relevance?: number;
  /** Other reports whose best sentence was this same text (folded into this hit). */
  same: string[];
  /** How many reports in the index hold this exact sentence. */
  sentenceReports: number;
}

export interface ReportQuery {
  k: number;
  filter?: SearchFilter;
  /** A text query's findings with polarity: re-rank by agreement, and give a relevance. */
  findings?: QueryFinding[];
  /** A text query's words (as searched, after spelling correction): adds BM25 candidates and the lexical score. */
  text?: string;
}

export class ReportSearch {
  private readonly sentences = new ReportSentences();

  constructor(
    private readonly index: IndexBundle,
    private readonly weights: RankWeights = RANK_WEIGHTS,
    private readonly relevance: Parameters<typeof reportRelevance>[1] = undefined,
  ) {}

  search(vector: Float32Array, o: ReportQuery): ReportHit[] {
    const findings = o.findings ?? [];
    const lexical = new Map<string, number>();
    let extra: Hit<SentenceMeta>[] = [];
    if (o.text && this.index.count('reports') > 0) {
      const found = this.index.lexical().search(o.text, LEXICAL_CANDIDATES);
      for (const f of found) lexical.set(f.text, f.score);
      extra = this.index.sentencesWithTexts(
        found.map((f) => f.text),
        vector,
        o.filter,
      );
    }
    // a stored report's labels are the labeler's, over all its sentences, computed at build time: nothing is
    // re-labelled while serving
    const features = (meta: SentenceMeta, dense: number): RankFeatures => ({
      dense,
      agreement: findingAgreement(findings, meta.labels),
      reportAgreement: findingAgreement(findings, this.index.report(meta.reportId)!.labels),
      lexical: meta.text === undefined ? 0 : (lexical.get(meta.text) ?? 0),
    });
    const ranked = findings.length > 0 || lexical.size > 0;
    const rerank = ranked ? (meta: SentenceMeta, dense: number) => fusedScore(features(meta, dense), this.weights) : undefined;
    return this.index.searchReports(vector, { k: o.k, filter: o.filter, rerank, extra, collapse: true }).map((h) => {
      const report = this.index.report(h.meta.reportId)!;
      const f = features(h.meta, h.score);
      return {
        hit: h,
        report,
        // v2 bundles store the sentence as split at build time; older ones are re-split (--upgrade stores it)
        sentence: h.meta.text ?? this.sentences.text(report, h.meta.index),
        features: f,
        ...(findings.length > 0 ? { relevance: Math.round(reportRelevance(f, this.relevance) * 1000) / 1000 } : {}),
        same: h.same,
        sentenceReports: h.meta.text === undefined ? 1 : this.index.reportsWithSentence(h.meta.text),
      };
    });
  }
}
