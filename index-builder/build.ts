/**
 * `medclip index`: embed an image corpus and a report corpus into a versioned index bundle.
 * Streams the corpus in batches (several in flight), keeps what is done in `<out>.partial/` so a killed build
 * resumes when the same command runs again (any other write discards it, with a notice), skips and records bad items,
 * and publishes a new version at the end.
 * `--append` adds to the latest version, `deleteFromBundle` removes items; every writer holds the bundle's lock
 * for its whole run, so concurrent writers queue and each applies its change on top of the latest version.
 */
import { existsSync } from 'node:fs';
import { readdir, readFile, rm, writeFile, mkdir } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import {
  INDEX_FORMAT,
  readLiveManifest,
  IndexBundle,
  type ImageMeta,
  type ItemMeta,
  type SentenceMeta,
  type StoredReport,
  type CollectionName,
  type DicomwebCursor,
  type IndexManifest,
} from '../core/bundle/index-bundle.ts';
import { DicomwebClient, publicUrl } from '../core/dicom/dicomweb.ts';
import { dicomDate, dicomwebImages, dicomwebReports, type DicomwebSource, type DicomwebStats } from './dicomweb-source.ts';
import { withLock, type LockOptions } from '../core/bundle/lock.ts';
import { ReportSentences } from '../core/search/report-sentences.ts';
import { LEXICAL_VERSION } from '../core/bundle/lexical.ts';
import { VersionedDirError, currentVersion, versionName } from '../core/bundle/versioned-dir.ts';
import { fsErrorReason } from '../core/util/fs-errors.ts';
import { MedClipModel } from '../core/model/medclip-model.ts';
import { thumbnailJpeg, thumbnailName } from '../core/image/index.ts';
import { writeBundle, textAnchors, DEFAULT_HNSW, type HnswParams, type CollectionData } from './bundle-writer.ts';
import { reportItems, scanImageDir, storedLabels, tableImages, type ImageItem, type ReportItem } from './corpus.ts';
import { LABELER_VERSION, labelReport, labelSentence } from '../core/labeler/labeler.ts';
import { readReports, reportText } from '../core/tables/reports.ts';
import { LocalEmbedder, ThreadEmbedder, type Embedder } from './embedder.ts';
import { PartialCollection, PartialLines, type BuildError } from './partial.ts';

import { IndexBuildError } from './errors.ts';

export { IndexBuildError };

export interface BuildOptions {
  model: string;
  images?: string;
  imageDir?: string;
  /** Index a PACS: chest X-rays (and their studies' text SR reports) from a DICOMweb server. */
  dicomweb?: DicomwebSource;
  root?: string;
  split?: string;
  reports?: string;
  reportSplit?: string;
  idColumn?: string;
  textColumns?: string[];
  out: string;
  resume?: boolean;
  append?: boolean;
  /** Replace the content of an existing bundle with this build (a new version; the previous one is kept until the next). */
  force?: boolean;
  /** Waiting for another writer of the same bundle (default: 10 minutes). */
  lock?: LockOptions;
  hnsw?: Partial<HnswParams>;
  batchSize?: number;
  /** Worker threads for embedding (each with its own model); 0 or 1 = in-process. */
  workers?: number;
  /** onnxruntime threads for the in-process embedder. */
  threads?: number;
  /** Also store a small JPEG thumbnail per image in the bundle (`thumbs/`), so the API needs no archive. */
  thumbnails?: boolean;
  /** Batches embedded concurrently (default: max(2, workers)); raise for Lambda fan-out. */
  inFlight?: number;
  /** Custom embedder (e.g. Lambda fan-out); overrides workers. */
  embedder?: Embedder;
  /** After each committed batch; `total` is undefined while the input is still being counted. */
  onProgress?: (collection: CollectionName, done: number, skipped: number, total: number | undefined) => void;
  log?: (line: string) => void;
}

export interface BuildSummary {
  out: string;
  version: number;
  images: { indexed: number; skipped: number };
  reports: { reports: number; sentences: number; skipped: number };
  errorsFile: string;
  /** With --dicomweb: what the server listed and what this run fetched. */
  dicomweb?: DicomwebStats;
}

