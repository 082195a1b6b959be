/**
 * Index bundles (`indexes/NAME/`, DESIGN.md): per collection (images, report sentences) one or more HNSW
 * shards with a metadata line per vector, plus the reports themselves. Loading verifies the format, the
 * model the vectors came from, every file's sha256 and each HNSW file's dimension (hnswlib does not check
 * it on load); search merges the shards' top-k and applies metadata filters computed up front, so the
 * callback handed to the native code can never throw.
 *
 *   const index = await IndexBundle.load('indexes/sample', { model });
 *   index.search('images', queryVector, { k: 10, filter: { must: ['Pneumonia'], view: ['PA'] } });
 *
 * This file is longer than 400 lines because `IndexBundle` is the one reader over a version's private shards: its
 * lookups (images, reports, sentence groups, image <-> report pairs) stay beside them rather than exposing them.
 */
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { thumbnailName } from '../image/index.ts';
import { VersionedDirError, currentVersion } from './versioned-dir.ts';
import { boundedCache, stringBytes, MAX_HITS } from '../util/index.ts';
import { LEXICAL_VERSION, LexicalIndex } from './lexical.ts';
import { type ImageFacets, imageFacets } from './facets.ts';
import { type SearchFilter, checkFilter, filterPredicate } from './filters.ts';
import {
  type Hit,
  type ImageMeta,
  type ItemMeta,
  MAX_COLLAPSED_IDS,
  type ReportSentenceHit,
  type SentenceMeta,
  type StoredReport,
  type TextMeta,
} from './items.ts';
import { parseJsonl } from './lazy-lines.ts';
import { type IndexLoadOptions, bundleFile, readVersion, type LoadedVersion } from './load-version.ts';
import { type CollectionName, IndexError, type IndexManifest } from './manifest.ts';
import { type SearchOptions, type Shard, searchShards } from './shard.ts';

export class IndexBundle {
  private readonly shards: { images: Shard<ImageMeta>[]; reports: Shard<SentenceMeta>[] } = { images: [], reports: [] };
  readonly reports = new Map<string, StoredReport>();
  private imageIds?: Map<string, ImageMeta>;

  /** id -> image metadata, built on first use (after the first answer, not during the cold start). */
  private get imageById(): Map<string, ImageMeta> {
    if (!this.imageIds) {
      this.imageIds = new Map();
      for (const s of this.shards.images) for (const im of s.meta) if (!im.deleted) this.imageIds.set(im.id, im);
    }
    return this.imageIds;
  }

  /** The version folder this bundle was loaded from (inside the bundle location). */
  readonly dir: string;
  readonly manifest: IndexManifest;

  private constructor(loaded: LoadedVersion) {
    this.dir = loaded.dir;
    this.manifest = loaded.manifest;
    this.shards.images.push(...loaded.images);
    this.shards.reports.push(...loaded.reports);
    this.textShard = loaded.texts;
    for (const [id, r] of loaded.storedReports) this.reports.set(id, r);
  }

  /**
   * Load and verify a bundle. `model` (name, manifest sha256, embedDim) must be the model that made the
   * vectors: a bundle built with another model is refused, since its vectors live in another space. It may be a
   * promise, so that a caller loads the model and the index at once:
   *
   *   const model = MedClipModel.load(modelDir);
   *   const [m, index] = await Promise.all([model, IndexBundle.load(indexDir, { model })]);
   *
   * Every file is checked against the manifest's sha256 before its content is used; an HNSW file before hnswlib
   * reads it (native code must never see a corrupted file). A large bundle is hashed on a worker thread while the
   * model and the metadata load.
   */
  static async load(location: string, options: IndexLoadOptions = {}): Promise<IndexBundle> {
    const live = async () => {
      try {
        const dir = await currentVersion(location, 'manifest.json');
        if (!dir) throw new IndexError(`${location}: no manifest.json (not an index bundle)`);
        return dir;
      } catch (err) {
        if (err instanceof VersionedDirError) throw new IndexError(err.message);
        throw err;
      }
    };
    const dir = await live();
    try {
      return new IndexBundle(await readVersion(dir, options));
    } catch (err) {
      // A writer published twice while this load ran and pruned the version it was reading: load the new one.
      const now = await live().catch(() => dir);
      if (now === dir) throw err;
      return new IndexBundle(await readVersion(now, options));
    }
  }

