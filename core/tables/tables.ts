/**
 * Streaming readers for the project's tables: CSV (csv-parse) and JSONL, one record per row.
 * Errors name the file and row, never the content of a row (rows can hold report text).
 */
import { createReadStream } from 'node:fs';
import { access } from 'node:fs/promises';
import { createInterface } from 'node:readline';
import { parse } from 'csv-parse';
import { MedclipError } from '../errors.ts';

export type TableRecord = Record<string, string>;

export class TableError extends MedclipError {
  constructor(
    message: string,
    readonly file: string,
    readonly row?: number,
  ) {
    super(row === undefined ? `${file}: ${message}` : `${file}, row ${row}: ${message}`, 'input');
  }
}

export type TableFormat = 'csv' | 'jsonl';

export function tableFormat(file: string): TableFormat {
  return /\.jsonl?$/i.test(file) || /\.ndjson$/i.test(file) ? 'jsonl' : 'csv';
}

async function assertReadable(file: string): Promise<void> {
  try {
    await access(file);
  } catch {
    throw new TableError('file not found or not readable', file);
  }
}

/** Yield the records of a CSV (header row required) or JSONL table as string maps, with 1-based row numbers. */
export async function* readTable(file: string): AsyncGenerator<{ row: number; record: TableRecord }> {
  await assertReadable(file);
  if (tableFormat(file) === 'jsonl') {
    const lines = createInterface({ input: createReadStream(file, 'utf8'), crlfDelay: Infinity });
    let row = 0;
    for await (const line of lines) {
      row++;
      if (!line.trim()) continue;
      let value: unknown;
      try {
        value = JSON.parse(line);
      } catch {
        throw new TableError('invalid JSON', file, row);
      }
      if (!value || typeof value !== 'object' || Array.isArray(value)) throw new TableError('a line must be a JSON object', file, row);
      const record: TableRecord = {};
      for (const [k, v] of Object.entries(value)) record[k] = v === null || v === undefined ? '' : typeof v === 'string' ? v : String(v);
      yield { row, record };
    }
    return;
  }
  const parser = createReadStream(file).pipe(
    parse({ columns: true, bom: true, skip_empty_lines: true, relax_column_count: false, trim: false }),
  );
  let row = 1;
  try {
    for await (const record of parser as AsyncIterable<TableRecord>) {
      row++;
      yield { row, record };
    }
  } catch (err) {
    const e = err as { code?: string; lines?: number };
    throw new TableError(`malformed CSV (${e.code ?? 'parse error'})`, file, e.lines ?? row);
  }
}

/** Read a whole table into memory (for tables that are known to be small, e.g. label references). */
export async function readTableAll(file: string): Promise<TableRecord[]> {
  const out: TableRecord[] = [];
  for await (const { record } of readTable(file)) out.push(record);
  return out;
}