/** What a partial build was started with; a run with the same inputs continues it, any other starts over. */
interface BuildInputs {
  mode: 'build' | 'append';
  modelSha256: string;
  images: string | null;
  imageDir: string | null;
  root: string | null;
  split: string | null;
  reports: string | null;
  reportSplit: string | null;
  idColumn: string | null;
  textColumns: string[] | null;
  /** The server and filters of a --dicomweb build (never credentials). */
  dicomweb: { url: string; since: string | null; studies: string[] | null; allModalities: boolean } | null;
  hnsw: HnswParams;
  thumbnails: boolean;
  /** The version an append builds on: if the bundle moved on since, resuming would undo that change. */
  baseVersion: number | null;
}

interface BuildState {
  startedAt: string;
  inputs: BuildInputs;
}

const abs = (p: string | undefined) => (p ? resolve(p) : null);
const flagName: Record<keyof BuildInputs, string> = {
  mode: '--append',
  modelSha256: '--model',
  images: '--images',
  imageDir: '--image-dir',
  root: '--root',
  split: '--split',
  reports: '--reports',
  reportSplit: '--report-split',
  idColumn: '--id-column',
  textColumns: '--text-columns',
  dicomweb: '--dicomweb (server or filters)',
  hnsw: 'HNSW parameters',
  thumbnails: '--thumbnails',
  baseVersion: 'bundle version',
};

/** The flags whose values differ between two runs' inputs. */
function differingInputs(a: BuildInputs, b: BuildInputs): string[] {
  return (Object.keys(flagName) as (keyof BuildInputs)[])
    .filter((k) => JSON.stringify(a[k] ?? null) !== JSON.stringify(b[k] ?? null))
    .map((k) => flagName[k]);
}

/** What an interrupted build recorded; undefined when its state file cannot be read (it is then discarded). */
async function readBuildState(file: string): Promise<BuildState | undefined> {
  try {
    const state = JSON.parse(await readFile(file, 'utf8')) as BuildState;
    return state && typeof state === 'object' && state.inputs ? state : undefined;
  } catch {
    return undefined;
  }
}

/** The live version folder of a bundle location, as a build error. */
async function liveVersion(out: string): Promise<string | undefined> {
  try {
    return await currentVersion(out, 'manifest.json');
  } catch (err) {
    if (err instanceof VersionedDirError) throw new IndexBuildError(err.message);
    throw err;
  }
}

/** Count an input's items while the build runs; `count` is set once the whole input has been read. */
function countInBackground(items: AsyncIterable<unknown>): { count: number | undefined; done: Promise<void> } {
  const counter: { count: number | undefined; done: Promise<void> } = { count: undefined, done: Promise.resolve() };
  counter.done = (async () => {
    let n = 0;
    for await (const _ of items) n++;
    counter.count = n;
  })();
  counter.done.catch(() => {}); // the build reads the same input and reports its errors
  return counter;
}

async function* batches<T>(source: AsyncIterable<T>, size: number): AsyncGenerator<T[]> {
  let batch: T[] = [];
  for await (const item of source) {
    batch.push(item);
    if (batch.length >= size) {
      yield batch;
      batch = [];
    }
  }
  if (batch.length) yield batch;
}

/** Run `work` over batches with up to `inFlight` at once, committing results strictly in order. */
async function pipeline<T, R>(
  source: AsyncIterable<T[]>,
  inFlight: number,
  work: (b: T[]) => Promise<R>,
  commit: (b: T[], r: R) => Promise<void>,
): Promise<void> {
  const pending: { batch: T[]; result: Promise<R> }[] = [];
  for await (const batch of source) {
    const result = work(batch);
    result.catch(() => {}); // surfaced when committed
    pending.push({ batch, result });
    if (pending.length >= inFlight) {
      const p = pending.shift()!;
      await commit(p.batch, await p.result);
    }
  }
  while (pending.length) {
    const p = pending.shift()!;
    await commit(p.batch, await p.result);
  }
}

