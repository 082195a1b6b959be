/**
 * Text -> reports and image -> reports, as the API, `medclip search` and `medclip eval --task search` all run it:
 * hybrid candidates (HNSW on the text encoder + BM25 over the distinct sentence texts, core/bundle/lexical.ts), ranked by
 * the fused score of core/search/rank.ts (cosine, the query's polarity agreement with each sentence and with its
 * whole report, lexical match), best sentence per report, identical sentences collapsed into one hit, k hits, each
 * with its sentence text and, for a query naming a finding, a calibrated relevance.
 */
import {
  MAX_COLLAPSED_IDS,
  filterPredicate,
  type Hit,
  type IndexBundle,
  type SearchFilter,
  type SentenceMeta,
  type StoredLabels,
  type StoredReport,
  type TextMeta,
} from '../bundle/index.ts';
import { boundedCache, stringBytes, MAX_HITS } from '../util/index.ts';
import { dot } from '../model/index.ts';
import { ReportSentences } from './report-sentences.ts';
import { agreementOfModifiers, extractModifiers, hasModifiers, type Modifiers } from '../labeler/index.ts';
import {
  RANK_WEIGHTS,
  findingAgreement,
  fusedScore,
  reportRelevance,
  type QueryFinding,
  type RankFeatures,
  type RankWeights,
} from './rank.ts';

/** Distinct sentence texts taken from BM25 per query (each brings up to 5 of its sentences). */
export const LEXICAL_CANDIDATES = 50;
/** Closest sentences affirming each affirmed query finding (at most 3 findings) added to the candidate pool. */
export const AFFIRMED_CANDIDATES = 50;
const MAX_AFFIRMED_POOLS = 3;
/** Reports considered per candidate text when choosing the best-agreeing one ("No pneumothorax." is in thousands). */
const MAX_MEMBERS_SCORED = 5;
/** The same for image queries ordered by report similarity (the image path has the time: decoding is ~14 ms). */
const MAX_MEMBERS_BY_SIMILARITY = 50;
/** A finding affirmed by at most this share of sentences gets its own pool (val: Pneumothorax 0.4%, Cardiomegaly 4%). */
export const AFFIRMED_POOL_MAX_SHARE = 0.02;

export interface RankedReport {
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
  /** The query's modifiers this sentence states too ("right", "large"). */
  modifiers: string[];
}

const NONE: Modifiers = {};
const NO_AGREEMENT = { agreement: 0, matched: [] as string[] };

/** A pooled text in rank order with the report it gave its hit. */
interface Ranked {
  text: string;
  cosine: number;
  meta: SentenceMeta;
  features: RankFeatures;
  /** The query's modifiers the sentence states too. */
  modifiers: string[];
  /** Report id -> rank of the hit that took it (shared by one ranking). */
  taken: Map<string, number>;
}

/**
 * Distinct texts taken from the dense search first, with the lexical and affirmed candidates beside them: enough for
 * MAX_HITS hits in nearly every query (each text gives one hit); a query whose pool gives fewer looks 4x deeper.
 * Measured on the judged val queries (`medclip eval --task search`): pools of 100, 120, 150, 200 and 300 texts all
 * give P@10 0.948; 100 keeps negated purity highest (0.986 vs 0.979).
 */
const DENSE_TEXT_POOL = MAX_HITS;

/** A candidate wording: its cosine to the query, the cosine it is ranked by (less hubness for image queries), its
 * labels and its lexical score. */
interface Candidate {
  cosine: number;
  dense: number;
  labels: StoredLabels;
  lexical: number;
  /** The sentence's modifiers (stored in the bundle; read from the text for bundles written before them). */
  modifiers: Modifiers;
}

export interface ReportQuery {
  k: number;
  filter?: SearchFilter;
  /** A text query's findings with polarity: re-rank by agreement, and give a relevance. */
  findings?: QueryFinding[];
  /** A text query's words (as searched, after spelling correction): adds BM25 candidates and the lexical score. */
  text?: string;
  /** Give each hit the calibrated relevance (calibrated on text queries that name a finding). */
  relevance?: boolean;
  /** A text query's modifiers (side, extent, change, location): sentences that agree rank first, contradicting ones last. */
  modifiers?: Modifiers;
  /**
   * Image queries: of the reports holding a shared sentence, show the one whose whole text is closest to the query
   * (after label agreement), instead of the first; a sentence in many reports then stops returning one report for
   * every X-ray (a hub).
   */
  byReportSimilarity?: boolean;
}

export class ReportSearch {
  private readonly sentences = new ReportSentences();

  constructor(
    private readonly index: IndexBundle,
    private readonly weights: RankWeights = RANK_WEIGHTS,
    private readonly relevance: Parameters<typeof reportRelevance>[1] = undefined,
  ) {}

  search(vector: Float32Array, o: ReportQuery): RankedReport[] {
    if (this.index.count('reports') === 0) return [];
    return this.index.hasTextIndex ? this.searchTexts(vector, o) : this.searchSentences(vector, o);
  }

