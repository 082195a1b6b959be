/**
 * A PACS as the index builder's corpus (reader stage): QIDO-RS lists chest X-ray series (modality CR/DX and body
 * part CHEST by default; `allModalities` widens both) and their instances, WADO-RS fetches each new one (bounded
 * concurrency, retries with backoff) into the build's partial folder, so a killed build resumes without fetching
 * again. Instances already in the bundle are never fetched; non-image objects and bad instances become error
 * entries, never a failed build. Text SRs of the same studies become reports linked to their study.
 */
import { existsSync } from 'node:fs';
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { pMapIterable } from 'p-map';
import {
  isNonImageSopClass,
  readDicomHeader,
  TEXT_SR_CLASSES,
  type DicomUids,
  readTextReport,
  type DicomwebClient,
  DicomwebError,
  jsonValue,
  type DicomJson,
  type DicomwebAuth,
} from '../core/dicom/index.ts';
import type { ImageMeta } from '../core/bundle/index.ts';
import { reportItem, type ImageItem, type ReportItem } from './corpus.ts';

export interface DicomwebSource {
  url: string;
  auth?: DicomwebAuth;
  /** Only studies from this date on (YYYYMMDD or YYYY-MM-DD); default: the bundle's cursor on --append, else all. */
  since?: string;
  /** Only these studies. */
  studies?: string[];
  /** Every modality and body part, not only CR/DX chest. */
  allModalities?: boolean;
  /** Instances fetched at once (default 4). */
  concurrency?: number;
}

/** What a run found on the server (the summary and the bundle's cursor). */
export interface DicomwebStats {
  listed: number;
  alreadyIndexed: number;
  /** Left out by the body part filter (known only once fetched, when the server's search does not return it). */
  filtered: number;
  /** Fetched from the server by this run. */
  fetched: number;
  /** Read from the partial build's folder, where an interrupted run had fetched them (a --resume). */
  cached: number;
  reports: number;
  /** Latest StudyDate among the instances listed (YYYYMMDD). */
  latestStudyDate?: string;
}

interface Listed extends DicomUids {
  sopClass?: string;
  bodyPart?: string;
  viewPosition?: string;
  studyDate?: string;
  modality?: string;
}

const UID = /^[0-9]+(\.[0-9]+)*$/;
const CHEST_MODALITIES = ['CR', 'DX'];
const INSTANCE_FIELDS = ['00080016', '00080020', '00080060', '00180015', '00185101'];

/** A date as DICOM writes it (YYYYMMDD), from YYYYMMDD or YYYY-MM-DD. */
export function dicomDate(value: string): string {
  const m = /^(\d{4})-?(\d{2})-?(\d{2})$/.exec(value.trim());
  if (!m) throw new Error(`"${value}" is not a date (YYYY-MM-DD)`);
  return `${m[1]}${m[2]}${m[3]}`;
}

function listedInstance(series: { study: string; series: string; date?: string }, x: DicomJson): Listed | undefined {
  const instance = jsonValue(x, '00080018');
  if (!instance) return undefined;
  return {
    study: series.study,
    series: series.series,
    instance,
    sopClass: jsonValue(x, '00080016'),
    bodyPart: jsonValue(x, '00180015')?.toUpperCase(),
    viewPosition: jsonValue(x, '00185101')?.toUpperCase(),
    studyDate: jsonValue(x, '00080020') ?? series.date,
    modality: jsonValue(x, '00080060')?.toUpperCase(),
  };
}

/** Series matching the filters (each once), then their instances. */
async function* listInstances(client: DicomwebClient, o: DicomwebSource, modalities: (string | undefined)[]): AsyncGenerator<Listed> {
  const seen = new Set<string>();
  const date = o.since ? `${dicomDate(o.since)}-` : undefined;
  for (const modality of modalities) {
    const searches = o.studies?.length
      ? o.studies.map((study) => client.search(`/studies/${study}/series`, { Modality: modality, StudyDate: date }))
      : [client.search('/series', { Modality: modality, StudyDate: date, includefield: '00080020' })];
    for (const search of searches)
      for await (const s of search) {
        const study = jsonValue(s, '0020000D');
        const series = jsonValue(s, '0020000E');
        if (!study || !series || seen.has(series) || !UID.test(study) || !UID.test(series)) continue;
        seen.add(series);
        for await (const x of client.search(`/studies/${study}/series/${series}/instances`, { includefield: INSTANCE_FIELDS })) {
          const item = listedInstance({ study, series, date: jsonValue(s, '00080020') }, x);
          if (item) yield item;
        }
      }
  }
}

/**
 * A server out of reach, busy or failing (after the client's retries): not the instance's fault. It ends the run with
 * exit 75 instead of being recorded as a skipped item, which a later run would never fetch again.
 */
function isOutage(err: unknown): boolean {
  return err instanceof DicomwebError && err.kind === 'unavailable';
}