/** The HNSW parameters a bundle was built with (its first collection's; the largest shard as the shard size). */
function bundleHnsw(m: IndexManifest): HnswParams | undefined {
  const c0 = Object.values(m.collections)[0];
  if (!c0) return undefined;
  return {
    M: c0.M,
    efConstruction: c0.efConstruction,
    efSearch: c0.efSearch,
    // several shards: they were cut at the largest one's size; one shard: the size was at least its count
    shardSize: Object.values(m.collections).some((c) => c!.shards.length > 1)
      ? Math.max(...Object.values(m.collections).flatMap((c) => c!.shards.map((sh) => sh.count)))
      : DEFAULT_HNSW.shardSize,
    seed: DEFAULT_HNSW.seed,
  };
}

export async function buildIndex(o: BuildOptions): Promise<BuildSummary> {
  if (!o.images && !o.imageDir && !o.reports && !o.dicomweb)
    throw new IndexBuildError('nothing to index: give --images, --image-dir, --dicomweb and/or --reports');
  if ([o.images, o.imageDir, o.dicomweb].filter(Boolean).length > 1)
    throw new IndexBuildError('give one of --images, --image-dir or --dicomweb');
  const badStudy = o.dicomweb?.studies?.find((u) => !/^[0-9]+(\.[0-9]+)*$/.test(u) || u.length > 64);
  if (badStudy !== undefined)
    throw new IndexBuildError(`--study: "${badStudy.slice(0, 70)}" is not a Study Instance UID (digits and dots)`);
  if (o.dicomweb?.since) {
    try {
      dicomDate(o.dicomweb.since);
    } catch (err) {
      throw new IndexBuildError(`--since: ${(err as Error).message}`);
    }
  }
  if (o.append && o.force) throw new IndexBuildError('give --append or --force, not both');
  const out = resolve(o.out);
  return withLock(out, o.append ? 'medclip index --append' : 'medclip index', (assertHeld) => buildLocked(o, out, assertHeld), {
    ...o.lock,
    onWait: (holder) => (o.lock?.onWait ?? ((h: string) => o.log?.(`waiting for ${h} to finish writing ${o.out}`)))(holder),
  });
}

