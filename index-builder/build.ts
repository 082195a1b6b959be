/**
 * `medclip index`: embed an image corpus and a report corpus into a versioned index bundle.
 * Streams the corpus in batches (several in flight), keeps what is done in `<out>.partial/` so a killed build
 * resumes with `--resume`, skips and records bad items, and writes the bundle atomically at the end.
 * `--append` adds to an existing bundle (a new version); `deleteFromBundle` marks items deleted.
 */
import { existsSync } from 'node:fs';
import { readFile, rm, writeFile, mkdir } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import hnswlib from 'hnswlib-node';
import { IndexBundle, type ImageMeta, type ItemMeta, type SentenceMeta, type StoredReport, type CollectionName } from '../core/index.ts';
import { MedClipModel } from '../core/model.ts';
import { thumbnailJpeg, thumbnailName } from '../core/image/index.ts';
import { writeBundle, DEFAULT_HNSW, type HnswParams, type CollectionData } from './bundle-writer.ts';
import { reportItems, scanImageDir, tableImages, type ImageItem, type ReportItem } from './corpus.ts';
import { readReports } from '../core/reports.ts';
import { LocalEmbedder, ThreadEmbedder, type Embedder } from './embedder.ts';
import { PartialCollection, PartialLines, type BuildError } from './partial.ts';

export class IndexBuildError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'IndexBuildError';
  }
}

export interface BuildOptions {
  model: string;
  images?: string;
  imageDir?: string;
  root?: string;
  split?: string;
  reports?: string;
  reportSplit?: string;
  idColumn?: string;
  textColumns?: string[];
  out: string;
  resume?: boolean;
  append?: boolean;
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
}