  /**
   * Over distinct sentence texts (the bundle's `texts` index): candidates are wordings (dense top, BM25 top, the
   * closest affirmations of a rare affirmed finding), each scored once; its report is the one among the reports
   * holding it whose labels agree best with the query and that no better hit took. Identical sentences are one hit
   * by construction, and no widening through thousands of copies of "No pneumothorax." is needed.
   */
  private searchTexts(vector: Float32Array, o: ReportQuery): RankedReport[] {
    const findings = o.findings ?? [];
    const pool = new Map<string, Candidate>();
    // image queries: a sentence's hubness (its closeness to every image) is taken off its cosine
    const hubWeight = o.byReportSimilarity ? this.weights.hub : 0;
    const add = (h: Hit<TextMeta>, lexical = 0) => {
      const had = pool.get(h.meta.text);
      if (had) had.lexical = Math.max(had.lexical, lexical);
      else
        pool.set(h.meta.text, {
          cosine: h.score,
          dense: h.score - hubWeight * (h.meta.hub ?? 0),
          labels: h.meta.labels,
          lexical,
          // stored since modifiers existed (none stored: none stated); read from the text in older bundles
          modifiers: h.meta.modifiers ?? (this.index.manifest.texts?.modifiers ? NONE : extractModifiers(h.meta.text)),
        });
    };
    if (o.text) {
      const pass = filterPredicate(o.filter);
      for (const f of this.index.lexical().search(o.text, LEXICAL_CANDIDATES)) {
        const t = this.index.textEntry(f.text);
        if (t && pass(t.meta)) add({ score: dot(vector, t.vector), meta: t.meta }, f.score);
      }
    }
    const texts = this.index.textCount();
    for (const f of findings.filter((x) => x.polarity === 'positive' && x.name !== 'No Finding').slice(0, MAX_AFFIRMED_POOLS)) {
      const filter = { ...o.filter, must: [...(o.filter?.must ?? []), f.name] };
      if (this.index.countMatchingTexts(filter) <= AFFIRMED_POOL_MAX_SHARE * texts)
        for (const h of this.index.searchTexts(vector, { k: AFFIRMED_CANDIDATES, filter })) add(h);
    }
    // The pool, and the order in it, are those of the deepest request (MAX_HITS), whatever k asks: the first k hits
    // are then the first k of any larger k.
    const depth = Math.max(o.k, MAX_HITS);
    let want = Math.min(texts, DENSE_TEXT_POOL);
    for (;;) {
      const found = this.index.searchTexts(vector, { k: want, filter: o.filter });
      for (const h of found) add(h);
      const relevant = findings.length > 0 && o.relevance === true;
      const order = this.order(pool, findings, depth, o.byReportSimilarity ? vector : undefined, relevant, o.modifiers);
      // fewer than `depth` hits while the search may hold more: look deeper
      if (order.length >= depth || found.length < want || want >= texts) return this.materialise(order.slice(0, o.k), relevant);
      want = Math.min(texts, want * 4);
    }
  }

  /** Sentences holding a text (the first `limit`), with their reports' labels: static per bundle, so kept. */
  private readonly memberCache = boundedCache<string, { meta: SentenceMeta; labels: StoredLabels }[]>(
    'text-members',
    (v, k) => stringBytes(k) + v.length * 256,
  );

  private members(text: string, limit: number): { meta: SentenceMeta; labels: StoredLabels }[] {
    const key = `${limit}\u0000${text}`;
    let m = this.memberCache.get(key);
    if (!m) {
      m = this.index.sentencesWithText(text, limit).map((meta) => ({ meta, labels: this.index.report(meta.reportId)!.labels }));
      this.memberCache.set(key, m);
    }
    return m;
  }

  /**
   * Rank the pooled texts and give each the best report not already taken (greedy in rank order, so the first n of a
   * longer order are the order for n).
   */
  private order(
    pool: Map<string, Candidate>,
    findings: QueryFinding[],
    depth: number,
    /** The query vector, to order a text's reports by their similarity to it. */
    byReport: Float32Array | undefined,
    /** Text queries naming a finding: in order of the calibrated relevance the hits will carry (not the fused score). */
    byRelevance = false,
    /** The query's modifiers, when it states any. */
    modifiers: Modifiers = {},
  ): Ranked[] {
    const scored = [...pool].map(([text, c]) => {
      const members = this.members(text, byReport ? MAX_MEMBERS_BY_SIMILARITY : MAX_MEMBERS_SCORED).map((m) => {
        const rv = byReport ? this.index.reportVector(m.meta.reportId) : undefined;
        return {
          meta: m.meta,
          reportAgreement: findings.length ? findingAgreement(findings, m.labels) : 0,
          similarity: rv ? dot(byReport!, rv) : 0,
        };
      });
      // stable: index order among equals
      if (findings.length || byReport) members.sort((a, b) => b.reportAgreement - a.reportAgreement || b.similarity - a.similarity);
      const agreement = findingAgreement(findings, c.labels);
      // modifiers describe a finding: they count only where the sentence states it as the query does ("no large
      // effusion" matches no "large effusion")
      const m = findings.length && agreement <= 0 ? NO_AGREEMENT : agreementOfModifiers(modifiers, c.modifiers);
      const features: RankFeatures = {
        dense: c.dense,
        agreement,
        reportAgreement: members[0]?.reportAgreement ?? 0,
        lexical: c.lexical,
        modifiers: m.agreement,
      };
      return {
        text,
        cosine: c.cosine,
        matchedModifiers: m.matched,
        members,
        features,
        fused: byRelevance ? reportRelevance(features, this.relevance) : fusedScore(features, this.weights),
      };
    });
    scored.sort((a, b) => b.fused - a.fused);
    // report id -> the rank of the hit that took it
    const taken = new Map<string, number>();
    const out: Ranked[] = [];
    for (const s of scored) {
      if (out.length >= depth) break;
      const chosen = s.members.find((m) => !taken.has(m.meta.reportId));
      if (!chosen) continue;
      taken.set(chosen.meta.reportId, out.length);
      out.push({
        text: s.text,
        cosine: s.cosine,
        meta: chosen.meta,
        features: { ...s.features, reportAgreement: chosen.reportAgreement },
        modifiers: s.matchedModifiers,
        taken,
      });
    }
    return out;
  }