async function buildLocked(o: BuildOptions, out: string, assertHeld: () => void): Promise<BuildSummary> {
  const log = o.log ?? (() => {});
  const partialDir = `${out}.partial`;
  const live = await liveVersion(out);
  if (live && !o.append && !o.force && o.resume && !existsSync(join(partialDir, 'build.json')))
    throw new IndexBuildError(`--resume: nothing to resume, ${o.out} is complete`);
  if (live && !o.append && !o.force && !existsSync(join(partialDir, 'build.json')))
    throw new IndexBuildError(
      `${o.out} already exists: use --append to add to it, --force to replace its content, or choose another --out`,
    );
  if (!live && existsSync(out) && (await readdir(out)).some((n) => !n.startsWith('.')))
    throw new IndexBuildError(`${o.out} exists and is not an index bundle; choose another --out`);
  if (o.append && !live) throw new IndexBuildError(`--append: ${o.out} is not an index bundle`);
  const liveManifest = live ? await readLiveManifest(o.out) : undefined;

  const model = await MedClipModel.load(o.model, { threads: o.threads ?? 2 });
  // an append keeps the bundle's own HNSW parameters (as --delete and --upgrade do), unless told otherwise
  const hnsw: HnswParams = { ...DEFAULT_HNSW, ...(o.append && liveManifest ? bundleHnsw(liveManifest) : {}), ...o.hnsw };
  const embedder: Embedder =
    o.embedder ?? ((o.workers ?? 0) > 1 ? await ThreadEmbedder.start(o.model, o.workers!) : new LocalEmbedder(model));
  try {
    const inputs: BuildInputs = {
      mode: o.append ? 'append' : 'build',
      modelSha256: model.manifestSha256,
      images: abs(o.images),
      imageDir: abs(o.imageDir),
      root: abs(o.root),
      split: o.split ?? null,
      reports: abs(o.reports),
      reportSplit: o.reportSplit ?? null,
      idColumn: o.idColumn ?? null,
      textColumns: o.reports ? (o.textColumns ?? null) : null,
      dicomweb: o.dicomweb
        ? {
            url: publicUrl(o.dicomweb.url),
            since: o.dicomweb.since ?? null,
            studies: o.dicomweb.studies ?? null,
            allModalities: !!o.dicomweb.allModalities,
          }
        : null,
      hnsw,
      thumbnails: !!o.thumbnails,
      baseVersion: o.append ? liveManifest!.version : null,
    };
    const stateFile = join(partialDir, 'build.json');
    // An interrupted write never blocks the next: the same command again finishes it; any other discards it.
    let fresh = !existsSync(stateFile);
    if (!fresh) {
      const previous = await readBuildState(stateFile);
      const what = previous?.inputs?.mode === 'append' ? 'an interrupted --append' : 'an interrupted build';
      const differs = previous?.inputs ? differingInputs(previous.inputs, inputs) : ['(unreadable build.json)'];
      if (differs.length === 0) log(`resuming ${what} of ${o.out} (started ${previous!.startedAt ?? 'earlier'}) from ${partialDir}`);
      else {
        log(
          `discarding ${what} of ${o.out} (started ${previous?.startedAt ?? 'earlier'}): it had a different ${differs.join(', ')}` +
            (differs.includes('bundle version')
              ? ` (the bundle moved from version ${previous!.inputs.baseVersion} to ${inputs.baseVersion} since)`
              : '') +
            '; starting over',
        );
        await rm(partialDir, { recursive: true, force: true });
        fresh = true;
      }
    }
    if (fresh) {
      if (live && !o.append && !o.force)
        throw new IndexBuildError(
          `${o.out} already exists: use --append to add to it, --force to replace its content, or choose another --out`,
        );
      await mkdir(partialDir, { recursive: true });
      await writeFile(stateFile, JSON.stringify({ startedAt: new Date().toISOString(), inputs } satisfies BuildState));
    }
    const dim = model.embedDim;
    const images = await PartialCollection.open(partialDir, 'images', dim);
    const sentences = await PartialCollection.open(partialDir, 'reports', dim);
    const reports = await PartialLines.open<StoredReport>(join(partialDir, 'reports.jsonl'));
    const errors = await PartialLines.open<BuildError>(join(partialDir, 'errors.jsonl'));
    // A new version number whenever a bundle exists (append and --force alike), so readers see it move on.
    const version = (liveManifest?.version ?? 0) + 1;
    if (o.append && fresh) await seedFromBundle(out, model, images, sentences, reports, errors);
    // Sentences whose report line was never written belong to a report interrupted mid-way: embed it again.
    const doneReports = new Set(reports.lines.map((r) => r.id));
    let keep = 0;
    while (keep < sentences.items.length && doneReports.has((sentences.items[keep] as SentenceMeta).reportId)) keep++;
    await sentences.truncateTo(keep);

    const batchSize = o.batchSize ?? 32;
    const inFlight = o.inFlight ?? Math.max(2, o.workers ?? 0);
    const summary: BuildSummary = {
      out,
      version,
      images: { indexed: 0, skipped: 0 },
      reports: { reports: 0, sentences: 0, skipped: 0 },
      errorsFile: join(out, versionName(version), 'errors.jsonl'),
    };

    // A DICOMweb run: its client, the SOP Instance UIDs already indexed or failed (never fetched again), the studies
    // with images (whose SR reports are indexed) and, on --append, the bundle's cursor as the default --since.
    const pacs = o.dicomweb
      ? {
          client: new DicomwebClient(o.dicomweb.url, { auth: o.dicomweb.auth }),
          source: {
            ...o.dicomweb,
            since:
              o.dicomweb.since ??
              (liveManifest?.dicomweb?.url === publicUrl(o.dicomweb.url) && o.append ? liveManifest.dicomweb.studyDate : undefined),
          },
          cache: join(partialDir, 'dicomweb'),
          studies: new Set(images.items.flatMap((i) => ((i as ImageMeta).dicom ? [(i as ImageMeta).dicom!.study] : []))),
          stats: { listed: 0, alreadyIndexed: 0, filtered: 0, fetched: 0, cached: 0, reports: 0 } as DicomwebStats,
        }
      : undefined;
    if (pacs) {
      summary.dicomweb = pacs.stats;
      if (pacs.source.since) log(`asking ${pacs.client.base} for studies from ${pacs.source.since} on`);
    }

    if (o.images || o.imageDir || pacs) {
      const done = new Set<string>([
        ...images.items.map((i) => i.id),
        ...errors.lines.filter((e) => e.collection === 'images').map((e) => e.id),
      ]);
      const files = () => (o.images ? tableImages(o.images, { root: o.root, split: o.split }) : scanImageDir(o.imageDir!));
      const source = pacs ? dicomwebImages(pacs.client, pacs.source, pacs.cache, done, pacs.stats, pacs.studies) : files();
      // Counted alongside the work, not before it: a 100k-row table would otherwise delay the first image by seconds.
      // A server's listing is not read twice.
      const total = pacs ? { count: undefined, done: Promise.resolve() } : countInBackground(files());
      const todo = (async function* () {
        for await (const item of source) if (!done.has(item.id)) yield item;
      })();
      await pipeline(
        batches<ImageItem>(todo, batchSize),
        inFlight,
        // items the reader could not deliver are not embedded; their failure is recorded in order
        async (batch) => {
          const ok = batch.filter((b) => !b.failure);
          const r = ok.length ? await embedder.embedImageFiles(ok.map((b) => ({ id: b.id, file: b.file }))) : { results: [] };
          let j = 0;
          return batch.map((b) => (b.failure ? { ok: false as const, reason: b.failure } : r.results[j++]!));
        },
        async (batch, results) => {
          const vectors: Float32Array[] = [];
          const metas: ItemMeta[] = [];
          const bad: BuildError[] = [];
          results.forEach((res, i) => {
            if (res.ok) {
              vectors.push(res.vector);
              metas.push(batch[i]!.meta);
            } else bad.push({ collection: 'images', id: batch[i]!.id, reason: res.reason });
          });
          if (o.thumbnails) {
            await mkdir(join(partialDir, 'thumbs'), { recursive: true });
            for (const m of metas) {
              const item = batch.find((b) => b.id === m.id)!;
              // the image embedded fine; a preview that cannot be made only means the API shows none
              const jpeg = await readFile(item.file)
                .then(thumbnailJpeg, () => undefined)
                .catch(() => undefined);
              const file = join(partialDir, 'thumbs', thumbnailName(m.id));
              if (jpeg)
                await writeFile(file, jpeg).catch((err) => {
                  throw new IndexBuildError(`cannot write ${file}: ${fsErrorReason(err)}`);
                });
            }
          }
          await images.append(vectors, metas);
          await errors.append(bad);
          for (const b of bad) log(`skipped image ${b.id}: ${b.reason}`);
          o.onProgress?.('images', images.items.length, errors.lines.filter((e) => e.collection === 'images').length, total.count);
        },
      );
      await total.done.catch(() => {}); // nothing left reading the input after the build
    }

    const reportSources: { items: AsyncIterable<ReportItem>; total: { count: number | undefined; done: Promise<void> } }[] = [];
    const failedReports = new Set(errors.lines.filter((e) => e.collection === 'reports').map((e) => e.id));
    if (o.reports)
      reportSources.push({
        items: reportItems(o.reports, { split: o.reportSplit, idColumn: o.idColumn, textColumns: o.textColumns }),
        total: countInBackground(readReports(o.reports, { split: o.reportSplit, idColumn: o.idColumn, textColumns: o.textColumns })),
      });
    if (pacs)
      reportSources.push({
        items: dicomwebReports(pacs.client, pacs.source, pacs.cache, new Set([...doneReports, ...failedReports]), pacs.studies, pacs.stats),
        total: { count: undefined, done: Promise.resolve() },
      });
    for (const { items, total } of reportSources) {
      const source = (async function* () {
        for await (const item of items) if (!doneReports.has(item.report.id) && !failedReports.has(item.report.id)) yield item;
      })();
      await pipeline(
        batches<ReportItem>(source, Math.max(1, Math.floor(batchSize / 2))),
        inFlight,
        // An embedding failure (e.g. a Lambda worker failing after its retries) is reported per report, not fatal.
        (batch) => embedder.embedTexts(batch.flatMap((r) => (r.failure ? [] : r.sentences.map((s) => s.text)))).catch((err: Error) => err),
        async (batch, vectors) => {
          // reports the reader could not deliver (a PACS object that is not a text report, a failed fetch)
          const unread = batch
            .filter((r) => r.failure)
            .map((r) => ({ collection: 'reports' as const, id: r.report.id, reason: r.failure! }));
          const read = batch.filter((r) => !r.failure);
          if (vectors instanceof Error) {
            const failed = [...unread, ...read.map((r) => ({ collection: 'reports' as const, id: r.report.id, reason: vectors.message }))];
            await errors.append(failed);
            for (const f of failed) log(`skipped report ${f.id}: ${f.reason}`);
            return;
          }
          await sentences.append(
            vectors,
            read.flatMap((r) => r.sentences.map((s) => s.meta)),
          );
          const empty = read.filter((r) => r.sentences.length === 0);
          await errors.append([
            ...unread,
            ...empty.map((r) => ({ collection: 'reports' as const, id: r.report.id, reason: 'empty: no findings or impression text' })),
          ]);
          for (const f of unread) log(`skipped report ${f.id}: ${f.reason}`);
          await reports.append(read.filter((r) => r.sentences.length > 0).map((r) => r.report));
          o.onProgress?.('reports', reports.lines.length, errors.lines.filter((e) => e.collection === 'reports').length, total.count);
        },
      );
      await total.done.catch(() => {});
    }

    summary.images.indexed = images.items.filter((i) => !i.deleted).length;
    summary.images.skipped = errors.lines.filter((e) => e.collection === 'images').length;
    summary.reports.reports = reports.lines.filter((r) => !r.deleted).length;
    summary.reports.sentences = sentences.items.filter((i) => !i.deleted).length;
    summary.reports.skipped = errors.lines.filter((e) => e.collection === 'reports').length;
    if (images.items.length === 0 && sentences.items.length === 0) {
      await rm(partialDir, { recursive: true, force: true });
      throw new IndexBuildError(
        `nothing could be indexed (${errors.lines.length} item(s) skipped; first: ${errors.lines
          .slice(0, 3)
          .map((e) => `${e.id} (${e.reason})`)
          .join(', ')})`,
      );
    }
    const collections: Partial<Record<CollectionName, CollectionData>> = {};
    if (images.items.length) collections.images = { dim, vectors: await images.vectors(), items: images.items };
    if (sentences.items.length) collections.reports = { dim, vectors: await sentences.vectors(), items: sentences.items };
    assertHeld();
    await writeBundle(out, {
      model: { name: model.name, sha256: model.manifestSha256, embedDim: dim },
      collections,
      reports: reports.lines.length ? reports.lines : undefined,
      errors: errors.lines,
      version,
      hnsw,
      thumbsDir: existsSync(join(partialDir, 'thumbs')) ? join(partialDir, 'thumbs') : undefined,
      dicomweb: pacs ? dicomwebCursor(pacs, liveManifest) : liveManifest?.dicomweb,
      anchors: collections.images ? await textAnchors(model) : undefined,
    });
    await rm(partialDir, { recursive: true, force: true });
    return summary;
  } finally {
    await embedder.close();
    await model.close();
  }
}

