/**
 * The 14 CheXpert observations, their fixed order, and label vectors.
 *
 * A label value is one of:
 *   1    positive
 *   0    negative
 *  -1    uncertain
 *  null  unknown / not mentioned / not annotated
 */
import { MedclipError } from '../errors.ts';

export const OBSERVATIONS = [
  'No Finding',
  'Enlarged Cardiomediastinum',
  'Cardiomegaly',
  'Lung Lesion',
  'Lung Opacity',
  'Edema',
  'Consolidation',
  'Pneumonia',
  'Atelectasis',
  'Pneumothorax',
  'Pleural Effusion',
  'Pleural Other',
  'Fracture',
  'Support Devices',
] as const;

export type Observation = (typeof OBSERVATIONS)[number];
export const NUM_OBSERVATIONS = OBSERVATIONS.length;

/** The five CheXpert competition classes. */
export const COMPETITION_CLASSES = [
  'Atelectasis',
  'Cardiomegaly',
  'Consolidation',
  'Edema',
  'Pleural Effusion',
] as const satisfies readonly Observation[];

export type LabelValue = 1 | 0 | -1 | null;
/** One value per observation, in `OBSERVATIONS` order. */
export type LabelRow = LabelValue[];

/** What to do with an uncertain (-1) label when a numeric vector is needed. MedCLIP maps it to 0. */
export type UncertainPolicy = 'zero' | 'one' | 'ignore';

export class LabelParseError extends MedclipError {
  constructor(
    message: string,
    readonly column?: string,
  ) {
    super(message, 'input');
  }
}

const OBSERVATION_INDEX = new Map<string, number>(OBSERVATIONS.map((name, i) => [name, i]));

export function observationIndex(name: string): number {
  const i = OBSERVATION_INDEX.get(name);
  if (i === undefined) throw new LabelParseError(`unknown observation "${name}"; expected one of: ${OBSERVATIONS.join(', ')}`);
  return i;
}

export function isObservation(name: string): name is Observation {
  return OBSERVATION_INDEX.has(name);
}

/**
 * Parse one cell: `1`, `0`, `-1`, empty, and CheXpert's float spellings (`1.0`, `0.0`, `-1.0`).
 * Throws `LabelParseError` for anything else, so a malformed table never silently becomes negatives.
 */
export function parseLabelValue(raw: string | number | null | undefined, column?: string): LabelValue {
  if (raw === null || raw === undefined) return null;
  if (typeof raw === 'number') {
    if (Number.isNaN(raw)) return null;
    if (raw === 1 || raw === 0 || raw === -1) return raw;
    throw new LabelParseError(`label value ${raw} is not 1, 0, -1 or empty`, column);
  }
  const s = raw.trim();
  if (s === '' || s.toLowerCase() === 'nan') return null;
  const n = Number(s);
  if (n === 1 || n === 0 || n === -1) return n;
  throw new LabelParseError(`label value "${s.slice(0, 20)}" is not 1, 0, -1 or empty`, column);
}

/** True when a record (e.g. a CSV header row) has all 14 observation columns. */
export function hasLabelColumns(columns: Iterable<string>): boolean {
  const set = new Set(columns);
  return OBSERVATIONS.every((o) => set.has(o));
}

/** Read the 14 observation columns of a record. Missing columns count as unknown. */
export function labelRowFromRecord(record: Record<string, unknown>): LabelRow {
  return OBSERVATIONS.map((name) => {
    const v = record[name];
    return parseLabelValue(typeof v === 'string' || typeof v === 'number' ? v : null, name);
  });
}

export function emptyLabelRow(): LabelRow {
  return OBSERVATIONS.map(() => null);
}

/**
 * Numeric vector for the semantic matching loss: positives 1, negatives and unknown 0,
 * uncertain per `policy` ('ignore' gives 0 too; use `labelMask` to drop it from a metric).
 */
export function labelVector(row: LabelRow, policy: UncertainPolicy = 'zero'): Float32Array {
  const out = new Float32Array(NUM_OBSERVATIONS);
  row.forEach((v, i) => {
    if (v === 1) out[i] = 1;
    else if (v === -1 && policy === 'one') out[i] = 1;
  });
  return out;
}

/** 1 where a value is known (and, with policy 'ignore', certain); 0 elsewhere. */
export function labelMask(row: LabelRow, policy: UncertainPolicy = 'zero'): Float32Array {
  const out = new Float32Array(NUM_OBSERVATIONS);
  row.forEach((v, i) => {
    if (v === null) return;
    if (v === -1 && policy === 'ignore') return;
    out[i] = 1;
  });
  return out;
}

/** Names of the positive observations. */
export function positiveFindings(row: LabelRow): Observation[] {
  const out: Observation[] = [];
  row.forEach((v, i) => {
    if (v === 1) out.push(OBSERVATIONS[i]!);
  });
  return out;
}

/** Object form `{ "No Finding": 1, ... }` with nulls left out, for JSON metadata. */
export function labelRowToObject(row: LabelRow): Partial<Record<Observation, 1 | 0 | -1>> {
  const out: Partial<Record<Observation, 1 | 0 | -1>> = {};
  row.forEach((v, i) => {
    if (v !== null) out[OBSERVATIONS[i]!] = v;
  });
  return out;
}

export function labelRowFromObject(obj: Partial<Record<string, unknown>>): LabelRow {
  return labelRowFromRecord(obj as Record<string, unknown>);
}