interface BuildState {
  modelSha256: string;
  inputs: unknown;
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
async function pipeline<T, R>(source: AsyncIterable<T[]>, inFlight: number, work: (b: T[]) => Promise<R>, commit: (b: T[], r: R) => Promise<void>): Promise<void> {
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

export async function buildIndex(o: BuildOptions): Promise<BuildSummary> {
  const log = o.log ?? (() => {});
  const out = resolve(o.out);
  const partialDir = `${out}.partial`;
  if (!o.images && !o.imageDir && !o.reports) throw new IndexBuildError('nothing to index: give --images, --image-dir and/or --reports');
  if (o.images && o.imageDir) throw new IndexBuildError('give --images or --image-dir, not both');
  if (existsSync(out) && !o.append && !o.resume) throw new IndexBuildError(`${o.out} already exists: use --append to add to it, or choose another --out`);
  if (o.append && !existsSync(join(out, 'manifest.json'))) throw new IndexBuildError(`--append: ${o.out} is not an index bundle`);
  if (existsSync(partialDir) && !o.resume)
    throw new IndexBuildError(`an interrupted build exists in ${partialDir}: pass --resume to continue it, or delete that folder`);

  const model = await MedClipModel.load(o.model, { threads: o.threads ?? 2 });
  const hnsw: HnswParams = { ...DEFAULT_HNSW, ...o.hnsw };
  const embedder: Embedder = o.embedder ?? ((o.workers ?? 0) > 1 ? await ThreadEmbedder.start(o.model, o.workers!) : new LocalEmbedder(model));
  try {
    const state: BuildState = { modelSha256: model.manifestSha256, inputs: { images: o.images, imageDir: o.imageDir, reports: o.reports, split: o.split } };
    const stateFile = join(partialDir, 'build.json');
    const fresh = !existsSync(stateFile);
    if (!fresh) {
      const previous = JSON.parse(await readFile(stateFile, 'utf8')) as BuildState;
      if (previous.modelSha256 !== state.modelSha256) throw new IndexBuildError(`${partialDir} was started with another model; delete it to start over`);
      log(`resuming the build in ${partialDir}`);
    } else {
      await mkdir(partialDir, { recursive: true });
      await writeFile(stateFile, JSON.stringify(state));
    }
    const dim = model.embedDim;
    const images = await PartialCollection.open(partialDir, 'images', dim);
    const sentences = await PartialCollection.open(partialDir, 'reports', dim);
    const reports = await PartialLines.open<StoredReport>(join(partialDir, 'reports.jsonl'));
    const errors = await PartialLines.open<BuildError>(join(partialDir, 'errors.jsonl'));
    let version = 1;
    if (o.append && fresh) version = (await seedFromBundle(out, model, images, sentences, reports, errors)) + 1;
    else if (o.append) version = (JSON.parse(await readFile(join(out, 'manifest.json'), 'utf8')) as { version: number }).version + 1;
    // Sentences whose report line was never written belong to a report interrupted mid-way: embed it again.
    const doneReports = new Set(reports.lines.map((r) => r.id));
    let keep = 0;
    while (keep < sentences.items.length && doneReports.has((sentences.items[keep] as SentenceMeta).reportId)) keep++;
    await sentences.truncateTo(keep);

    const batchSize = o.batchSize ?? 32;
    const inFlight = o.inFlight ?? Math.max(2, o.workers ?? 0);
    const summary: BuildSummary = { out, version, images: { indexed: 0, skipped: 0 }, reports: { reports: 0, sentences: 0, skipped: 0 }, errorsFile: join(out, 'errors.jsonl') };

    if (o.images || o.imageDir) {
      const done = new Set<string>([...images.items.map((i) => i.id), ...errors.lines.filter((e) => e.collection === 'images').map((e) => e.id)]);
      const source = o.images ? tableImages(o.images, { root: o.root, split: o.split }) : scanImageDir(o.imageDir!);
      // Counted alongside the work, not before it: a 100k-row table would otherwise delay the first image by seconds.
      const total = countInBackground(o.images ? tableImages(o.images, { root: o.root, split: o.split }) : scanImageDir(o.imageDir!));
      const todo = (async function* () {
        for await (const item of source) if (!done.has(item.id)) yield item;
      })();
      await pipeline(
        batches<ImageItem>(todo, batchSize),
        inFlight,
        (batch) => embedder.embedImageFiles(batch.map((b) => ({ id: b.id, file: b.file }))),
        async (batch, r) => {
          const vectors: Float32Array[] = [];
          const metas: ItemMeta[] = [];
          const bad: BuildError[] = [];
          r.results.forEach((res, i) => {
            if (res.ok) {
              vectors.push(res.vector);
              metas.push(batch[i]!.meta);
            } else bad.push({ collection: 'images', id: batch[i]!.id, reason: res.reason });
          });
          if (o.thumbnails) {
            await mkdir(join(partialDir, 'thumbs'), { recursive: true });
            for (const m of metas) {
              const item = batch.find((b) => b.id === m.id)!;
              try {
                await writeFile(join(partialDir, 'thumbs', thumbnailName(m.id)), await thumbnailJpeg(await readFile(item.file)));
              } catch {
                // the image embedded fine; a missing preview only means the API shows none
              }
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

    if (o.reports) {
      const failed = new Set(errors.lines.filter((e) => e.collection === 'reports').map((e) => e.id));
      const total = countInBackground(readReports(o.reports, { split: o.reportSplit, idColumn: o.idColumn, textColumns: o.textColumns }));
      const source = (async function* () {
        for await (const item of reportItems(o.reports!, { split: o.reportSplit, idColumn: o.idColumn, textColumns: o.textColumns }))
          if (!doneReports.has(item.report.id) && !failed.has(item.report.id)) yield item;
      })();
      await pipeline(
        batches<ReportItem>(source, Math.max(1, Math.floor(batchSize / 2))),
        inFlight,
        // An embedding failure (e.g. a Lambda worker failing after its retries) is reported per report, not fatal.
        (batch) => embedder.embedTexts(batch.flatMap((r) => r.sentences.map((s) => s.text))).catch((err: Error) => err),
        async (batch, vectors) => {
          if (vectors instanceof Error) {
            const failed = batch.map((r) => ({ collection: 'reports' as const, id: r.report.id, reason: vectors.message }));
            await errors.append(failed);
            for (const f of failed) log(`skipped report ${f.id}: ${f.reason}`);
            return;
          }
          await sentences.append(vectors, batch.flatMap((r) => r.sentences.map((s) => s.meta)));
          const empty = batch.filter((r) => r.sentences.length === 0);
          await errors.append(empty.map((r) => ({ collection: 'reports', id: r.report.id, reason: 'empty: no findings or impression text' })));
          await reports.append(batch.filter((r) => r.sentences.length > 0).map((r) => r.report));
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
      throw new IndexBuildError(`nothing could be indexed (${errors.lines.length} item(s) skipped; first: ${errors.lines.slice(0, 3).map((e) => `${e.id} (${e.reason})`).join(', ')})`);
    }
    const collections: Partial<Record<CollectionName, CollectionData>> = {};
    if (images.items.length) collections.images = { dim, vectors: await images.vectors(), items: images.items };
    if (sentences.items.length) collections.reports = { dim, vectors: await sentences.vectors(), items: sentences.items };
    await writeBundle(out, {
      model: { name: model.name, sha256: model.manifestSha256, embedDim: dim },
      collections,
      reports: reports.lines.length ? reports.lines : undefined,
      errors: errors.lines,
      version,
      hnsw,
      thumbsDir: existsSync(join(partialDir, 'thumbs')) ? join(partialDir, 'thumbs') : o.append && existsSync(join(out, 'thumbs')) ? join(out, 'thumbs') : undefined,
    });
    await rm(partialDir, { recursive: true, force: true });
    return summary;
  } finally {
    await embedder.close();
    await model.close();
  }
}

/** Copy an existing bundle's vectors and records into a fresh partial build (for --append). Returns its version. */
async function seedFromBundle(dir: string, model: MedClipModel, images: PartialCollection, sentences: PartialCollection, reports: PartialLines<StoredReport>, errors: PartialLines<BuildError>): Promise<number> {
  const bundle = await IndexBundle.load(dir, { model });
  const m = bundle.manifest;
  for (const [name, target] of [['images', images], ['reports', sentences]] as const) {
    const c = m.collections[name];
    if (!c) continue;
    for (const shard of c.shards) {
      const index = new hnswlib.HierarchicalNSW('ip', c.dim);
      index.readIndexSync(join(dir, shard.file));
      const metas = (await readFile(join(dir, shard.meta), 'utf8')).split('\n').filter(Boolean).map((l) => JSON.parse(l) as ItemMeta);
      // hnswlib keeps the raw vectors of an inner-product index: read them back by label.
      const vectors = metas.map((_, label) => Float32Array.from(index.getPoint(label)));
      await target.append(vectors, metas);
    }
  }
  if (m.reports) await reports.append((await readFile(join(dir, m.reports), 'utf8')).split('\n').filter(Boolean).map((l) => JSON.parse(l) as StoredReport));
  if (m.errors) await errors.append((await readFile(join(dir, m.errors), 'utf8')).split('\n').filter(Boolean).map((l) => JSON.parse(l) as BuildError));
  return m.version;
}

/** Mark items deleted (image ids, report ids with their sentences) in a new version of the bundle. */
export async function deleteFromBundle(dir: string, modelDir: string, ids: string[]): Promise<{ deleted: number; unknown: string[]; version: number }> {
  const model = await MedClipModel.load(modelDir);
  try {
    const bundle = await IndexBundle.load(dir, { model });
    const wanted = new Set(ids);
    const found = new Set<string>();
    const m = bundle.manifest;
    const collections: Partial<Record<CollectionName, CollectionData>> = {};
    for (const name of ['images', 'reports'] as const) {
      const c = m.collections[name];
      if (!c) continue;
      const items: ItemMeta[] = [];
      const vecs: Float32Array[] = [];
      for (const shard of c.shards) {
        const index = new hnswlib.HierarchicalNSW('ip', c.dim);
        index.readIndexSync(join(dir, shard.file));
        const metas = (await readFile(join(dir, shard.meta), 'utf8')).split('\n').filter(Boolean).map((l) => JSON.parse(l) as ItemMeta);
        metas.forEach((meta, label) => {
          const owner = name === 'images' ? meta.id : (meta as SentenceMeta).reportId;
          if (wanted.has(owner) && !meta.deleted) {
            meta.deleted = true;
            found.add(owner);
          }
          items.push(meta);
          vecs.push(Float32Array.from(index.getPoint(label)));
        });
      }
      const flat = new Float32Array(vecs.length * c.dim);
      vecs.forEach((v, i) => flat.set(v, i * c.dim));
      collections[name] = { dim: c.dim, vectors: flat, items };
    }
    let reportsOut: StoredReport[] | undefined;
    if (m.reports) {
      reportsOut = (await readFile(join(dir, m.reports), 'utf8')).split('\n').filter(Boolean).map((l) => JSON.parse(l) as StoredReport);
      for (const r of reportsOut) if (wanted.has(r.id) && !r.deleted) {
        r.deleted = true;
        found.add(r.id);
      }
    }
    if (found.size === 0) return { deleted: 0, unknown: ids, version: m.version };
    const errors = m.errors ? (await readFile(join(dir, m.errors), 'utf8')).split('\n').filter(Boolean).map((l) => JSON.parse(l) as BuildError) : [];
    const c0 = m.collections.images ?? m.collections.reports!;
    const manifest = await writeBundle(dir, {
      model: m.model,
      collections,
      reports: reportsOut,
      errors,
      version: m.version + 1,
      thumbsDir: m.thumbnails ? join(dir, m.thumbnails) : undefined,
      hnsw: { M: c0.M, efConstruction: c0.efConstruction, efSearch: c0.efSearch, shardSize: Math.max(...Object.values(m.collections).flatMap((c) => c!.shards.map((s) => s.count))), seed: DEFAULT_HNSW.seed },
    });
    return { deleted: found.size, unknown: ids.filter((id) => !found.has(id)), version: manifest.version };
  } finally {
    await model.close();
  }
}

export type { ImageMeta };
