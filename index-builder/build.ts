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
  readLiveManifest,
  type ImageMeta,
  type ItemMeta,
  type SentenceMeta,
  type StoredReport,
  type CollectionName,
  type DicomwebCursor,
  type IndexManifest,
  withLock,
  type LockOptions,
  versionName,
} from '../core/bundle/index.ts';
import { DicomwebClient, publicUrl } from '../core/dicom/index.ts';
import { dicomDate, dicomwebImages, dicomwebReports, type DicomwebSource, type DicomwebStats } from './dicomweb-source.ts';
import { fsErrorReason } from '../core/util/index.ts';
import { MedClipModel } from '../core/model/index.ts';
import { thumbnailJpeg, thumbnailName } from '../core/image/index.ts';
import { writeBundle, textAnchors, DEFAULT_HNSW, type HnswParams, type CollectionData } from './bundle-writer.ts';
import { reportItems, scanImageDir, tableImages, type ImageItem, type ReportItem } from './corpus.ts';
import { readReports } from '../core/tables/index.ts';
import { LocalEmbedder, ThreadEmbedder, type Embedder } from './embedder.ts';
import { PartialCollection, PartialLines, type BuildError } from './partial.ts';
import { IndexBuildError } from './errors.ts';
export { IndexBuildError };
import { batches, countInBackground, pipeline } from './batch-pipeline.ts';
import { type BuildInputs, type BuildState, abs, differingInputs, readBuildState } from './build-inputs.ts';
import { bundleHnsw, liveVersion, seedFromBundle } from './live-bundle.ts';

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
    // a report_id naming no report of the bundle: the image is indexed, its link dropped (writeBundle), and said here
    const reportIds = new Set(reports.lines.filter((r) => !r.deleted).map((r) => r.id));
    const dangling = images.items.filter((i) => (i as ImageMeta).reportId && !reportIds.has((i as ImageMeta).reportId!));
    if (dangling.length)
      log(
        `${dangling.length} image(s) name a report_id that is not in the bundle, e.g. image ${dangling[0]!.id}: indexed without the link`,
      );
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