/** The cursor a DICOMweb run leaves in the manifest: the latest StudyDate seen so far on this server. */
function dicomwebCursor(
  pacs: { client: DicomwebClient; source: DicomwebSource; stats: DicomwebStats },
  previous: IndexManifest | undefined,
): DicomwebCursor {
  const before = previous?.dicomweb?.url === pacs.client.base ? previous.dicomweb.studyDate : undefined;
  const latest = [before, pacs.stats.latestStudyDate]
    .filter((d): d is string => !!d)
    .sort()
    .pop();
  return {
    url: pacs.client.base,
    ...(latest ? { studyDate: latest } : {}),
    allModalities: !!pacs.source.allModalities,
    updatedAt: new Date().toISOString(),
  };
}

/** Copy the latest version's items, vectors, reports, errors and thumbnails into a fresh partial build (for --append). */
async function seedFromBundle(
  dir: string,
  model: MedClipModel,
  images: PartialCollection,
  sentences: PartialCollection,
  reports: PartialLines<StoredReport>,
  errors: PartialLines<BuildError>,
): Promise<void> {
  const bundle = await IndexBundle.load(dir, { model });
  for (const [name, target] of [
    ['images', images],
    ['reports', sentences],
  ] as const) {
    const entries = [...bundle.entries(name)];
    await target.append(
      entries.map((e) => e.vector),
      entries.map((e) => e.meta),
    );
  }
  await reports.append([...bundle.reports.values()]);
  await errors.append(await bundle.buildErrors<BuildError>());
  if (bundle.manifest.thumbnails) {
    const thumbs = join(images.dir, 'thumbs');
    await mkdir(thumbs, { recursive: true });
    for (const { meta } of bundle.entries('images')) {
      const from = bundle.thumbnailFile(meta.id);
      if (from && existsSync(from)) await writeFile(join(thumbs, thumbnailName(meta.id)), await readFile(from));
    }
  }
}

