/**
 * The one search service: everything the HTTP API, `medclip search` and the benches answer, in one place, with
 * plain inputs and outputs (no HTTP). Routes validate and translate; this decides.
 *
 *   const service = await SearchService.create(model, index);            // local bundle
 *   const service = await SearchService.create(model, index, fanout);    // images in shard Lambdas
 *   await service.searchText({ query: 'no pneumothorax', target: 'reports', k: 5 });
 *
 * - Text queries: spelling correction against the index's words (core/query-terms), findings with polarity (the
 *   labeler), then images by the text encoder, or reports by the hybrid ranking of core/report-search.
 * - Image queries: findings from the model's findings mode (never "No Finding" next to a positive finding), then
 *   similar images or reports.
 * - Classification: exclusive (softmax over classes) or findings (each observation's own probability).
 * Errors are `MedclipError`s whose kind says who is at fault (input, not-found, unavailable, data).
 */
import type { DicomUids } from '../dicom/index.ts';
import { resolveFindingNames, type MedClipModel, DEFAULT_CLASS_NAMES, resolveClasses, type ClassPrompts } from '../model/index.ts';
import { DEFAULT_IMAGE_LIMITS, thumbnailJpeg, type ImageLimits } from '../image/index.ts';
import {
  checkFilter,
  type ImageFacets,
  type IndexBundle,
  type SearchFilter,
  type StoredLabels,
  localReader,
  type IndexReader,
} from '../bundle/index.ts';
import { MedclipError } from '../errors.ts';
import { boundedCache, stringBytes } from '../util/index.ts';
import { QuerySpeller } from './query-terms.ts';
import { imageHit, reportMediatedImages, type ImageHit } from './image-hits.ts';

export { REPORT_MEDIATED_MIN, type ImageHit } from './image-hits.ts';
import { extractModifiers, hasModifiers, type Modifiers } from '../labeler/index.ts';
import { ReportSearch } from './report-search.ts';
import { agreeingFindings, queryFindings, type QueryFinding } from './rank.ts';
import { readFile } from 'node:fs/promises';

export type Target = 'images' | 'reports';

/** Long side of a query X-ray's preview (`previewUpload`): enough for window/level on a screen. */
export const QUERY_PREVIEW_SIZE = 768;

export interface ReportHit {
  id: string;
  score: number;
  relevance?: number;
  labels: StoredLabels;
  matched: string[];
  /** The query's modifiers the matched sentence states too ("right", "large"). */
  modifiers?: string[];
  sentence: { index: number; text: string; reports: number };
  collapsed: string[];
  report: Record<string, string>;
  /** For a report read from a DICOM SR: its UIDs and a viewer link to its study (when configured). */
  dicom?: DicomUids;
  viewerUrl?: string;
}

export interface SearchResult {
  target: Target;
  query: { findings: QueryFinding[]; modifiers?: Modifiers; corrected?: string; warnings?: string[] };
  hits: (ImageHit | ReportHit)[];
  tookMs: number;
}

/**
 * Where a request's time went, in milliseconds, filled in by the service when the caller passes one (the API sends
 * it as a Server-Timing header): `embed` the encoder (an image's decode included), `search` the image's findings
 * and the search with its hits.
 */
export interface StageTimings {
  embed?: number;
  search?: number;
}

export interface SearchRequest {
  target: Target;
  k: number;
  filter?: SearchFilter;
}

export interface ClassifyResult {
  mode: 'exclusive' | 'findings';
  /** `validated`/`auc`: what the model card says of the class as a finding (custom classes are never validated). */
  classes: { name: string; probability: number; validated: boolean; auc?: number }[];
  tookMs: number;
}

export interface SearchServiceOptions {
  imageLimits?: ImageLimits;
  /** Folder the index's image paths start from, to make previews when the bundle has no thumbnails. */
  imagesRoot?: string;
  /**
   * `hybrid` (default): core/report-search. `dense`: the best sentence of each report by cosine alone, no lexical
   * half, no agreement, no collapsing (report search as it was before; kept as the baseline of bench/report-search).
   */
  reportRanking?: 'hybrid' | 'dense';
  /**
   * A viewer URL template for hits with DICOM UIDs (e.g. OHIF: `https://viewer/viewer?StudyInstanceUIDs={StudyInstanceUID}`);
   * {StudyInstanceUID}, {SeriesInstanceUID} and {SOPInstanceUID} are filled in, URL-encoded.
   */
  viewerUrl?: string;
}

