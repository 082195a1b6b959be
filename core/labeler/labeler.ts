/**
 * Rule-based CheXpert-style report labeler: report text -> sentences -> a 14-vector per sentence,
 * and a report-level aggregate.
 *
 * Each sentence is split into clauses (the scope of a cue). In each clause every mention of an observation is
 * classified by the cue nearest to it: an uncertainty cue ("possible", "cannot exclude") makes it -1, a negation
 * cue ("no", "without", "is not seen", "has resolved") makes it 0, otherwise it is 1; change over time reads as the
 * finding's state now: "no (significant) change in X", "unchanged", "persistent", "stable", "interval decrease in X"
 * mean X is present, "resolved X", "resolution of X", "X has been removed", "no longer seen" that it is absent. Neutral anatomical mentions
 * ("heart size", "mediastinal contours") count only when the clause calls them abnormal. "No Finding" is 1 only
 * when nothing abnormal, including findings outside the 14 observations (granuloma, spondylosis, emphysema...),
 * is positive or uncertain.
 */
import { NUM_OBSERVATIONS, OBSERVATIONS, type LabelRow, type LabelValue, type Observation } from './labels.ts';
import {
  MENTIONS,
  NEAR_PRE_NEGATION,
  NEGATED_UNCERTAINTY,
  NO_CHANGE_IN,
  NORMAL_STUDY,
  NORMAL_WORDS,
  OTHER_ABNORMAL,
  POST_NEGATION,
  POST_UNCERTAINTY,
  PRE_NEGATION,
  PRE_UNCERTAINTY,
  type MentionRule,
} from './phrases.ts';
import { splitClauses, splitSentences } from './sentences.ts';

export interface LabeledSentence {
  /** Position of the sentence in the report (0-based). */
  index: number;
  text: string;
  labels: LabelRow;
}

export interface LabeledReport {
  sentences: LabeledSentence[];
  /** Report-level aggregate: per observation the strongest sentence value (1 > -1 > 0 > unmentioned). */
  labels: LabelRow;
}

const NO_FINDING = 0;

/** Precedence when two mentions of one observation disagree: positive, then uncertain, then negative. */
function merge(a: LabelValue, b: LabelValue): LabelValue {
  const rank = (v: LabelValue) => (v === 1 ? 3 : v === -1 ? 2 : v === 0 ? 1 : 0);
  return rank(b) > rank(a) ? b : a;
}

function firstMatchStart(re: RegExp, text: string): number {
  const m = re.exec(text);
  return m ? m.index : -1;
}

/** Classify one mention by its nearest cue: -1 uncertain, 0 negated, 1 positive. */
function classifyMention(rawBefore: string, after: string): 1 | 0 | -1 {
  // "no significant change in X": the "no" is about the change, X is present (a persisting finding)
  const before = rawBefore.replace(NO_CHANGE_IN, ' ');
  // "cannot exclude X" is uncertain; any other negation earlier in the clause governs a list ("no A, suspicious B,
  // or C"); then hedges before the mention; then what follows it ("X is not seen", "X may be present").
  if (NEGATED_UNCERTAINTY.test(before)) return -1;
  if (PRE_NEGATION.test(before) || NEAR_PRE_NEGATION.test(before)) return 0;
  if (PRE_UNCERTAINTY.test(before)) return -1;
  const postU = firstMatchStart(POST_UNCERTAINTY, after);
  const postN = firstMatchStart(POST_NEGATION, after);
  if (postU >= 0 && (postN < 0 || postU <= postN)) return -1;
  if (postN >= 0) return 0;
  return 1;
}

/** One global-flag copy per rule pattern, compiled once (labeling runs per sentence over whole corpora). */
const globalCopies = new Map<RegExp, RegExp>();
function global(re: RegExp): RegExp {
  let g = globalCopies.get(re);
  if (!g) {
    g = new RegExp(re.source, 'g');
    globalCopies.set(re, g);
  }
  return g;
}

function overlaps(re: RegExp | undefined, clause: string, start: number, end: number): boolean {
  if (!re) return false;
  for (const m of clause.matchAll(global(re))) {
    if (m.index < end && m.index + m[0].length > start) return true;
  }
  return false;
}

