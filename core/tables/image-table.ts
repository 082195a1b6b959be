/**
 * Image tables (CSV or JSONL): a `path` column (or CheXpert's `Path`) relative to a root folder, the 14
 * observation columns, and any other columns kept as metadata (`patient_id`, `view`, `split`, `source`, ...).
 * CheXpert's own CSVs load unchanged: `Path`, float labels (`1.0`, `-1.0`), `Frontal/Lateral` and `AP/PA` as view.
 */
import { dirname, isAbsolute, normalize, resolve, sep } from 'node:path';
import { labelRowFromRecord, OBSERVATIONS, type LabelRow } from '../labeler/index.ts';
import { readTable, TableError } from './tables.ts';

export interface ImageRecord {
  /** Stable id: the `id` column when present, else the path as written in the table. */
  id: string;
  /** Absolute file path. */
  file: string;
  labels: LabelRow;
  /** `PA`, `AP`, `LATERAL`, ... when the table says. */
  view?: string;
  meta: Record<string, string>;
}

export interface ImageTableOptions {
  /** Folder that relative paths start from; default the table's folder. */
  root?: string;
  /** Keep only rows whose `split` column equals this. */
  split?: string;
}

const OBSERVATION_SET = new Set<string>(OBSERVATIONS);

function viewOf(record: Record<string, string>): string | undefined {
  const v = record.view ?? record.View ?? record['AP/PA'] ?? record.ViewPosition;
  if (v?.trim()) return v.trim().toUpperCase();
  const fl = record['Frontal/Lateral'];
  if (fl && /lateral/i.test(fl)) return 'LATERAL';
  return undefined;
}

export async function* readImageTable(file: string, options: ImageTableOptions = {}): AsyncGenerator<ImageRecord> {
  const root = resolve(options.root ?? dirname(file));
  let pathColumn: string | undefined;
  const seen = new Set<string>();
  for await (const { row, record } of readTable(file)) {
    if (!pathColumn) {
      pathColumn = ['path', 'Path'].find((c) => c in record);
      if (!pathColumn) throw new TableError('no path column (expected "path", or CheXpert\'s "Path")', file);
      if (options.split !== undefined && !('split' in record)) throw new TableError('no split column to filter on', file);
    }
    if (options.split !== undefined && record.split !== options.split) continue;
    const rel = (record[pathColumn] ?? '').trim();
    if (!rel) throw new TableError('empty image path', file, row);
    const abs = resolve(root, rel);
    if (!isAbsolute(rel) && !(abs === root || abs.startsWith(root + sep)))
      throw new TableError(`image path leaves the root folder: ${normalize(rel)}`, file, row);
    const id = (record.id ?? '').trim() || rel;
    if (seen.has(id)) throw new TableError(`duplicate image id "${id}"`, file, row);
    seen.add(id);
    let labels: LabelRow;
    try {
      labels = labelRowFromRecord(record);
    } catch (err) {
      throw new TableError((err as Error).message, file, row);
    }
    const meta: Record<string, string> = {};
    for (const [k, v] of Object.entries(record)) if (k !== pathColumn && k !== 'id' && !OBSERVATION_SET.has(k)) meta[k] = v;
    const view = viewOf(record);
    yield view ? { id, file: abs, labels, view, meta } : { id, file: abs, labels, meta };
  }
}