/** A viewer link from a template and an item's UIDs. */
export function viewerLink(template: string, uids: DicomUids): string {
  return template
    .replaceAll('{StudyInstanceUID}', encodeURIComponent(uids.study))
    .replaceAll('{SeriesInstanceUID}', encodeURIComponent(uids.series))
    .replaceAll('{SOPInstanceUID}', encodeURIComponent(uids.instance));
}

interface QueryAnalysis {
  understood: ReturnType<QuerySpeller['analyse']>;
  /** The text searched: the correction, or the query as written. */
  text: string;
  findings: QueryFinding[];
  /** Side, extent, change and location the query states. */
  modifiers: Modifiers;
}

const elapsed = (t0: number) => Math.round((performance.now() - t0) * 10) / 10;

export class SearchService {
  private spellerCache?: QuerySpeller;
  private studyReportsCache?: Map<string, string>;
  /**
   * The understanding of a query text (speller and labeler) by text: a function of the text and this index, asked
   * again and again for the same few findings; the encoder and the search still run for every request.
   */
  private readonly analyses = boundedCache<string, QueryAnalysis>(
    'query-analysis',
    (a, k) => stringBytes(k) + JSON.stringify(a).length * 2,
  );
  private readonly reportSearch: ReportSearch;
  private readonly limits: ImageLimits;

  private constructor(
    readonly model: MedClipModel,
    readonly index: IndexBundle,
    readonly images: IndexReader,
    /** The built-in classes, prompt embeddings computed. */
    readonly defaultClasses: ClassPrompts[],
    private readonly options: SearchServiceOptions,
  ) {
    this.reportSearch = new ReportSearch(index);
    this.limits = options.imageLimits ?? DEFAULT_IMAGE_LIMITS;
  }

  /** Resolve the built-in classes (their prompts are embedded at the first classification, then cached by the model:
   * a cold start that answers a search first does not wait for them). */
  static async create(
    model: MedClipModel,
    index: IndexBundle,
    images: IndexReader = localReader(index),
    options: SearchServiceOptions = {},
  ): Promise<SearchService> {
    const defaultClasses = resolveClasses(DEFAULT_CLASS_NAMES);
    return new SearchService(model, index, images, defaultClasses, options);
  }

  /** Spelling correction from the index's report words and the prompts, built on the first text query (not during the
   * cold start: a large archive's vocabulary takes a while to count). */
  speller(): QuerySpeller {
    this.spellerCache ??= QuerySpeller.forIndex(this.index);
    return this.spellerCache;
  }

  health() {
    return {
      status: 'ok' as const,
      model: { name: this.model.name, sha256: this.model.manifestSha256, embedDim: this.model.embedDim },
      index: {
        version: this.index.manifest.version,
        images: this.images.count(),
        reports: this.index.reports.size,
        sentences: this.index.count('reports'),
      },
    };
  }

  facets(): Promise<ImageFacets> {
    return this.images.facets();
  }

  async searchText(q: SearchRequest & { query: string }, timings?: StageTimings): Promise<SearchResult> {
    const t0 = performance.now();
    const { understood, text, findings, modifiers } = this.analyse(q.query);
    const t1 = performance.now();
    const [vector] = await this.model.embedTexts([text]);
    const t2 = performance.now();
    const hits = await this.search(vector!, q, findings, text, modifiers);
    if (timings) Object.assign(timings, { embed: t2 - t1, search: performance.now() - t2 });
    return {
      target: q.target,
      query: {
        findings,
        ...(hasModifiers(modifiers) ? { modifiers } : {}),
        ...(understood.corrected ? { corrected: understood.corrected } : {}),
        ...(understood.warnings.length ? { warnings: understood.warnings } : {}),
      },
      hits,
      tookMs: elapsed(t0),
    };
  }

