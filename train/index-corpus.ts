/**
 * `medclip train --from-index`: an index bundle (e.g. one built from a PACS) as training data. The live version is
 * read under a reader lease and verified; its live images become training records carrying their report link, its
 * reports the text side. Pixels come from where the builder read them: an image read from DICOMweb is fetched again
 * from the server the bundle records (WADO-RS, into the run's cache, so a rerun fetches nothing), an image read from
 * a file is read under `root`. An image that cannot be fetched is skipped and listed; a server out of reach ends the
 * run with a clear error (the instances fetched so far stay cached).
 */
import { existsSync } from 'node:fs';
import { mkdir, rename, writeFile } from 'node:fs/promises';
import { basename, join, resolve } from 'node:path';
import pLimit from 'p-limit';
import { currentVersion, readVersion, ROOT_VERSION, takeLease, type StoredReport } from '../core/bundle/index.ts';
import { DicomwebClient, DicomwebError, type DicomwebAuth } from '../core/dicom/index.ts';
import { labelRowFromObject } from '../core/labeler/index.ts';
import type { ImageRecord, Report } from '../core/tables/index.ts';
import { TrainError } from './options.ts';

export interface IndexCorpusOptions {
  /** Folder the bundle's file paths start from (the image table's folder at build time); default the working folder. */
  root?: string;
  /** The DICOMweb server to fetch from (default: the one the bundle records) and its credentials. */
  dicomweb?: { url?: string; auth?: DicomwebAuth };
  /** Where fetched instances are kept (`<cacheDir>/dicomweb/<SOP Instance UID>.dcm`). */
  cacheDir: string;
  concurrency?: number;
  log?: (line: string) => void;
}

export interface IndexCorpus {
  images: ImageRecord[];
  reports: Report[];
  /** Instances fetched from the server by this run (the rest were in the cache or are files). */
  fetched: number;
  skipped: { id: string; reason: string }[];
}

const DICOMWEB_PATH = /^dicomweb\/([0-9.]+)\/([0-9.]+)\/([0-9.]+)$/;

function asReport(r: StoredReport): Report {
  return { id: r.id, text: r.text, meta: {} };
}

export async function readIndexCorpus(location: string, o: IndexCorpusOptions): Promise<IndexCorpus> {
  const dir = await currentVersion(location, 'manifest.json');
  if (!dir) throw new TrainError(`--from-index ${location}: not an index bundle (no manifest.json)`);
  const lease = await takeLease(location, dir === location ? ROOT_VERSION : basename(dir));
  let version: Awaited<ReturnType<typeof readVersion>>;
  try {
    version = await readVersion(dir, { verify: true });
  } catch (err) {
    throw new TrainError(`--from-index: ${(err as Error).message}`);
  } finally {
    await lease.release();
  }
  const metas = version.images.flatMap((shard) => [...shard.meta].filter((m) => !m.deleted));
  const reports = [...version.storedReports.values()].map(asReport);
  const root = resolve(o.root ?? '.');
  const url = o.dicomweb?.url ?? version.manifest.dicomweb?.url;
  const needsServer = metas.some((m) => DICOMWEB_PATH.test(m.path));
  if (needsServer && !url)
    throw new TrainError(
      `--from-index ${location}: its images were read from DICOMweb but the bundle names no server; give --dicomweb URL`,
    );
  const client = needsServer ? new DicomwebClient(url!, { auth: o.dicomweb?.auth }) : undefined;
  const cache = join(o.cacheDir, 'dicomweb');
  await mkdir(cache, { recursive: true });
  const out: IndexCorpus = { images: [], reports, fetched: 0, skipped: [] };
  const limit = pLimit(o.concurrency ?? 4);
  const records = await Promise.all(
    metas.map((m) =>
      limit(async (): Promise<ImageRecord | undefined> => {
        const meta: Record<string, string> = { source: m.source ?? 'index' };
        if (m.reportId) meta.report_id = m.reportId;
        const base = { id: m.id, labels: labelRowFromObject(m.labels ?? {}), meta, ...(m.view ? { view: m.view } : {}) };
        const uids = DICOMWEB_PATH.exec(m.path);
        if (!uids) return { ...base, file: resolve(root, m.path) };
        const file = join(cache, `${uids[3]}.dcm`);
        if (existsSync(file)) return { ...base, file };
        try {
          const bytes = await client!.retrieveInstance(uids[1]!, uids[2]!, uids[3]!);
          await writeFile(`${file}.${process.pid}.tmp`, bytes);
          await rename(`${file}.${process.pid}.tmp`, file);
          out.fetched++;
          return { ...base, file };
        } catch (err) {
          if (err instanceof DicomwebError && err.kind === 'unavailable')
            throw new TrainError(`--from-index: ${err.message}; the ${out.fetched} instance(s) fetched so far are cached, run again`);
          out.skipped.push({ id: m.id, reason: (err as Error).message });
          return undefined;
        }
      }),
    ),
  );
  out.images = records.filter((r): r is ImageRecord => r !== undefined);
  o.log?.(
    `index ${location} (${version.manifest.model.name}, version ${version.manifest.version}): ${out.images.length} images, ${reports.length} reports${client ? `, ${out.fetched} instance(s) fetched from ${client.base}` : ''}`,
  );
  return out;
}
