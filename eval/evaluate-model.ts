/**
 * `medclip eval`: zero-shot classification and cross-modal retrieval of a model bundle, run with
 * onnxruntime (`core/model`) exactly as the API serves it.
 */
import { readImageTable, type ImageRecord, readReports, reportText } from '../core/tables/index.ts';
import { embedImageSources, dot, type MedClipModel, resolveClasses } from '../core/model/index.ts';
import { COMPETITION_CLASSES, OBSERVATIONS, observationIndex, labelReport } from '../core/labeler/index.ts';
import { classificationReport, rocAuc, type ClassificationReport } from '../core/metrics/index.ts';

export interface EvalOptions {
  images: string;
  root?: string;
  split?: string;
  reports?: string;
  reportSplit?: string;
  task: 'zeroshot' | 'retrieval' | 'findings' | 'all';
  /** Findings mode: score with this temperature instead of the manifest's (e.g. 1 while fitting). */
  findingsTemperature?: number;
  groupBy?: string;
  promptsPerClass?: number;
  /** Cap on text queries for text->image retrieval. */
  maxTextQueries?: number;
  onProgress?: (done: number, total: number) => void;
}

export interface FindingScore {
  auc?: number;
  positives: number;
  negatives: number;
}

/** Findings mode per group: per-observation ROC AUC, their mean over findings with enough cases, text->image P@10. */
export interface FindingsGroup {
  n: number;
  findings: Record<string, FindingScore>;
  /** Mean AUC over findings with >= MIN_CASES positives and negatives (listed in `meanOver`). */
  meanAuc?: number;
  meanOver: string[];
  /** text -> images P@10, one query per finding with >= 5 positives in the group. */
  textToImage: Record<string, number>;
  meanP10?: number;
}

export interface EvalResult {
  findings?: Record<string, FindingsGroup>;
  /** Margins and labels of every labelled (image, finding) pair, for fitting the findings temperature. */
  findingCases?: { margin: number; present: boolean }[];
  zeroshot?: Record<string, Record<string, ClassificationReport & { task: string }>>;
  retrieval?: Record<string, { imageToText?: Precision; textToImage?: Precision }>;
  skipped: { id: string; reason: string }[];
}

export interface Precision {
  p1: number;
  p5: number;
  p10: number;
  queries: number;
}

/** Zero-shot tasks: Pneumonia vs No Finding, and the five CheXpert competition classes. */
export const ZERO_SHOT_TASKS: Record<string, string[]> = {
  pneumonia: ['No Finding', 'Pneumonia'],
  chexpert5: [...COMPETITION_CLASSES],
};

export interface Embedded {
  record: ImageRecord;
  embedding: Float32Array;
}

/** Every readable image of a table (split applied) with its embedding; unreadable ones listed by id. */
export async function embedImageTable(
  model: MedClipModel,
  o: Pick<EvalOptions, 'images' | 'root' | 'split' | 'onProgress'>,
): Promise<{ items: Embedded[]; skipped: EvalResult['skipped'] }> {
  const records: ImageRecord[] = [];
  for await (const r of readImageTable(o.images, { root: o.root, split: o.split })) records.push(r);
  const items: Embedded[] = [];
  const skipped: EvalResult['skipped'] = [];
  const batch = 32;
  for (let start = 0; start < records.length; start += batch) {
    const part = records.slice(start, start + batch);
    const out = await embedImageSources(
      model,
      part.map((r) => r.file),
    );
    out.forEach((r, i) => {
      if (r.ok) items.push({ record: part[i]!, embedding: r.vector });
      else skipped.push({ id: part[i]!.id, reason: r.reason });
    });
    o.onProgress?.(Math.min(records.length, start + batch), records.length);
  }
  return { items, skipped };
}

function groupOf(item: Embedded, groupBy: string | undefined): string {
  if (!groupBy) return 'all';
  return (groupBy === 'view' ? item.record.view : item.record.meta[groupBy]) || '(none)';
}

/** Items labelled positive for exactly one of the classes: [item, class index]. */
function singleClass(items: Embedded[], classes: string[]): [Embedded, number][] {
  const idx = classes.map((c) => observationIndex(c));
  const out: [Embedded, number][] = [];
  for (const it of items) {
    const hits = idx.flatMap((ci, k) => (it.record.labels[ci] === 1 ? [k] : []));
    if (hits.length === 1) out.push([it, hits[0]!]);
  }
  return out;
}