  /** Spelling correction, then the findings the (corrected) text states, with polarity; cached by query text. */
  private analyse(query: string): QueryAnalysis {
    let a = this.analyses.get(query);
    if (!a) {
      const understood = this.speller().analyse(query);
      const text = understood.corrected ?? query;
      a = { understood, text, findings: queryFindings(text), modifiers: extractModifiers(text) };
      this.analyses.set(query, a);
    }
    return a;
  }

  async searchImage(bytes: Uint8Array, q: SearchRequest, timings?: StageTimings): Promise<SearchResult> {
    const t0 = performance.now();
    const [vector] = await this.model.embedImages([bytes], this.limits);
    const t1 = performance.now();
    const findings = await imageFindings(this.model, vector!);
    // what the model is not validated for is shown, marked, but never ranks or filters
    const hits = await this.search(
      vector!,
      q,
      findings.filter((f) => f.validated),
      undefined,
    );
    if (timings) Object.assign(timings, { embed: t1 - t0, search: performance.now() - t1 });
    return { target: q.target, query: { findings }, hits, tookMs: elapsed(t0) };
  }

  /**
   * `exclusive`: a softmax over classes (built-in names or `{ name, prompts }`; default the built-in set).
   * `findings`: each observation's own probability (names case-insensitive; default all 14).
   */
  async classify(
    bytes: Uint8Array,
    o: { mode: 'exclusive' | 'findings'; classes?: (string | { name: string; prompts: string[] })[] },
  ): Promise<ClassifyResult> {
    const t0 = performance.now();
    if (o.mode === 'findings') {
      const names = resolveFindingNames(o.classes as string[] | undefined);
      const [vector] = await this.model.embedImages([bytes], this.limits);
      const found = await this.model.findings(vector!, names);
      return {
        mode: 'findings',
        classes: found.map((f) => ({ name: f.name, probability: f.probability, ...this.model.validity(f.name) })),
        tookMs: elapsed(t0),
      };
    }
    const classes = o.classes ? resolveClasses(o.classes) : this.defaultClasses;
    const custom = new Set((o.classes ?? []).flatMap((c) => (typeof c === 'string' ? [] : [c.name])));
    const [vector] = await this.model.embedImages([bytes], this.limits);
    const probs = await this.model.classify(vector!, classes);
    return {
      mode: 'exclusive',
      // a custom class (its own prompts) is not what the card measured: never validated
      classes: probs
        .sort((a, b) => b.probability - a.probability)
        .map((c) => ({ ...c, ...(custom.has(c.name) ? { validated: false } : this.model.validity(c.name)) })),
      tookMs: elapsed(t0),
    };
  }

  /** An uploaded X-ray as the greyscale JPEG the model reads (DICOM decoded), at most QUERY_PREVIEW_SIZE px. */
  previewUpload(bytes: Uint8Array): Promise<Buffer> {
    return thumbnailJpeg(bytes, QUERY_PREVIEW_SIZE, this.limits);
  }

  /** An indexed image's stored preview, or one made from the archive (`imagesRoot`) when the bundle has none. */
  async imagePreview(id: string): Promise<Uint8Array> {
    const meta = await this.images.get(id);
    if (!meta) throw new MedclipError('no image with this id in the index', 'not-found');
    let jpeg = await this.images.preview(id);
    if (!jpeg && this.options.imagesRoot)
      jpeg = await thumbnailJpeg(await readFile(`${this.options.imagesRoot}/${meta.path}`).catch(() => new Uint8Array(0))).catch(
        () => undefined,
      );
    if (!jpeg) throw new MedclipError('no preview is stored for this image', 'not-found');
    return jpeg;
  }

  report(id: string): { id: string; text: Record<string, string>; labels: StoredLabels; dicom?: DicomUids; viewerUrl?: string } {
    const r = this.index.report(id);
    if (!r) throw new MedclipError('no report with this id in the index', 'not-found');
    return { id: r.id, text: r.text, labels: r.labels, ...(r.dicom ? { dicom: r.dicom, ...this.viewer(r.dicom) } : {}) };
  }