/** Fetch an instance into the cache folder (atomically), or read it from there when an earlier run did. */
async function fetchCached(
  client: DicomwebClient,
  cacheDir: string,
  item: Listed,
  stats: DicomwebStats,
): Promise<{ file: string; bytes: Uint8Array }> {
  const file = join(cacheDir, `${item.instance}.dcm`);
  if (existsSync(file)) {
    stats.cached++;
    return { file, bytes: await readFile(file) };
  }
  const bytes = await client.retrieveInstance(item.study, item.series, item.instance);
  stats.fetched++;
  const tmp = `${file}.${process.pid}.tmp`;
  await writeFile(tmp, bytes);
  await rename(tmp, file);
  return { file, bytes };
}

const later = (a: string | undefined, b: string | undefined) => (a && (!b || a > b) ? a : b);

/**
 * Image items for the builder, in listing order; `skip` holds the ids (SOP Instance UIDs) the bundle already has
 * or has recorded as errors. An item with `failure` is recorded in errors.jsonl; one filtered out is not yielded.
 */
export async function* dicomwebImages(
  client: DicomwebClient,
  o: DicomwebSource,
  cacheDir: string,
  skip: Set<string>,
  stats: DicomwebStats,
  studiesWithImages: Set<string>,
): AsyncGenerator<ImageItem> {
  await mkdir(cacheDir, { recursive: true });
  const listed = (async function* () {
    for await (const item of listInstances(client, o, o.allModalities ? [undefined] : CHEST_MODALITIES)) {
      stats.listed++;
      stats.latestStudyDate = later(item.studyDate, stats.latestStudyDate);
      if (skip.has(item.instance)) {
        stats.alreadyIndexed++;
        studiesWithImages.add(item.study);
        continue;
      }
      if (!o.allModalities && item.bodyPart && item.bodyPart !== 'CHEST') {
        stats.filtered++;
        continue;
      }
      yield item;
    }
  })();
  const fetched = pMapIterable(
    listed,
    async (item): Promise<ImageItem | undefined> => {
      const path = `dicomweb/${item.study}/${item.series}/${item.instance}`;
      const base: ImageMeta = {
        id: item.instance,
        path,
        labels: {},
        source: 'dicomweb',
        dicom: { study: item.study, series: item.series, instance: item.instance },
      };
      const failed = (reason: string): ImageItem => ({ id: item.instance, file: '', meta: base, failure: reason });
      if (!UID.test(item.instance)) return failed('SOP Instance UID is not a valid UID');
      if (item.sopClass && (isNonImageSopClass(item.sopClass) || TEXT_SR_CLASSES.has(item.sopClass)))
        return failed(`not an image: SOP class ${item.sopClass}`);
      let fetchedItem: { file: string; bytes: Uint8Array };
      try {
        fetchedItem = await fetchCached(client, cacheDir, item, stats);
      } catch (err) {
        if (isOutage(err)) throw err; // the run ends (exit 75); the same command again fetches it
        return failed((err as Error).message);
      }
      const header = readDicomHeader(fetchedItem.bytes);
      const bodyPart = item.bodyPart ?? header?.bodyPart;
      if (!o.allModalities && bodyPart !== 'CHEST') {
        stats.filtered++;
        return undefined;
      }
      studiesWithImages.add(item.study);
      const view = item.viewPosition ?? header?.viewPosition;
      const studyDate = item.studyDate ?? header?.studyDate;
      const meta: ImageMeta = { ...base, ...(view ? { view } : {}) };
      const extra = Object.fromEntries(
        Object.entries({ studyDate, modality: item.modality ?? header?.modality, bodyPart }).filter(([, v]) => v),
      ) as Record<string, string>;
      if (Object.keys(extra).length) meta.meta = extra;
      return { id: item.instance, file: fetchedItem.file, meta };
    },
    { concurrency: o.concurrency ?? 4 },
  );
  for await (const item of fetched) if (item) yield item;
}

/**
 * Text SR reports of the studies that have images (this run's and the bundle's): SR series found with the same date
 * and study filters, read and labelled as reports whose id is the SR's SOP Instance UID.
 */
export async function* dicomwebReports(
  client: DicomwebClient,
  o: DicomwebSource,
  cacheDir: string,
  skip: Set<string>,
  studiesWithImages: Set<string>,
  stats: DicomwebStats,
): AsyncGenerator<ReportItem> {
  const listed = (async function* () {
    for await (const item of listInstances(client, o, ['SR'])) {
      if (skip.has(item.instance) || !studiesWithImages.has(item.study)) continue;
      if (item.sopClass && !TEXT_SR_CLASSES.has(item.sopClass)) continue;
      yield item;
    }
  })();
  const read = pMapIterable(
    listed,
    async (item): Promise<ReportItem> => {
      const uids = { study: item.study, series: item.series, instance: item.instance };
      try {
        const { bytes } = await fetchCached(client, cacheDir, item, stats);
        const sr = readTextReport(bytes);
        stats.reports++;
        return reportItem(item.instance, sr.text, { dicom: uids });
      } catch (err) {
        if (isOutage(err)) throw err;
        return { report: { id: item.instance, text: {}, labels: {}, dicom: uids }, sentences: [], failure: (err as Error).message };
      }
    },
    { concurrency: o.concurrency ?? 4 },
  );
  yield* read;
}