/** What a rewrite of an existing bundle changes: its items (per collection) and reports; the rest is carried over. */
interface Rewrite {
  collections: Partial<Record<CollectionName, { items: ItemMeta[]; vectors: Float32Array[] }>>;
  reports: StoredReport[] | undefined;
  /** Keep only these images' previews (default: all). */
  thumbIds?: string[];
}

/**
 * A new version of an existing bundle made from its latest one, under its lock: `edit` returns the new items (or
 * undefined to leave the bundle as it is); HNSW parameters, errors, model and previews carry over.
 */
async function rewriteBundle<T>(
  dir: string,
  modelDir: string,
  task: string,
  lock: LockOptions | undefined,
  load: { allowV1?: boolean },
  edit: (bundle: IndexBundle) => Promise<{ rewrite: Rewrite; result: (version: number) => T } | { unchanged: T }>,
): Promise<T> {
  return withLock(
    resolve(dir),
    `medclip index ${task}`,
    async (assertHeld) => {
      if (!(await liveVersion(dir))) throw new IndexBuildError(`${task}: ${dir} is not an index bundle`);
      const model = await MedClipModel.load(modelDir);
      try {
        const bundle = await IndexBundle.load(dir, { model, ...load });
        const m = bundle.manifest;
        const change = await edit(bundle);
        if ('unchanged' in change) return change.unchanged;
        const collections: Partial<Record<CollectionName, CollectionData>> = {};
        for (const [name, c] of Object.entries(change.rewrite.collections) as [CollectionName, Rewrite['collections']['images']][]) {
          const dim = m.collections[name]!.dim;
          const flat = new Float32Array(c!.vectors.length * dim);
          c!.vectors.forEach((v, i) => flat.set(v, i * dim));
          collections[name] = { dim, vectors: flat, items: c!.items };
        }
        assertHeld();
        const manifest = await writeBundle(dir, {
          model: m.model,
          collections,
          reports: change.rewrite.reports,
          errors: await bundle.buildErrors<BuildError>(),
          version: m.version + 1,
          thumbsDir: m.thumbnails ? join(bundle.dir, m.thumbnails) : undefined,
          thumbIds: change.rewrite.thumbIds,
          hnsw: bundleHnsw(m) ?? DEFAULT_HNSW,
          dicomweb: m.dicomweb,
          anchors: collections.images ? await textAnchors(model) : undefined,
        });
        return change.result(manifest.version);
      } finally {
        await model.close();
      }
    },
    lock,
  );
}