  /** Reports are ranked by agreement with the query's findings (a text's, or an image's from findings mode); `text`
   * (a text query, as searched) adds the lexical half and the calibrated relevance. */
  private async search(
    vector: Float32Array,
    q: SearchRequest,
    findings: QueryFinding[],
    text: string | undefined,
    modifiers?: Modifiers,
  ): Promise<(ImageHit | ReportHit)[]> {
    const count = q.target === 'images' ? this.images.count() : this.index.count('reports');
    if (count === 0) throw new MedclipError(`this index holds no ${q.target}`, 'input');
    checkFilter(q.filter);
    if (q.target === 'images') {
      // a text query over an archive whose images have their reports: the reports do the work
      if (text !== undefined && findings.length > 0 && this.images.local && this.index.imagesByReport().size > 0)
        return (
          await reportMediatedImages({ index: this.index, images: this.images, reports: this.reportSearch }, vector, {
            ...q,
            findings,
            text,
            modifiers,
          })
        ).map(({ hit, ...extra }) => ({ ...this.linked(hit), ...extra }));
      return (await this.images.search(vector, q.k, q.filter, text !== undefined)).map((h) => this.linked(imageHit(h, findings)));
    }
    if (this.options.reportRanking === 'dense')
      return this.index.searchReports(vector, { k: q.k, filter: q.filter }).map((h) => {
        const report = this.index.report(h.meta.reportId)!;
        const sentence = h.meta.text ?? '';
        return {
          id: report.id,
          score: h.score,
          labels: report.labels,
          matched: agreeingFindings(findings, h.meta.labels),
          sentence: { index: h.meta.index, text: sentence, reports: this.index.reportsWithSentence(sentence) },
          collapsed: [],
          report: report.text,
        };
      });
    const options = text !== undefined ? { findings, text, relevance: true, modifiers } : { findings, byReportSimilarity: true };
    return this.reportSearch.search(vector, { k: q.k, filter: q.filter, ...options }).map((r) => ({
      id: r.report.id,
      score: r.hit.score,
      ...(r.relevance !== undefined ? { relevance: r.relevance } : {}),
      labels: r.report.labels,
      matched: agreeingFindings(findings, r.hit.meta.labels),
      ...(r.modifiers.length ? { modifiers: r.modifiers } : {}),
      sentence: { index: r.hit.meta.index, text: r.sentence, reports: r.sentenceReports },
      collapsed: r.same,
      report: r.report.text,
      ...(r.report.dicom ? { dicom: r.report.dicom, ...this.viewer(r.report.dicom) } : {}),
    }));
  }

  private viewer(uids: DicomUids): { viewerUrl?: string } {
    return this.options.viewerUrl ? { viewerUrl: viewerLink(this.options.viewerUrl, uids) } : {};
  }

  /** An image hit with DICOM UIDs gets its viewer link and its study's report (an archive's image <-> report pair). */
  private linked(hit: ImageHit): ImageHit {
    if (!hit.dicom) return hit;
    this.studyReportsCache ??= new Map(
      [...this.index.reports.values()].flatMap((r) => (r.dicom && !r.deleted ? [[r.dicom.study, r.id] as const] : [])),
    );
    const report = this.studyReportsCache.get(hit.dicom.study);
    return { ...hit, ...this.viewer(hit.dicom), ...(report ? { studyReport: report } : {}) };
  }
}

/**
 * Findings read from an image: findings mode (each observation's own probability), those at 0.5 or above.
 * Never "No Finding" together with a positive finding: No Finding is reported only when nothing else is.
 */
export async function imageFindings(model: MedClipModel, vector: Float32Array): Promise<QueryFinding[]> {
  const found = await model.findings(vector);
  const positive = found.filter((f) => f.name !== 'No Finding' && f.probability >= 0.5).sort((a, b) => b.probability - a.probability);
  return (positive.length ? positive.map((f) => f.name) : (['No Finding'] as const)).map((name) => ({
    name,
    polarity: 'positive' as const,
    ...model.validity(name),
  }));
}
