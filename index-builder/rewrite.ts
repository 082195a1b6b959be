/**
 * Writes that rewrite the live version into a new one without embedding anything: --delete (items and reports)
 * and --upgrade (older formats, another labeler version, missing text anchors), under the bundle's lock.
 */
import { join, resolve } from 'node:path';
import {
  INDEX_FORMAT,
  IndexBundle,
  type ItemMeta,
  type SentenceMeta,
  type StoredReport,
  type CollectionName,
  withLock,
  type LockOptions,
  LEXICAL_VERSION,
} from '../core/bundle/index.ts';
import { ReportSentences } from '../core/search/index.ts';
import { MedClipModel } from '../core/model/index.ts';
import { writeBundle, textAnchors, DEFAULT_HNSW, type CollectionData } from './bundle-writer.ts';
import { storedLabels } from './corpus.ts';
import { LABELER_VERSION, labelReport, labelSentence } from '../core/labeler/index.ts';
import { reportText } from '../core/tables/index.ts';
import type { BuildError } from './partial.ts';
import { IndexBuildError } from './errors.ts';
import { bundleHnsw, liveVersion } from './live-bundle.ts';

/** What a rewrite of an existing bundle changes: its items (per collection) and reports; the rest is carried over. */
export interface Rewrite {
  collections: Partial<Record<CollectionName, { items: ItemMeta[]; vectors: Float32Array[] }>>;
  reports: StoredReport[] | undefined;
  /** Keep only these images' previews (default: all). */
  thumbIds?: string[];
}

/**
 * A new version of an existing bundle made from its latest one, under its lock: `edit` returns the new items (or
 * undefined to leave the bundle as it is); HNSW parameters, errors, model and previews carry over.
 */
export async function rewriteBundle<T>(
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
        (m.lexical?.version === LEXICAL_VERSION &&
          m.texts !== undefined &&
          m.texts.modifiers === true &&
          (!m.collections.images || m.texts.hubs === true));
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