/** Remove items (image ids, report ids with their sentences) in a new version of the bundle; waits for other writers. */
export async function deleteFromBundle(
  dir: string,
  modelDir: string,
  ids: string[],
  lock?: LockOptions,
): Promise<{ deleted: number; unknown: string[]; version: number }> {
  return rewriteBundle<{ deleted: number; unknown: string[]; version: number }>(dir, modelDir, '--delete', lock, {}, async (bundle) => {
    const wanted = new Set(ids);
    const found = new Set<string>();
    const rewrite: Rewrite = { collections: {}, reports: undefined };
    for (const name of ['images', 'reports'] as const) {
      if (!bundle.manifest.collections[name]) continue;
      const kept: { items: ItemMeta[]; vectors: Float32Array[] } = { items: [], vectors: [] };
      for (const { meta, vector } of bundle.entries(name)) {
        const owner = name === 'images' ? meta.id : (meta as SentenceMeta).reportId;
        if (wanted.has(owner)) found.add(owner);
        else {
          kept.items.push(meta);
          kept.vectors.push(vector);
        }
      }
      rewrite.collections[name] = kept;
    }
    if (bundle.manifest.reports) {
      rewrite.reports = [];
      for (const r of bundle.reports.values()) {
        if (wanted.has(r.id)) found.add(r.id);
        else rewrite.reports.push(r);
      }
    }
    if (found.size === 0) return { unchanged: { deleted: 0, unknown: ids, version: bundle.manifest.version } };
    // previews of the remaining images only
    rewrite.thumbIds = rewrite.collections.images?.items.map((i) => i.id);
    return { rewrite, result: (version) => ({ deleted: found.size, unknown: ids.filter((id) => !found.has(id)), version }) };
  });
}

