/**
 * `medclip eval --card`: the model card of a model bundle, measured on a labelled image table (the val split): per
 * observation, findings-mode ROC AUC with a 95% stratified bootstrap interval and the counts, per source and on the
 * pool of adult sources, and whether the pooled lower bound reaches the threshold (`validated`). The pool stands for
 * an archive's mix: per-source figures alone flatter a model (pneumonia vs normal inside one curated set says little
 * about pneumonia among every other finding).
 */
import { OBSERVATIONS } from '../core/labeler/index.ts';
import { aucInterval, type AucInterval } from '../core/metrics/index.ts';
import {
  CARD_FORMAT,
  VALIDATION_THRESHOLD,
  type CardFinding,
  type FindingEvidence,
  MedClipModel,
  ModelError,
  type ModelCard,
  writeModelCard,
} from '../core/model/index.ts';
import { embedImageTable, type Embedded } from './evaluate-model.ts';

export interface CardOptions {
  images: string;
  root?: string;
  split?: string;
  /** Sources pooled for the verdict; default: every source whose median patient age is 18 or more. */
  pool?: string[];
  threshold?: number;
  resamples?: number;
  onProgress?: (done: number, total: number) => void;
}

const sourceOf = (it: Embedded) => it.record.meta.source || '(none)';

/** Sources of adults: a median `patient_age` of 18 or more (a source without ages is left out). */
export function adultSources(items: Embedded[]): string[] {
  const ages = new Map<string, number[]>();
  for (const it of items) {
    const age = Number.parseFloat(it.record.meta.patient_age ?? '');
    if (!Number.isFinite(age)) continue;
    const list = ages.get(sourceOf(it)) ?? [];
    list.push(age);
    ages.set(sourceOf(it), list);
  }
  return [...ages]
    .filter(([, a]) => a.sort((x, y) => x - y)[Math.floor(a.length / 2)]! >= 18)
    .map(([s]) => s)
    .sort();
}

function evidence(found: AucInterval | undefined, members: { label: number }[]): FindingEvidence {
  const positives = members.filter((m) => m.label === 1).length;
  const round = (x: number) => Math.round(x * 1000) / 1000;
  return found
    ? { auc: round(found.auc), ci95: [round(found.low), round(found.high)], positives, negatives: members.length - positives }
    : { positives, negatives: members.length - positives };
}

export async function buildModelCard(model: MedClipModel, o: CardOptions): Promise<ModelCard> {
  const { items } = await embedImageTable(model, o);
  if (items.length === 0) throw new ModelError(`${o.images}: no readable labelled image${o.split ? ` in split ${o.split}` : ''}`);
  const scores = await Promise.all(items.map((it) => model.findings(it.embedding)));
  const pool = o.pool ?? adultSources(items);
  const threshold = o.threshold ?? VALIDATION_THRESHOLD;
  const sources = [...new Set(items.map(sourceOf))].sort();
  // a pooled source the table does not hold would leave the verdict resting on fewer images than asked
  const missing = pool.filter((s) => !sources.includes(s));
  if (missing.length)
    throw new ModelError(`card pool: no image of source ${missing.join(', ')} in ${o.images} (sources: ${sources.join(', ')})`);
  const findings: Record<string, CardFinding> = {};
  for (const [fi, name] of OBSERVATIONS.entries()) {
    // the images labelled for this finding (1 or 0; uncertain and unmentioned left out), with the finding's margin
    const labelled = (keep: (it: Embedded) => boolean) =>
      items.flatMap((it, i) => {
        const v = it.record.labels[fi];
        return keep(it) && (v === 1 || v === 0) ? [{ label: v, score: scores[i]![fi]!.margin }] : [];
      });
    const measure = (keep: (it: Embedded) => boolean, seed: number) => {
      const members = labelled(keep);
      const found = aucInterval(
        members.map((m) => m.label),
        members.map((m) => m.score),
        { resamples: o.resamples, seed },
      );
      return { found, e: evidence(found, members) };
    };
    const pooled = measure((it) => pool.includes(sourceOf(it)), fi + 1);
    findings[name] = {
      ...pooled.e,
      validated: pooled.found !== undefined && pooled.found.low >= threshold,
      bySource: Object.fromEntries(sources.map((s, si) => [s, measure((it) => sourceOf(it) === s, 100 * (si + 1) + fi).e])),
    };
  }
  const trained = model.manifest.trainedOn as Record<string, unknown> | undefined;
  return {
    format: CARD_FORMAT,
    model: model.name,
    createdAt: new Date().toISOString(),
    threshold,
    rule: `a finding is validated when the lower end of the 95% bootstrap interval of its findings-mode ROC AUC, on the pooled validation images of ${pool.join(' + ') || '(no source)'}, is at least ${threshold}; any other finding's score is shown but not used to rank or filter`,
    evaluatedOn: {
      images: o.images,
      ...(o.split ? { split: o.split } : {}),
      pool,
      pooled: items.filter((it) => pool.includes(sourceOf(it))).length,
      bySource: Object.fromEntries(sources.map((s) => [s, items.filter((it) => sourceOf(it) === s).length])),
    },
    ...(trained
      ? {
          trainedOn: Object.fromEntries(
            ['images', 'reports', 'split', 'steps', 'batch', 'loss'].filter((k) => k in trained).map((k) => [k, trained[k]]),
          ),
        }
      : {}),
    findings,
  };
}

/** Measure a model bundle's card on a labelled table and write it into the bundle (the model is loaded and closed here). */
export async function writeCardFor(modelDir: string, o: CardOptions): Promise<ModelCard> {
  const model = await MedClipModel.load(modelDir, { threads: 2 });
  let card: ModelCard;
  try {
    card = await buildModelCard(model, o);
  } finally {
    await model.close();
  }
  await writeModelCard(modelDir, card);
  return card;
}