function precisionAtK(ranked: boolean[][]): Precision {
  const at = (k: number) => ranked.reduce((a, hits) => a + hits.slice(0, k).filter(Boolean).length / k, 0) / Math.max(1, ranked.length);
  return { p1: at(1), p5: at(5), p10: at(10), queries: ranked.length };
}

function topK<T>(query: Float32Array, corpus: { embedding: Float32Array; value: T }[], k: number): T[] {
  const scored = corpus.map((c) => ({ s: dot(query, c.embedding), v: c.value }));
  scored.sort((a, b) => b.s - a.s);
  return scored.slice(0, k).map((x) => x.v);
}

/** A finding's AUC counts in the mean when it has at least this many positives and negatives in the group. */
export const MIN_CASES = 9;
/** Text -> image P@10 needs at least this many positives in the group to mean something. */
export const MIN_QUERY_POSITIVES = 5;

/** The text query per finding for text -> images P@10: what a user would type. */
export const FINDING_QUERIES: Record<string, string> = {
  'No Finding': 'normal chest radiograph',
  'Enlarged Cardiomediastinum': 'widened mediastinum',
  Cardiomegaly: 'cardiomegaly',
  'Lung Lesion': 'pulmonary nodule or mass',
  'Lung Opacity': 'airspace opacity',
  Edema: 'pulmonary edema',
  Consolidation: 'focal consolidation',
  Pneumonia: 'pneumonia',
  Atelectasis: 'atelectasis',
  Pneumothorax: 'pneumothorax',
  'Pleural Effusion': 'pleural effusion',
  'Pleural Other': 'pleural thickening',
  Fracture: 'rib fracture',
  'Support Devices': 'support devices and tubes',
};

async function evaluateFindings(
  model: MedClipModel,
  items: Embedded[],
  groups: Map<string, Embedded[]>,
  o: EvalOptions,
): Promise<Pick<EvalResult, 'findings' | 'findingCases'>> {
  const scored = await Promise.all(items.map((it) => model.findings(it.embedding, undefined, o.findingsTemperature)));
  const byItem = new Map(items.map((it, i) => [it, scored[i]!]));
  const cases: { margin: number; present: boolean }[] = [];
  items.forEach((it, i) =>
    scored[i]!.forEach((f) => {
      const v = it.record.labels[observationIndex(f.name)];
      if (v === 1 || v === 0) cases.push({ margin: f.margin, present: v === 1 });
    }),
  );
  const queryNames = Object.keys(FINDING_QUERIES);
  const queryEmbeds = await model.embedTexts(queryNames.map((n) => FINDING_QUERIES[n]!));
  const findings: Record<string, FindingsGroup> = {};
  for (const [group, members] of groups) {
    const g: FindingsGroup = { n: members.length, findings: {}, meanOver: [], textToImage: {} };
    for (const [fi, name] of OBSERVATIONS.entries()) {
      const labelled = members.filter((m) => m.record.labels[fi] === 1 || m.record.labels[fi] === 0);
      const truth = labelled.map((m) => (m.record.labels[fi] === 1 ? 1 : 0));
      const positives = truth.filter((t) => t === 1).length;
      const negatives = truth.length - positives;
      const score: FindingScore = { positives, negatives };
      if (positives && negatives)
        score.auc = rocAuc(
          truth,
          labelled.map((m) => byItem.get(m)![fi]!.probability),
        );
      g.findings[name] = score;
      if (positives >= MIN_CASES && negatives >= MIN_CASES) g.meanOver.push(name);
      if (positives >= MIN_QUERY_POSITIVES) {
        const q = queryEmbeds[queryNames.indexOf(name)]!;
        const top = topK(
          q,
          members.map((m) => ({ embedding: m.embedding, value: m.record.labels[fi] === 1 })),
          10,
        );
        g.textToImage[name] = top.filter(Boolean).length / 10;
      }
    }
    if (g.meanOver.length) g.meanAuc = g.meanOver.reduce((s, n) => s + g.findings[n]!.auc!, 0) / g.meanOver.length;
    const p10 = Object.values(g.textToImage);
    if (p10.length) g.meanP10 = p10.reduce((a, b) => a + b, 0) / p10.length;
    findings[group] = g;
  }
  return { findings, findingCases: cases };
}