  /**
   * Every live item of a collection with its vector, in order (hnswlib keeps the raw vectors of an inner-product
   * index). Append and delete rebuild a new version from these, so only this module reads bundle files.
   */
  *entries(collection: CollectionName): Generator<{ meta: ItemMeta; vector: Float32Array }> {
    for (const shard of this.shards[collection] as Shard<ItemMeta>[])
      for (let label = 0; label < shard.meta.length; label++) {
        const meta = shard.meta.get(label)!;
        if (!meta.deleted) yield { meta, vector: Float32Array.from(shard.index.getPoint(label)) };
      }
  }

  /** The build's list of skipped items (`errors.jsonl`), checked against its sha256. */
  async buildErrors<E = { collection: CollectionName; id: string; reason: string }>(): Promise<E[]> {
    const name = this.manifest.errors;
    if (!name) return [];
    const bytes = await readFile(bundleFile(this.dir, name)).catch(() => {
      throw new IndexError(`${this.dir}: missing ${name}`);
    });
    const want = this.manifest.sha256?.[name];
    if (want && createHash('sha256').update(bytes).digest('hex') !== want)
      throw new IndexError(`${this.dir}: ${name} does not match its sha256 (corrupted or modified)`);
    return parseJsonl<E>(bytes.toString('utf8'), name);
  }

  /** Whether every image shard has text anchors with per-group lists (anchors format 2; `--upgrade` adds them). */
  textAnchorsCurrent(): boolean {
    return this.shards.images.every((shard) => shard.anchors()?.grouped ?? false);
  }

  count(collection: CollectionName): number {
    const c = this.manifest.collections[collection];
    return c ? c.count - (c.deleted ?? 0) : 0;
  }

  image(id: string): ImageMeta | undefined {
    return this.imageById.get(id);
  }

  private reportImages?: Map<string, ImageMeta[]>;
  private imagePositions?: Map<string, { shard: number; label: number }>;

  /** Report id -> the live images linked to it (`ImageMeta.reportId`), built on first use; empty without pairs. */
  imagesByReport(): Map<string, ImageMeta[]> {
    if (!this.reportImages) {
      this.reportImages = new Map();
      // the manifest says how many images have their report (none: nothing to read); older bundles do not say, and a
      // shard whose metadata never names a report is not parsed
      if (this.manifest.pairs === 0) return this.reportImages;
      for (const s of this.shards.images)
        for (const im of s.meta.mayContain('"reportId"') ? s.meta : [])
          if (!im.deleted && im.reportId && this.reports.has(im.reportId)) {
            const list = this.reportImages.get(im.reportId);
            if (list) list.push(im);
            else this.reportImages.set(im.reportId, [im]);
          }
    }
    return this.reportImages;
  }

  /** An image's stored vector (unit length), by id. */
  imageVector(id: string): Float32Array | undefined {
    if (!this.imagePositions) {
      this.imagePositions = new Map();
      this.shards.images.forEach((s, shard) => {
        let label = 0;
        for (const im of s.meta) this.imagePositions!.set(im.id, { shard, label: label++ });
      });
    }
    const at = this.imagePositions.get(id);
    return at ? Float32Array.from(this.shards.images[at.shard]!.index.getPoint(at.label)) : undefined;
  }

  private facetsOfImages?: ImageFacets;

  /** Views, sources and positive findings of the live images with counts (computed once; a bundle never changes). */
  facets(): ImageFacets {
    this.facetsOfImages ??= imageFacets(this.imageById.values());
    return this.facetsOfImages;
  }

