/**
 * Corpus readers for the index builder: images from an image table or a recursive folder scan, and reports
 * from a report table, split into labelled sentences. Streams: nothing holds the whole corpus.
 */
import { open, readdir } from 'node:fs/promises';
import { dirname, extname, join, relative, sep } from 'node:path';
import { readImageTable, readReports, reportText } from '../core/tables/index.ts';
import { isDicom } from '../core/image/index.ts';
import { readDicomHeader } from '../core/dicom/index.ts';
import { labelRowToObject, type LabelRow, labelReport } from '../core/labeler/index.ts';
import type { ImageMeta, SentenceMeta, StoredLabels, StoredReport } from '../core/bundle/index.ts';

export interface ImageItem {
  id: string;
  file: string;
  meta: ImageMeta;
  /** Set when the reader could not deliver the image (recorded as an error, never embedded). */
  failure?: string;
}

const IMAGE_EXTENSIONS = new Set(['.png', '.jpg', '.jpeg', '.dcm', '.dicom']);

/** A folder's image files, recursively, in a stable (sorted) order; extension-less files are kept if they are DICOM. */
export async function* scanImageDir(dir: string): AsyncGenerator<ImageItem> {
  const walk = async function* (d: string): AsyncGenerator<string> {
    const entries = (await readdir(d, { withFileTypes: true })).sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    for (const e of entries) {
      if (e.name.startsWith('.')) continue;
      const p = join(d, e.name);
      if (e.isDirectory()) yield* walk(p);
      else if (e.isFile()) yield p;
    }
  };
  for await (const file of walk(dir)) {
    const ext = extname(file).toLowerCase();
    if (!IMAGE_EXTENSIONS.has(ext)) {
      if (ext !== '' || !isDicom(await fileHead(file, 132))) continue;
    }
    const id = relative(dir, file).split(sep).join('/');
    const meta: ImageMeta = { id, path: id, labels: {} };
    // a DICOM file links back to its archive: its UIDs (and view) from the header
    if (ext !== '.png' && ext !== '.jpg' && ext !== '.jpeg') {
      const header = readDicomHeader(await fileHead(file, DICOM_HEADER_BYTES));
      if (header) {
        meta.dicom = { study: header.study, series: header.series, instance: header.instance };
        if (header.viewPosition) meta.view = header.viewPosition;
      }
    }
    yield { id, file, meta };
  }
}

/** Enough of a DICOM file to hold its header up to the pixel data (a header that is longer is read without UIDs). */
const DICOM_HEADER_BYTES = 256 * 1024;

/** The first `n` bytes of a file (fewer when it is shorter; none when it cannot be read: the embedder reports that). */
async function fileHead(file: string, n: number): Promise<Uint8Array> {
  const fh = await open(file, 'r').catch(() => undefined);
  if (!fh) return new Uint8Array(0);
  try {
    const buf = Buffer.alloc(n);
    const { bytesRead } = await fh.read(buf, 0, n, 0);
    return buf.subarray(0, bytesRead);
  } finally {
    await fh.close();
  }
}

export function storedLabels(row: LabelRow | undefined): StoredLabels {
  return row ? (labelRowToObject(row) as StoredLabels) : {};
}

/** Rows of an image table as index items (labels, view and source kept as metadata for filters). */
export async function* tableImages(table: string, options: { root?: string; split?: string } = {}): AsyncGenerator<ImageItem> {
  for await (const r of readImageTable(table, options)) {
    const { source, view: _view, split: _split, report_id: reportId, ...rest } = r.meta;
    void _view;
    void _split;
    const meta: ImageMeta = {
      id: r.id,
      path: relative(options.root ?? dirname(table), r.file)
        .split(sep)
        .join('/'),
      labels: storedLabels(r.labels),
    };
    if (r.view) meta.view = r.view;
    if (source) meta.source = source;
    if (reportId?.trim()) meta.reportId = reportId.trim();
    const extra = Object.fromEntries(Object.entries(rest).filter(([, v]) => v !== '' && v !== undefined));
    if (Object.keys(extra).length) meta.meta = extra;
    yield { id: r.id, file: r.file, meta };
  }
}

export interface ReportItem {
  report: StoredReport;
  sentences: { text: string; meta: SentenceMeta }[];
  /** Set when the reader could not deliver the report (recorded as an error). */
  failure?: string;
}

/** A report with its labelled sentences (the labeler's split; sentence ids are `reportId#index`). */
export function reportItem(id: string, text: Record<string, string>, extra: Pick<StoredReport, 'dicom'> = {}): ReportItem {
  const labelled = labelReport(reportText({ id, text, meta: {} }));
  return {
    report: { id, text, labels: storedLabels(labelled.labels), ...extra },
    sentences: labelled.sentences.map((s) => ({
      text: s.text,
      meta: { id: `${id}#${s.index}`, reportId: id, index: s.index, text: s.text, labels: storedLabels(s.labels) },
    })),
  };
}

/** Reports with their labelled sentences (the labeler's split; sentence ids are `reportId#index`). */
export async function* reportItems(
  file: string,
  options: { split?: string; idColumn?: string; textColumns?: string[] } = {},
): AsyncGenerator<ReportItem> {
  for await (const r of readReports(file, options)) yield reportItem(r.id, r.text);
}