export type { ImageMeta };

/**
 * Rewrite a bundle in the current format (a new version): a format-1 bundle's sentences get their text, split from
 * their stored reports by the current labeler (the split v1 left implicit); labels from another labeler version are
 * relabelled from the stored texts; filter bitsets, text anchors and the lexical index are added or brought up to
 * date; the labeler and prompt versions are recorded.
 */
export async function upgradeBundle(
  dir: string,
  modelDir: string,
  lock?: LockOptions,
): Promise<{ version: number; sentences: number; alreadyCurrent: boolean }> {
  return rewriteBundle<{ version: number; sentences: number; alreadyCurrent: boolean }>(
    dir,
    modelDir,
    '--upgrade',
    lock,
    { allowV1: true },
    async (bundle) => {
      const m = bundle.manifest;
      // current: format 2, filter bitsets in every shard, and (with reports) the distinct-text index (with hubness
      // when there are images) and a lexical index of the current version
      const lexicalCurrent =
        !m.collections.reports ||
        (m.lexical?.version === LEXICAL_VERSION && m.texts !== undefined && (!m.collections.images || m.texts.hubs === true));
      const bitsets = Object.values(m.collections).every((c) => c!.shards.every((sh) => sh.filters !== undefined));
      const anchors = !m.collections.images || bundle.textAnchorsCurrent();
      // labels written by another labeler version are relabelled (a sentence's labels are a function of its stored
      // text, a report's of its text): the manifest then records the current version truthfully
      const labelerCurrent = !m.collections.reports || m.labeler?.version === LABELER_VERSION;
      if (m.format === INDEX_FORMAT && lexicalCurrent && bitsets && anchors && labelerCurrent)
        return { unchanged: { version: m.version, sentences: 0, alreadyCurrent: true } };
      const split = new ReportSentences();
      const reports = m.reports ? [...bundle.reports.values()] : undefined;
      const rewrite: Rewrite = {
        collections: {},
        reports: labelerCurrent
          ? reports
          : reports?.map((r) => ({ ...r, labels: storedLabels(labelReport(reportText({ id: r.id, text: r.text, meta: {} })).labels) })),
      };
      let sentences = 0;
      for (const name of ['images', 'reports'] as const) {
        if (!m.collections[name]) continue;
        const entries = [...bundle.entries(name)];
        const items = entries.map((e) => {
          if (name !== 'reports') return e.meta;
          const meta = e.meta as SentenceMeta;
          const report = bundle.report(meta.reportId);
          sentences++;
          const text = meta.text ?? (report ? split.text(report, meta.index) : '');
          return { ...meta, text, ...(labelerCurrent ? {} : { labels: storedLabels(labelSentence(text)) }) };
        });
        rewrite.collections[name] = { items, vectors: entries.map((e) => e.vector) };
      }
      return { rewrite, result: (version) => ({ version, sentences, alreadyCurrent: false }) };
    },
  );
}