  /** Path of an image's stored thumbnail, if the bundle has thumbnails and the image exists. */
  thumbnailFile(id: string): string | undefined {
    if (!this.manifest.thumbnails || !this.imageById.has(id)) return undefined;
    return join(this.dir, this.manifest.thumbnails, thumbnailName(id));
  }

  report(id: string): StoredReport | undefined {
    return this.reports.get(id);
  }

  private lexicalIndex?: LexicalIndex;

  /**
   * BM25 over the distinct sentence texts: the bundle's stored index (verified against its sha256), or, for a
   * bundle written before it existed, one built from the stored sentences now (`medclip index --upgrade` stores it).
   */
  lexical(): LexicalIndex {
    if (!this.lexicalIndex) {
      const stored = this.manifest.lexical;
      let parsed: LexicalIndex | undefined;
      if (stored && stored.version === LEXICAL_VERSION) {
        let bytes: Buffer;
        try {
          bytes = readFileSync(bundleFile(this.dir, stored.file));
        } catch {
          throw new IndexError(`${this.dir}: missing ${stored.file}`, 'data');
        }
        if (createHash('sha256').update(bytes).digest('hex') !== this.manifest.sha256[stored.file])
          throw new IndexError(`${this.dir}: ${stored.file} does not match its sha256 (corrupted or modified)`, 'data');
        parsed = LexicalIndex.parse(bytes.toString('utf8'));
      }
      this.lexicalIndex = parsed ?? LexicalIndex.build(this.sentenceGroups().keys());
    }
    return this.lexicalIndex;
  }

  private groups?: Map<string, { members: { shard: number; label: number }[]; reports: number }>;

  /** Live sentences (of live reports) by their exact text, with how many reports hold each; built on first use. */
  private sentenceGroups(): Map<string, { members: { shard: number; label: number }[]; reports: number }> {
    if (!this.groups) {
      const groups = new Map<string, { members: { shard: number; label: number }[]; reports: number; last: string }>();
      const byReport = new Map<string, { shard: number; label: number }[]>();
      this.shards.reports.forEach((shard, s) => {
        let label = -1;
        for (const m of shard.meta) {
          label++;
          if (m.deleted || !this.reports.has(m.reportId)) continue;
          const mine = byReport.get(m.reportId);
          if (mine) mine.push({ shard: s, label });
          else byReport.set(m.reportId, [{ shard: s, label }]);
          if (m.text === undefined) continue;
          const g = groups.get(m.text);
          if (!g) groups.set(m.text, { members: [{ shard: s, label }], reports: 1, last: m.reportId });
          else {
            g.members.push({ shard: s, label });
            // a report's sentences are consecutive: a repeat inside one report is not another report
            if (g.last !== m.reportId) {
              g.reports++;
              g.last = m.reportId;
            }
          }
        }
      });
      this.groups = groups;
      this.sentencesOfReport = byReport;
    }
    return this.groups;
  }

  private sentencesOfReport?: Map<string, { shard: number; label: number }[]>;
  private readonly reportVectors = boundedCache<string, Float32Array>('report-vectors', (v, k) => v.byteLength + stringBytes(k));

  /** A report's own vector: the normalised mean of its live sentences' vectors (computed on first use, cached). */
  reportVector(reportId: string): Float32Array | undefined {
    let v = this.reportVectors.get(reportId);
    if (v) return v;
    this.sentenceGroups();
    const members = this.sentencesOfReport?.get(reportId);
    if (!members?.length) return undefined;
    const dim = this.manifest.collections.reports!.dim;
    v = new Float32Array(dim);
    for (const m of members) {
      const p = this.shards.reports[m.shard]!.index.getPoint(m.label);
      for (let d = 0; d < dim; d++) v[d]! += p[d]!;
    }
    let norm = 0;
    for (let d = 0; d < dim; d++) norm += v[d]! * v[d]!;
    norm = Math.sqrt(norm) || 1;
    for (let d = 0; d < dim; d++) v[d]! /= norm;
    this.reportVectors.set(reportId, v);
    return v;
  }