function labelMentions(clause: string, rule: MentionRule): LabelValue {
  let value: LabelValue = null;
  for (const m of clause.matchAll(global(rule.mention))) {
    const start = m.index;
    const end = start + m[0].length;
    if (m[0].length === 0) continue;
    if (overlaps(rule.unmention, clause, start, end)) continue;
    const before = clause.slice(0, start);
    const after = clause.slice(end);
    let v: LabelValue;
    if (rule.needsAbnormal) {
      const rest = before + ' ' + after;
      if (!rule.needsAbnormal.test(rest)) {
        v = NORMAL_WORDS.test(rest) ? 0 : null;
      } else {
        v = classifyMention(before, after);
      }
    } else {
      v = classifyMention(before, after);
    }
    value = merge(value, v);
  }
  return value;
}

const RULES = Object.entries(MENTIONS).map(([name, rules]) => ({
  index: OBSERVATIONS.indexOf(name as Observation),
  rules,
}));

interface SentenceAnalysis {
  labels: LabelRow;
  /** A finding outside the 13 abnormal observations is positive or uncertain. */
  otherAbnormal: boolean;
  normalStatement: boolean;
}

function analyseSentence(sentence: string): SentenceAnalysis {
  const labels: LabelRow = new Array<LabelValue>(NUM_OBSERVATIONS).fill(null);
  let otherAbnormal = false;
  const lower = sentence.toLowerCase();
  for (const clause of splitClauses(sentence)) {
    for (const { index, rules } of RULES) {
      for (const rule of rules) labels[index] = merge(labels[index]!, labelMentions(clause, rule));
    }
    const other = labelMentions(clause, { mention: OTHER_ABNORMAL });
    if (other === 1 || other === -1) otherAbnormal = true;
  }
  return { labels, otherAbnormal, normalStatement: NORMAL_STUDY.test(lower) };
}

function anyAbnormal(labels: LabelRow): boolean {
  for (let i = 0; i < labels.length; i++) {
    if (i === NO_FINDING) continue;
    if (labels[i] === 1 || labels[i] === -1) return true;
  }
  return false;
}

/** Sets a sentence's "No Finding": 1 when it states normality or negates findings and asserts none. */
function withNoFinding(a: SentenceAnalysis): LabelRow {
  const abnormal = anyAbnormal(a.labels) || a.otherAbnormal;
  const negatesSomething = a.labels.some((v, i) => i !== NO_FINDING && v === 0);
  a.labels[NO_FINDING] = abnormal ? 0 : a.normalStatement || negatesSomething ? 1 : null;
  return a.labels;
}

/** Label one sentence. */
/**
 * The labeler's version, recorded in every index bundle (its sentence split and labels are stored there). Bump it
 * whenever the split or any label changes: `test/labeler.test.ts` pins a fingerprint of the output on real reports
 * to this value, so a change without a bump fails.
 */
export const LABELER_VERSION = '4';

export function labelSentence(sentence: string): LabelRow {
  return withNoFinding(analyseSentence(sentence));
}

/** The text fields of a report that describe the image (indication and comparison are left out). */
export interface ReportText {
  findings?: string | null;
  impression?: string | null;
}

export function reportToText(report: ReportText | string): string {
  if (typeof report === 'string') return report;
  return [report.findings, report.impression].filter((t): t is string => !!t && t.trim().length > 0).join('\n');
}

/** Label a report: every sentence, and the report-level aggregate. */
export function labelReport(report: ReportText | string): LabeledReport {
  const text = reportToText(report);
  const sentences: LabeledSentence[] = [];
  const labels: LabelRow = new Array<LabelValue>(NUM_OBSERVATIONS).fill(null);
  let otherAbnormal = false;
  splitSentences(text).forEach((s, index) => {
    const a = analyseSentence(s);
    otherAbnormal ||= a.otherAbnormal;
    for (let i = 1; i < NUM_OBSERVATIONS; i++) labels[i] = merge(labels[i]!, a.labels[i]!);
    sentences.push({ index, text: s, labels: withNoFinding(a) });
  });
  labels[NO_FINDING] = sentences.length === 0 ? null : anyAbnormal(labels) || otherAbnormal ? 0 : 1;
  return { sentences, labels };
}