export async function evaluateModel(model: MedClipModel, o: EvalOptions): Promise<EvalResult> {
  const { items, skipped } = await embedImageTable(model, o);
  const groups = new Map<string, Embedded[]>();
  for (const it of items) {
    const g = groupOf(it, o.groupBy);
    if (!groups.has(g)) groups.set(g, []);
    groups.get(g)!.push(it);
  }
  const result: EvalResult = { skipped };
  if (o.task === 'findings' || o.task === 'all') Object.assign(result, await evaluateFindings(model, items, groups, o));
  if (o.task === 'zeroshot' || o.task === 'all') {
    result.zeroshot = {};
    // A task runs when at least two of its classes occur in the evaluated set; each group reports what it holds.
    const tasks = Object.entries(ZERO_SHOT_TASKS).filter(([, classes]) => new Set(singleClass(items, classes).map(([, c]) => c)).size >= 2);
    for (const [group, members] of groups) {
      const byTask: Record<string, ClassificationReport & { task: string }> = {};
      for (const [task, classes] of tasks) {
        const labelled = singleClass(members, classes);
        if (labelled.length === 0) continue;
        const prompts = resolveClasses(classes, o.promptsPerClass ?? 10, 0);
        const probs = await Promise.all(labelled.map(([it]) => model.classify(it.embedding, prompts)));
        byTask[task] = {
          task: classes.join(' vs '),
          ...classificationReport(
            classes,
            labelled.map(([, c]) => c),
            probs.map((p) => p.map((x) => x.probability)),
          ),
        };
      }
      result.zeroshot[group] = byTask;
    }
  }
  if (o.task === 'retrieval' || o.task === 'all') {
    if (!o.reports) throw new Error('retrieval needs --reports (the sentences to retrieve)');
    const classes = ZERO_SHOT_TASKS.pneumonia!;
    const classIdx = classes.map((c) => observationIndex(c));
    const sentences: { text: string; cls: number }[] = [];
    const seen = new Set<string>();
    for await (const r of readReports(o.reports, { split: o.reportSplit })) {
      for (const s of labelReport(reportText(r)).sentences) {
        const hits = classIdx.flatMap((ci, k) => (s.labels[ci] === 1 ? [k] : []));
        const key = s.text.toLowerCase();
        if (hits.length === 1 && !seen.has(key)) {
          seen.add(key);
          sentences.push({ text: s.text, cls: hits[0]! });
        }
      }
    }
    if (sentences.length === 0) throw new Error(`${o.reports}: no sentence is labelled exactly one of ${classes.join(', ')}`);
    const sentenceEmbeds = await model.embedTexts(sentences.map((s) => s.text));
    const textCorpus = sentences.map((s, i) => ({ embedding: sentenceEmbeds[i]!, value: s.cls }));
    result.retrieval = {};
    for (const [group, members] of groups) {
      const labelled = singleClass(members, classes);
      if (labelled.length === 0) continue;
      const i2t = labelled.map(([it, c]) => topK(it.embedding, textCorpus, 10).map((sc) => sc === c));
      const imageCorpus = labelled.map(([it, c]) => ({ embedding: it.embedding, value: c }));
      // Text queries balanced over classes (most report sentences are normal), up to maxTextQueries.
      const perClass = Math.min(
        Math.floor((o.maxTextQueries ?? 500) / classes.length),
        ...classes.map((_, k) => sentences.filter((s) => s.cls === k).length),
      );
      const queries = classes.flatMap((_, k) => sentences.flatMap((s, i) => (s.cls === k ? [i] : [])).slice(0, perClass));
      const t2i = queries.map((i) => topK(sentenceEmbeds[i]!, imageCorpus, 10).map((c) => c === sentences[i]!.cls));
      result.retrieval[group] = { imageToText: precisionAtK(i2t), textToImage: precisionAtK(t2i) };
    }
  }
  return result;
}