  /** The hits of the first ranked texts: their reports, the other reports holding the same sentence, relevance. */
  private materialise(ranked: Ranked[], relevant: boolean): RankedReport[] {
    return ranked.map((r, rank) => {
      // the other reports with this sentence, but those this hit or a better one took
      const same: string[] = [];
      for (const m of this.index.sentencesWithText(r.text, MAX_COLLAPSED_IDS + MAX_HITS + 1)) {
        if (same.length >= MAX_COLLAPSED_IDS) break;
        const by = r.taken.get(m.reportId);
        if (m !== r.meta && (by === undefined || by > rank) && !same.includes(m.reportId)) same.push(m.reportId);
      }
      return {
        hit: { score: r.cosine, meta: r.meta },
        report: this.index.report(r.meta.reportId)!,
        sentence: r.text,
        features: r.features,
        ...(relevant ? { relevance: Math.round(reportRelevance(r.features, this.relevance) * 1000) / 1000 } : {}),
        same,
        sentenceReports: this.index.reportsWithSentence(r.text),
        modifiers: r.modifiers,
      };
    });
  }

  /** Bundles without the distinct-text index: sentence candidates, best sentence per report, then collapsed. */
  private searchSentences(vector: Float32Array, o: ReportQuery): RankedReport[] {
    const findings = o.findings ?? [];
    const lexical = new Map<string, number>();
    const extra: Hit<SentenceMeta>[] = [];
    if (o.text && this.index.count('reports') > 0) {
      const found = this.index.lexical().search(o.text, LEXICAL_CANDIDATES);
      for (const f of found) lexical.set(f.text, f.score);
      extra.push(
        ...this.index.sentencesWithTexts(
          found.map((f) => f.text),
          vector,
          o.filter,
        ),
      );
    }
    // Sentences that affirm a rare finding the query affirms: cosine cannot tell "pneumothorax" from "no
    // pneumothorax", so the dense top may hold no affirmation at all when affirmations are rare. A filtered search
    // (an exact scan of just those sentences, their list cached) puts the closest ones in the pool. A common finding
    // needs no such pool: its affirmations are among the dense candidates anyway.
    const total = this.index.count('reports');
    for (const f of findings.filter((x) => x.polarity === 'positive' && x.name !== 'No Finding').slice(0, MAX_AFFIRMED_POOLS)) {
      const filter = { ...o.filter, must: [...(o.filter?.must ?? []), f.name] };
      if (this.index.countMatching('reports', filter) <= AFFIRMED_POOL_MAX_SHARE * total)
        extra.push(...this.index.search('reports', vector, { k: AFFIRMED_CANDIDATES, filter }));
    }
    // a stored report's labels are the labeler's, over all its sentences, computed at build time: nothing is
    // re-labelled while serving
    // bundles without the texts index store no modifiers: they are read from the sentence
    const modifiersOf = (meta: SentenceMeta) =>
      findings.length && findingAgreement(findings, meta.labels) <= 0
        ? NO_AGREEMENT
        : agreementOfModifiers(o.modifiers ?? {}, meta.text ? extractModifiers(meta.text) : undefined);
    const features = (meta: SentenceMeta, dense: number): RankFeatures => ({
      dense,
      agreement: findingAgreement(findings, meta.labels),
      reportAgreement: findingAgreement(findings, this.index.report(meta.reportId)!.labels),
      lexical: meta.text === undefined ? 0 : (lexical.get(meta.text) ?? 0),
      modifiers: modifiersOf(meta).agreement,
    });
    const ranked = findings.length > 0 || lexical.size > 0 || hasModifiers(o.modifiers);
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
        ...(o.relevance && findings.length > 0 ? { relevance: Math.round(reportRelevance(f, this.relevance) * 1000) / 1000 } : {}),
        same: h.same,
        sentenceReports: h.meta.text === undefined ? 1 : this.index.reportsWithSentence(h.meta.text),
        modifiers: modifiersOf(h.meta).matched,
      };
    });
  }
}
