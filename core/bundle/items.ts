/**
 * What a bundle stores per item: image, sentence, distinct-text metadata, reports, and search hits over them.
 */
import type { Modifiers, Observation } from '../labeler/index.ts';
import type { DicomUids } from '../dicom/index.ts';

/** Labels as stored in metadata: observation -> 1 | 0 | -1 (unmentioned observations omitted). */
export type StoredLabels = Partial<Record<Observation, 1 | 0 | -1>>;

export interface ImageMeta {
  id: string;
  /** Where the image was read from (as given to the builder). */
  path: string;
  labels: StoredLabels;
  view?: string;
  source?: string;
  meta?: Record<string, string>;
  /** The DICOM UIDs of an image read from DICOM (a PACS or DICOM files): links back to the archive. */
  dicom?: DicomUids;
  /**
   * The image's own report, indexed in the same bundle: the image table's `report_id`, or for an image read from a
   * PACS its study's SR report. Every write keeps it consistent (a link to a report not in the bundle is dropped).
   */
  reportId?: string;
  deleted?: boolean;
}

export interface SentenceMeta {
  id: string;
  reportId: string;
  /** Sentence number within the report (the labeler's split). */
  index: number;
  /** The sentence as split at build time (format v2). */
  text?: string;
  labels: StoredLabels;
  deleted?: boolean;
}

export interface StoredReport {
  id: string;
  text: Record<string, string>;
  labels: StoredLabels;
  /** The UIDs of the structured report it was read from (its study links it to that study's images). */
  dicom?: DicomUids;
  deleted?: boolean;
}

/** A distinct sentence text of the reports (the `texts` index: one vector per wording, for collapsed search). */
export interface TextMeta {
  id: string;
  text: string;
  /** The labeler's labels of the sentence (a function of its text). */
  labels: StoredLabels;
  /** Mean cosine to its 10 nearest images of the bundle (hubness; image -> reports subtracts it), when it has images. */
  hub?: number;
  /** Side, extent, change and location the sentence states (core/labeler/modifiers.ts); absent in older bundles. */
  modifiers?: Modifiers;
  deleted?: boolean;
}

export type ItemMeta = ImageMeta | SentenceMeta | TextMeta;

export interface Hit<M extends ItemMeta = ItemMeta> {
  /** Inner product of unit vectors (cosine similarity). */
  score: number;
  meta: M;
}

/** Ids of collapsed reports listed per hit (`reportsWithSentence` gives the full count). */
export const MAX_COLLAPSED_IDS = 20;

/** A report hit with its fused score, and the other reports whose best sentence was the same text (collapsed). */
export type ReportSentenceHit = Hit<SentenceMeta> & { fused: number; same: string[] };
