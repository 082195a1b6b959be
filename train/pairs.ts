/**
 * True image-report pairs for training (MedCLIP's paired + unpaired setting): an image that names its report (the
 * image table's `report_id`, or the link an index bundle stores) is paired with that report's labelled sentences.
 * A paired image with no labels of its own takes its report's labels (the labeler's), so an archive's unlabelled
 * images still get semantic targets. A batch's pairs become the [n, n] matrix the loss reads (train/loss.ts
 * `withPairs`).
 */
import { labelMask, labelVector, NUM_OBSERVATIONS } from '../core/labeler/index.ts';
import type { ImageSet, SentenceSet } from './data.ts';

export interface Pairing {
  /** Per image: its report's labelled sentences (indices into the sentence set); undefined for an unpaired image. */
  sentencesOf: (number[] | undefined)[];
  /** Images whose report was found among the reports. */
  pairs: number;
  /** Of those, images whose report has at least one labelled sentence (the ones that can form a true pair). */
  pairedWithSentences: number;
  /** Paired images without labels of their own that took their report's labels. */
  labelsFromReports: number;
  /** Images naming a report that is not among the reports (counted, never fatal). */
  missingReports: number;
}

/** Pair each image with its report's sentences; fills in report labels for paired images without their own (in place). */
export function pairImages(images: ImageSet, sentences: SentenceSet): Pairing {
  const out: Pairing = { sentencesOf: [], pairs: 0, pairedWithSentences: 0, labelsFromReports: 0, missingReports: 0 };
  images.ids.forEach((_, i) => {
    const reportId = images.reportIds[i];
    const own = reportId === undefined ? undefined : sentences.byReport.get(reportId);
    if (reportId !== undefined && !own) out.missingReports++;
    out.sentencesOf.push(own?.length ? own : undefined);
    if (!own) return;
    out.pairs++;
    if (own.length) out.pairedWithSentences++;
    const row = i * NUM_OBSERVATIONS;
    const known = images.known.subarray(row, row + NUM_OBSERVATIONS);
    if (known.some((k) => k > 0)) return;
    const reportLabels = sentences.reportLabels.get(reportId!)!;
    if (!reportLabels.some((v) => v !== null)) return;
    images.labels.set(labelVector(reportLabels, 'zero'), row);
    images.known.set(labelMask(reportLabels, 'ignore'), row);
    out.labelsFromReports++;
  });
  return out;
}

/** The pair matrix of a batch slice: [n, n], 1 where sentence `sentences[j]` is one of image `images[i]`'s own. */
export function pairMatrix(images: readonly number[], sentences: readonly number[], sentencesOf: Pairing['sentencesOf']): Float32Array {
  const n = images.length;
  const out = new Float32Array(n * n);
  for (let i = 0; i < n; i++) {
    const own = sentencesOf[images[i]!];
    if (!own) continue;
    for (let j = 0; j < n; j++) if (own.includes(sentences[j]!)) out[i * n + j] = 1;
  }
  return out;
}