  /** How many live items of a collection pass a filter (the allow-lists are cached per filter). */
  countMatching(collection: CollectionName, filter: SearchFilter): number {
    checkFilter(filter);
    let n = 0;
    for (const shard of this.shards[collection] as Shard<ItemMeta>[]) n += shard.allowed(filter)?.count ?? shard.meta.length;
    return n;
  }

  /** A distinct sentence text's embedding, read from the HNSW index once (a native call per read otherwise). */
  private readonly textVectors = boundedCache<string, Float32Array>('sentence-vectors', (v, k) => v.byteLength + stringBytes(k));

  /** How many live reports hold a sentence with exactly this text. */
  reportsWithSentence(text: string): number {
    return this.sentenceGroups().get(text)?.reports ?? 0;
  }

  /**
   * Sentences with these exact texts (lexical candidates) scored against the query: one dot product per text (the
   * same text has the same embedding), at most `perText` sentences of each, those passing the filter.
   */
  sentencesWithTexts(texts: string[], query: Float32Array, filter?: SearchFilter, perText = 5): Hit<SentenceMeta>[] {
    const pass = filterPredicate(filter);
    const out: Hit<SentenceMeta>[] = [];
    for (const text of texts) {
      const members = this.sentenceGroups().get(text)?.members;
      if (!members?.length) continue;
      let vector = this.textVectors.get(text);
      if (!vector) {
        const first = members[0]!;
        vector = Float32Array.from(this.shards.reports[first.shard]!.index.getPoint(first.label));
        this.textVectors.set(text, vector);
      }
      let score = 0;
      for (let d = 0; d < query.length; d++) score += vector[d]! * query[d]!;
      let taken = 0;
      for (const m of members) {
        const meta = this.shards.reports[m.shard]!.meta.get(m.label)!;
        if (!pass(meta)) continue;
        out.push({ score, meta });
        if (++taken >= perText) break;
      }
    }
    return out;
  }

  /**
   * Report search: the best-matching sentence of each report, k distinct reports whenever the index holds k
   * (matching the filter). Sentences are fetched in widening rounds (k * 5, then 4x more) until k reports are found
   * or every sentence has been considered: a report with many similar sentences cannot crowd the others out.
   * `rerank` replaces a candidate's dense score for ordering (e.g. core/search-rank's negation-aware fusion).
   * `extra` candidates (lexical ones, affirming ones: core/search/report-search.ts) join the dense ones. With `collapse`, reports whose best sentence has the same text as a better-ranked one are folded
   * into it (`same`): k hits are then k distinct sentences, not a page of "Lungs are clear.".
   */
  searchReports(
    query: Float32Array,
    options: SearchOptions & { rerank?: (meta: SentenceMeta, dense: number) => number; extra?: Hit<SentenceMeta>[]; collapse?: boolean },
  ): ReportSentenceHit[] {
    const total = this.count('reports');
    // ranked to the deepest request's depth whatever k asks (the first k hits are those of any larger k)
    const depth = Math.max(options.k, MAX_HITS);
    let want = Math.min(total, depth * 5);
    const score = (h: Hit<SentenceMeta>) => ({
      ...h,
      fused: options.rerank ? options.rerank(h.meta, h.score) : h.score,
      same: [] as string[],
    });
    const extra = (options.extra ?? []).map(score);
    for (;;) {
      const candidates = this.search('reports', query, { ...options, k: want }).map(score);
      const seen = new Set(candidates.map((c) => c.meta.id));
      for (const e of extra) if (!seen.has(e.meta.id)) candidates.push({ ...e, same: [] });
      candidates.sort((a, b) => b.fused - a.fused);
      const best = new Map<string, ReportSentenceHit>();
      for (const h of candidates) if (!best.has(h.meta.reportId) && this.reports.has(h.meta.reportId)) best.set(h.meta.reportId, h);
      let hits = [...best.values()];
      if (options.collapse) {
        const byText = new Map<string, ReportSentenceHit>();
        for (const h of hits) {
          const key = h.meta.text ?? h.meta.id;
          const first = byText.get(key);
          if (first) {
            if (first.same.length < MAX_COLLAPSED_IDS) first.same.push(h.meta.reportId);
          } else byText.set(key, h);
        }
        hits = [...byText.values()];
      }
      if (hits.length >= depth || want >= total) return hits.slice(0, options.k);
      want = Math.min(total, want * 4);
    }
  }

