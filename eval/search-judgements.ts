/** What the search evaluation judges and reports: the judged and modifier query sets, the options, and the result. */
import type { Observation } from '../core/labeler/index.ts';
import type { RELEVANCE, RankFeatures, RankWeights } from '../core/search/index.ts';

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
  /**
   * The calibrated `relevance` of each query's first 50 hits (core/search/rank.ts) against their labels: mean over
   * relevant and irrelevant hits, ROC AUC, and calibration (expected calibration error over 10 bins, with the bins).
   */
  relevance: {
    relevant: number;
    irrelevant: number;
    gap: number;
    auc: number;
    /** Mean over queries (with both relevant and irrelevant hits) of the ROC AUC within the query's first 50. */
    queryAuc: number;
    ece: number;
    bins: { from: number; to: number; hits: number; meanRelevance: number; relevantShare: number }[];
  };
  /** Every judged hit's features, whether it is relevant, and its query: what `fitRelevance` learns from. */
  judged: (RankFeatures & { relevant: boolean; query: number })[];
  byKind: Record<string, { queries: number; score: number }>;
  queries: { text: string; kind: string; score: number; corrected?: string }[];
  /** With images: text -> images P@10 per finding (dense search, as the API) and its mean. */
  textToImages?: { p10: number; byFinding: Record<string, { p10: number; positives: number }> };
  /**
   * With images: text -> images P@10 (by the images' own labels) through their paired reports, the API's
   * report-mediated search, on a label-matched pairing (each val image paired with a val report whose labels hold all
   * its positive findings): a check of the mechanism, since no real paired set is public here.
   */
  pairedTextToImages?: { p10: number; paired: number; images: number; byFinding: Record<string, { p10: number; positives: number }> };
  /** With modifier queries: P@5 by MeSH (finding and every modifier), per query and the mean. */
  modifiers?: { p5: number; queries: { text: string; p5: number; relevant: number }[] };
  /** With images: share of image queries whose top 5 reports hold one of the 5 most returned ones, and the share of
   * top-5 reports that share a positive finding with the image (labels). */
  hubShare?: { queries: number; share: number; findingMatch: number; hubs: string[] };
}

/** A query with modifiers, judged by the reports' MeSH terms (samples/queries/modifiers-val.json). */
export interface ModifierQuery {
  text: string;
  finding: Observation;
  /** MeSH headings that state the finding (e.g. "Opacity", "Airspace Disease"). */
  headings: string[];
  /** MeSH subheadings every relevant report's term holds ("left", "base", "small"). */
  modifiers: string[];
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
  /** Queries with laterality, extent and location, judged by MeSH terms (P@5). */
  modifierQueries?: ModifierQuery[];
  /** With images: also judge report-mediated text -> images on a label-matched pairing of the images and reports. */
  pairImages?: boolean;
}

export const mean = (xs: number[]) => (xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : Number.NaN);
