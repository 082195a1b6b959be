/**
 * Report tables (CSV or JSONL): an id column, text columns (default `findings` and `impression`),
 * and optionally the 14 observation columns.
 */
import { hasLabelColumns, labelRowFromRecord, type LabelRow } from '../labeler/index.ts';
import { readTable, TableError } from './tables.ts';

export interface Report {
  id: string;
  /** The text fields, in the order asked for. */
  text: Record<string, string>;
  /** Reference labels from the table, when it has the 14 columns. */
  labels?: LabelRow;
  /** Remaining columns (split, etc.), kept as metadata. */
  meta: Record<string, string>;
}

export interface ReportTableOptions {
  idColumn?: string;
  textColumns?: string[];
  /** Keep only rows whose `split` column equals this. */
  split?: string;
}

const ID_CANDIDATES = ['id', 'report_id', 'uid', 'study_id'];
export const DEFAULT_TEXT_COLUMNS = ['findings', 'impression'];

export async function* readReports(file: string, options: ReportTableOptions = {}): AsyncGenerator<Report> {
  const textColumns = options.textColumns ?? DEFAULT_TEXT_COLUMNS;
  let idColumn = options.idColumn;
  let withLabels = false;
  let checked = false;
  const seen = new Set<string>();
  for await (const { row, record } of readTable(file)) {
    if (!checked) {
      const columns = Object.keys(record);
      idColumn ??= ID_CANDIDATES.find((c) => columns.includes(c));
      if (!idColumn || !columns.includes(idColumn))
        throw new TableError(`no id column (looked for ${options.idColumn ?? ID_CANDIDATES.join(', ')})`, file);
      const missing = textColumns.filter((c) => !columns.includes(c));
      if (missing.length === textColumns.length)
        throw new TableError(`none of the text columns ${textColumns.join(', ')} is present`, file);
      if (options.split !== undefined && !columns.includes('split')) throw new TableError('no split column to filter on', file);
      withLabels = hasLabelColumns(columns);
      checked = true;
    }
    if (options.split !== undefined && record.split !== options.split) continue;
    const id = (record[idColumn!] ?? '').trim();
    if (!id) throw new TableError('empty report id', file, row);
    if (seen.has(id)) throw new TableError(`duplicate report id "${id}"`, file, row);
    seen.add(id);
    const text: Record<string, string> = {};
    for (const c of textColumns) text[c] = record[c] ?? '';
    const meta: Record<string, string> = {};
    for (const [k, v] of Object.entries(record)) if (k !== idColumn && !textColumns.includes(k)) meta[k] = v;
    let labels: LabelRow | undefined;
    if (withLabels) {
      try {
        labels = labelRowFromRecord(record);
      } catch (err) {
        throw new TableError((err as Error).message, file, row);
      }
    }
    yield labels ? { id, text, labels, meta } : { id, text, meta };
  }
}

/** The report's text fields joined, in column order, one per paragraph. */
export function reportText(report: Report): string {
  return Object.values(report.text)
    .filter((t) => t.trim().length > 0)
    .join('\n');
}