  search(collection: 'images', query: Float32Array, options: SearchOptions): Hit<ImageMeta>[];
  search(collection: 'reports', query: Float32Array, options: SearchOptions): Hit<SentenceMeta>[];
  search(collection: CollectionName, query: Float32Array, options: SearchOptions): Hit[] {
    const c = this.manifest.collections[collection];
    if (!c) throw new IndexError(`this index has no ${collection} collection`, 'input');
    if (query.length !== c.dim) throw new IndexError(`query has dimension ${query.length}, the ${collection} collection ${c.dim}`, 'input');
    if (!Number.isInteger(options.k) || options.k < 1) throw new IndexError('k must be a positive integer', 'input');
    checkFilter(options.filter);
    return searchShards(this.shards[collection] as Shard<ItemMeta>[], c.efSearch, query, options);
  }

  private textShard?: Shard<TextMeta>;

  /** Whether this bundle has the distinct-text index (bundles written before it existed do not; `--upgrade`). */
  get hasTextIndex(): boolean {
    return this.textShard !== undefined;
  }

  /** Distinct sentence texts nearest the query (filter on their labels), from the `texts` index. */
  searchTexts(query: Float32Array, options: SearchOptions): Hit<TextMeta>[] {
    const t = this.manifest.texts;
    if (!this.textShard || !t) throw new IndexError(`${this.dir}: no distinct-text index; run \`medclip index --upgrade\``, 'input');
    if (query.length !== t.dim) throw new IndexError(`query has dimension ${query.length}, the texts index ${t.dim}`, 'input');
    checkFilter(options.filter);
    return searchShards([this.textShard], t.efSearch, query, options);
  }

  /** A distinct text's metadata and vector (from the texts index), for scoring a lexical candidate. */
  textEntry(text: string): { meta: TextMeta; vector: Float32Array } | undefined {
    const label = this.textLabels().get(text);
    if (label === undefined || !this.textShard) return undefined;
    let vector = this.textVectors.get(text);
    if (!vector) {
      vector = Float32Array.from(this.textShard.index.getPoint(label));
      this.textVectors.set(text, vector);
    }
    return { meta: this.textShard.meta.get(label)!, vector };
  }

  /** Distinct texts in the texts index. */
  textCount(): number {
    return this.textShard?.meta.length ?? 0;
  }

  /** How many distinct texts pass a filter (on their labels; allow-lists cached). */
  countMatchingTexts(filter: SearchFilter): number {
    checkFilter(filter);
    return this.textShard ? (this.textShard.allowed(filter)?.count ?? this.textShard.meta.length) : 0;
  }

  private textLabelMap?: Map<string, number>;
  private textLabels(): Map<string, number> {
    if (!this.textLabelMap) {
      this.textLabelMap = new Map();
      let label = 0;
      for (const m of this.textShard?.meta ?? []) this.textLabelMap.set(m.text, label++);
    }
    return this.textLabelMap;
  }

  /** Live sentences with exactly this text, in index order (at most `limit`). */
  sentencesWithText(text: string, limit = Number.POSITIVE_INFINITY): SentenceMeta[] {
    const members = this.sentenceGroups().get(text)?.members ?? [];
    return members.slice(0, limit).map((m) => this.shards.reports[m.shard]!.meta.get(m.label)!);
  }
}
