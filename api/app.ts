/**
 * The medclip-search HTTP API as a Hono app (runtime-neutral: `server.ts` serves it on Node, `lambda.ts` on
 * AWS Lambda). Model and index are loaded once by the caller; class prompt embeddings are computed at start-up.
 *
 *   const services = await createServices(model, index);
 *   const app = createApp(services, { auth: { mode: 'off' } });
 *   await app.request('/v1/search/text', { method: 'POST', body: JSON.stringify({ query: 'pleural effusion' }) });
 */
import { OpenAPIHono, createRoute, z } from '@hono/zod-openapi';
import type { Context } from 'hono';
import { bodyLimit } from 'hono/body-limit';
import { cors } from 'hono/cors';
import { requestId } from 'hono/request-id';
import { HTTPException } from 'hono/http-exception';
import { readFile } from 'node:fs/promises';
import { randomUUID } from 'node:crypto';
import { DEFAULT_IMAGE_LIMITS, ImageError, thumbnailJpeg, type ImageLimits } from '../core/image/index.ts';
import { checkFilter, type IndexBundle, type SearchFilter, type ImageMeta } from '../core/index.ts';
import { OBSERVATIONS } from '../core/labels.ts';
import type { MedClipModel } from '../core/model.ts';
import { BUILTIN_CLASS_NAMES, BUILTIN_TEMPLATES, expandTemplate, resolveClasses, type ClassPrompts } from '../core/prompts.ts';
import { FINDING_PROMPTS, resolveFindingNames } from '../core/findings.ts';
import { QuerySpeller } from '../core/query-terms.ts';
import { agreeingFindings, queryFindings, type QueryFinding } from '../core/search-rank.ts';
import { apiKeyAuth } from './auth.ts';
import { localSearcher, type ImageSearcher } from './shard-fanout.ts';
import { readImageInput } from './image-input.ts';
import { renderDocsPage } from './docs-page.ts';
import { docsAsset } from './docs-assets.ts';
import { EXAMPLES } from './examples.ts';
import { PAGE_CSP, pageAsset } from './search-page.ts';
import { HttpProblem, problemResponse } from './problem.ts';
import * as S from './schemas.ts';
import { ReportSearch } from '../core/report-search.ts';
import { HTTP_STATUS, HTTP_TITLE, MedclipError } from '../core/errors.ts';

export interface ApiConfig {
  auth: { mode: 'off' } | { mode: 'api-key'; hashes: Buffer[] };
  /** Allowed CORS origins ('*' for any); none = no CORS headers. */
  corsOrigins?: string[];
  /** Largest request body (default 6 MB, Lambda's limit). */
  maxBodyBytes?: number;
  imageLimits?: ImageLimits;
  /** Folder the index's image paths start from, to make previews when the bundle has no thumbnails. */
  imagesRoot?: string;
  /** Structured access log (request id, route, status, time): never bodies, queries or pixels. */
  log?: (entry: Record<string, unknown>) => void;
}

export interface ApiServices {
  model: MedClipModel;
  index: IndexBundle;
  /** Image search: the local bundle, or shard Lambdas (`ShardFanout`). */
  images: ImageSearcher;
  /** The built-in classes, with prompt embeddings already computed. */
  defaultClasses: ClassPrompts[];
  /** Spelling correction for text queries, from the indexed reports' and the prompts' words (built on first use). */
  speller: () => QuerySpeller;
}

export const PROMPTS_PER_CLASS = 10;

/** Load-time work: resolve the built-in classes and embed their prompts once. */
export async function createServices(
  model: MedClipModel,
  index: IndexBundle,
  images: ImageSearcher = localSearcher(index),
): Promise<ApiServices> {
  const defaultClasses = resolveClasses(
    BUILTIN_CLASS_NAMES.filter((c) => c !== 'COVID-19'),
    PROMPTS_PER_CLASS,
    0,
  );
  await model.classEmbeddings(defaultClasses);
  // Built on the first text query, not during the cold start (a large archive's vocabulary takes a while to count).
  let speller: QuerySpeller | undefined;
  return { model, index, images, defaultClasses, speller: () => (speller ??= QuerySpeller.fromTexts(vocabularyTexts(index))) };
}

/** Words a query may be corrected to: the indexed reports, every prompt, the observation names. */
function* vocabularyTexts(index: IndexBundle): Generator<string> {
  for (const r of index.reports.values()) yield* Object.values(r.text);
  for (const t of Object.values(BUILTIN_TEMPLATES)) yield* expandTemplate(t);
  for (const f of Object.values(FINDING_PROMPTS)) yield* [...f.positive, ...f.negative];
  yield* OBSERVATIONS;
}

type Env = { Variables: { requestId: string } };

function fromImageError(err: ImageError): HttpProblem {
  if (err.code === 'too-large') return new HttpProblem(413, 'Image too large', err.message);
  if (err.code === 'unsupported') return new HttpProblem(415, 'Unsupported image format', err.message);
  return new HttpProblem(400, 'Unreadable image', err.message);
}

const json = (schema: z.ZodType, description: string, example?: unknown) => ({
  content: { 'application/json': { schema, ...(example ? { example } : {}) } },
  description,
});
/** Errors are served as RFC 9457 problem details, and declared so. */
const problem = (description: string) => ({
  content: { 'application/problem+json': { schema: S.Problem, example: EXAMPLES.problem } },
  description,
});
const unauthorized = { 401: problem('Missing or wrong API key (when the deployment uses keys); see WWW-Authenticate') };
const problems = {
  400: problem('Invalid request'),
  ...unauthorized,
  413: problem('Body or image too large'),
  415: problem('Unsupported media type'),
};
/** Fields that go in the query string when the image is the raw body. */
const imageQuery = (fields: Record<string, z.ZodType>) => z.object(fields);

const imageBody = (jsonSchema: z.ZodType) => ({
  content: {
    'image/png': { schema: z.string().openapi({ format: 'binary' }) },
    'image/jpeg': { schema: z.string().openapi({ format: 'binary' }) },
    'application/dicom': { schema: z.string().openapi({ format: 'binary' }) },
    'multipart/form-data': { schema: z.object({ image: z.string().openapi({ format: 'binary' }) }).passthrough() },
    'application/json': { schema: jsonSchema },
  },
  required: true,
});

/** Long side of `POST /v1/preview` (the page's view of a query X-ray; enough for window/level on screen). */
const QUERY_PREVIEW_SIZE = 768;

export function createApp(services: ApiServices, config: ApiConfig): OpenAPIHono<Env> {
  const { model, index } = services;
  const limits = config.imageLimits ?? DEFAULT_IMAGE_LIMITS;
  const app = new OpenAPIHono<Env>({
    defaultHook: (result, c) => {
      if (!result.success) {
        const issues = result.error.issues.map((i) => `${i.path.join('.') || '(body)'}: ${i.message}`);
        return problemResponse(
          c,
          new HttpProblem(400, 'Invalid request', issues.join('; '), {
            issues: result.error.issues.map((i) => ({ path: i.path, message: i.message })),
          }),
        );
      }
    },
  });

  // The server makes the request id. A client's own is taken only when it is a UUID (a correlation id), never
  // as free text: ids are logged, and free text could carry a patient's name or record number.
  app.use('*', requestId({ headerName: '', generator: (c) => clientRequestId(c.req.header('x-request-id')) ?? randomUUID() }));
  app.use('*', async (c, next) => {
    const t0 = performance.now();
    c.header('x-request-id', c.get('requestId'));
    await next();
    config.log?.({
      requestId: c.get('requestId'),
      method: c.req.method,
      route: c.req.routePath,
      status: c.res.status,
      ms: Math.round((performance.now() - t0) * 10) / 10,
    });
  });
  if (config.corsOrigins?.length)
    app.use(
      '*',
      cors({
        origin: config.corsOrigins.includes('*') ? '*' : config.corsOrigins,
        allowHeaders: ['content-type', 'x-api-key', 'authorization'],
        exposeHeaders: ['x-request-id'],
      }),
    );
  app.use(
    '/v1/*',
    bodyLimit({
      maxSize: config.maxBodyBytes ?? 6 * 1024 * 1024,
      onError: (c) =>
        problemResponse(
          c,
          new HttpProblem(
            413,
            'Body too large',
            `requests are limited to ${Math.round((config.maxBodyBytes ?? 6 * 1024 * 1024) / 1024)} KiB`,
          ),
        ),
    }),
  );
  if (config.auth.mode === 'api-key') app.use('/v1/*', apiKeyAuth(config.auth.hashes));

  app.onError((err, c) => {
    if (err instanceof HttpProblem) return problemResponse(c, err);
    if (err instanceof HTTPException && err.status < 500) {
      const status = err.status as 400 | 415;
      const detail = /json/i.test(err.message) ? 'the request body is not valid JSON' : err.message || 'the request could not be read';
      return problemResponse(c, new HttpProblem(status, status === 415 ? 'Unsupported media type' : 'Invalid request', detail));
    }
    if (err instanceof ImageError) return problemResponse(c, fromImageError(err));
    // Every other error written for people: the status of its kind (a fault in the bundle itself is not the caller's).
    if (err instanceof MedclipError) {
      if (err.kind !== 'input') config.log?.({ requestId: c.get('requestId'), route: c.req.routePath, error: err.name, kind: err.kind });
      return problemResponse(
        c,
        new HttpProblem(
          HTTP_STATUS[err.kind],
          HTTP_TITLE[err.kind],
          err.kind === 'input' ? err.message : 'the service could not use its stored data; quote the request id when reporting it',
        ),
      );
    }
    config.log?.({ requestId: c.get('requestId'), route: c.req.routePath, error: err.name });
    return problemResponse(c, new HttpProblem(500, 'Internal error', 'the request failed; quote the request id when reporting it'));
  });
  app.notFound((c) => {
    const allowed = allowedMethods(app, c.req.path);
    if (allowed.length)
      return problemResponse(
        c,
        new HttpProblem(
          405,
          'Method not allowed',
          `${c.req.method} is not served here; use ${allowed.join(' or ')}`,
          {},
          { allow: allowed.join(', ') },
        ),
      );
    return problemResponse(c, new HttpProblem(404, 'Not found', `no route ${c.req.method} ${c.req.path}`));
  });

  /**
   * Findings read from an image: findings mode (each observation's own probability), those at 0.5 or above.
   * Never "No Finding" together with a positive finding: No Finding is reported only when nothing else is.
   */
  async function imageFindings(vector: Float32Array): Promise<QueryFinding[]> {
    const found = await model.findings(vector);
    const positive = found.filter((f) => f.name !== 'No Finding' && f.probability >= 0.5).sort((a, b) => b.probability - a.probability);
    return (positive.length ? positive.map((f) => f.name) : (['No Finding'] as const)).map((name) => ({
      name,
      polarity: 'positive' as const,
    }));
  }

  function imageHit(h: { score: number; meta: ImageMeta }, queryFindings: QueryFinding[]) {
    return {
      id: h.meta.id,
      score: h.score,
      labels: h.meta.labels,
      matched: agreeingFindings(queryFindings, h.meta.labels),
      ...(h.meta.view ? { view: h.meta.view } : {}),
      ...(h.meta.source ? { source: h.meta.source } : {}),
      thumbnail: `/v1/images/${encodeURIComponent(h.meta.id)}`,
    };
  }

  const reportSearch = new ReportSearch(index);

  /** Report hits; a text query's findings re-rank them by polarity agreement (core/report-search.ts). */
  function reportHits(
    vector: Float32Array,
    k: number,
    filter: SearchFilter | undefined,
    queryFindings: QueryFinding[],
    byAgreement: boolean,
  ) {
    return reportSearch.search(vector, { k, filter, findings: byAgreement ? queryFindings : undefined }).map((r) => ({
      id: r.report.id,
      score: r.hit.score,
      ...(r.relevance !== undefined ? { relevance: r.relevance } : {}),
      labels: r.report.labels,
      matched: agreeingFindings(queryFindings, r.hit.meta.labels),
      sentence: { index: r.hit.meta.index, text: r.sentence },
      report: r.report.text,
    }));
  }

  async function search(
    vector: Float32Array,
    target: 'images' | 'reports',
    k: number,
    filter: SearchFilter | undefined,
    queryFindings: QueryFinding[],
    fromText: boolean,
  ) {
    const count = target === 'images' ? services.images.count() : index.count('reports');
    if (count === 0) throw new HttpProblem(400, 'Nothing to search', `this index holds no ${target}`);
    if (target === 'reports') return reportHits(vector, k, filter, queryFindings, fromText);
    checkFilter(filter);
    return (await services.images.search(vector, k, filter)).map((h) => imageHit(h, queryFindings));
  }

  app.openapi(
    createRoute({
      method: 'get',
      path: '/v1/health',
      operationId: 'getHealth',
      summary: 'Model and index identity and counts',
      responses: { 200: json(S.Health, 'Service is up', EXAMPLES.health), ...unauthorized },
    }),
    (c) =>
      c.json(
        {
          status: 'ok' as const,
          model: { name: model.name, sha256: model.manifestSha256, embedDim: model.embedDim },
          index: {
            version: index.manifest.version,
            images: services.images.count(),
            reports: index.reports.size,
            sentences: index.count('reports'),
          },
        },
        200,
      ),
  );

  app.openapi(
    createRoute({
      method: 'get',
      path: '/v1/facets',
      operationId: 'getFacets',
      summary: 'Views, sources and findings of the indexed images, with counts (to build filters)',
      responses: { 200: json(S.Facets, 'What the image collection holds', EXAMPLES.facets), ...unauthorized },
    }),
    async (c) => c.json(await services.images.facets(), 200),
  );

  app.openapi(
    createRoute({
      method: 'post',
      path: '/v1/search/text',
      operationId: 'searchByText',
      summary: 'Search images or reports with a text query',
      request: {
        body: {
          content: {
            'application/json': {
              schema: S.TextSearchRequest,
              example: { query: 'large left pleural effusion', target: 'reports', k: 1, filter: { must: ['Pleural Effusion'] } },
            },
          },
          required: true,
        },
      },
      responses: { 200: json(S.SearchResponse, 'Ranked hits', EXAMPLES.textSearch), ...problems },
    }),
    async (c) => {
      const t0 = performance.now();
      const body = c.req.valid('json');
      const understood = services.speller().analyse(body.query);
      const text = understood.corrected ?? body.query;
      const [vector] = await model.embedTexts([text]);
      const findings = queryFindings(text);
      const hits = await search(vector!, body.target, body.k, body.filter, findings, true);
      const query = {
        findings,
        ...(understood.corrected ? { corrected: understood.corrected } : {}),
        ...(understood.warnings.length ? { warnings: understood.warnings } : {}),
      };
      return c.json({ target: body.target, query, hits, tookMs: Math.round((performance.now() - t0) * 10) / 10 } as never);
    },
  );

  /** Fields that arrive as strings (query string, form) or JSON values, validated with one schema. */
  function imageFields(fields: Record<string, unknown>, defaults: { target: 'images' | 'reports' }) {
    const parseMaybeJson = (v: unknown) => {
      if (typeof v !== 'string') return v;
      try {
        return JSON.parse(v);
      } catch {
        throw new HttpProblem(400, 'Invalid request', 'filter must be a JSON object');
      }
    };
    const raw = {
      target: fields.target ?? defaults.target,
      k:
        fields.k === undefined
          ? undefined
          : typeof fields.k === 'string'
            ? /^-?\d+$/.test(fields.k)
              ? Number(fields.k)
              : fields.k
            : fields.k,
      filter: fields.filter === undefined ? undefined : parseMaybeJson(fields.filter),
    };
    const parsed = S.ImageJson.omit({ image: true }).safeParse(raw);
    if (!parsed.success)
      throw new HttpProblem(
        400,
        'Invalid request',
        parsed.error.issues.map((i) => `${i.path.join('.') || '(body)'}: ${i.message}`).join('; '),
      );
    const unknown = Object.keys(fields).filter((f) => !['target', 'k', 'filter', 'image'].includes(f));
    if (unknown.length) throw new HttpProblem(400, 'Invalid request', `unknown field(s): ${unknown.join(', ')}`);
    return parsed.data;
  }

  // Image routes take three body forms, parsed by `readImageInput`; the registry documents them without
  // attaching a JSON-only validator.
  app.openAPIRegistry.registerPath({
    method: 'post',
    path: '/v1/search/image',
    operationId: 'searchByImage',
    summary: 'Search with an X-ray: similar images, or reports',
    description: 'With a raw body, `target`, `k` and `filter` (JSON) go in the query string; in a form, as fields.',
    responses: { 200: json(S.SearchResponse, 'Ranked hits', EXAMPLES.imageSearch), ...problems },
    request: {
      body: imageBody(S.ImageJson),
      query: imageQuery({
        target: z.enum(['images', 'reports']).optional().openapi({ description: 'what to search (default reports)' }),
        k: z.number().int().min(1).max(100).optional().openapi({ description: 'number of hits (default 10)' }),
        filter: z.string().optional().openapi({ description: 'JSON: { must, mustNot, view, source }', example: '{"must":["Pneumonia"]}' }),
      }),
    },
  });
  app.post('/v1/search/image', async (c: Context) => {
    const t0 = performance.now();
    const input = await readImageInput(c);
    const opts = imageFields(input.fields, { target: 'reports' });
    const [vector] = await model.embedImages([input.bytes], limits);
    const findings = await imageFindings(vector!);
    const hits = await search(vector!, opts.target, opts.k, opts.filter, findings, false);
    return c.json({ target: opts.target, query: { findings }, hits, tookMs: Math.round((performance.now() - t0) * 10) / 10 });
  });

  app.openAPIRegistry.registerPath({
    method: 'post',
    path: '/v1/classify',
    operationId: 'classifyImage',
    summary: 'Zero-shot classification of an X-ray',
    description: `mode exclusive (default): built-in classes ${BUILTIN_CLASS_NAMES.join(', ')}, or your own { name, prompts[] }, compete in one softmax. mode findings: each of the 14 observations (or those named in classes) gets its own probability of being present. With a raw image body, mode goes in the query string (?mode=findings).`,
    request: {
      body: imageBody(S.ClassifyJson),
      query: imageQuery({
        mode: S.ClassifyMode.optional(),
        classes: z.string().optional().openapi({ description: 'JSON list of class names', example: '["Pleural Effusion","Pneumothorax"]' }),
      }),
    },
    responses: { 200: json(S.ClassifyResponse, 'Class probabilities', EXAMPLES.classify), ...problems },
  });
  app.post('/v1/classify', async (c: Context) => {
    const t0 = performance.now();
    const input = await readImageInput(c);
    const unknown = Object.keys(input.fields).filter((f) => !['classes', 'image', 'mode'].includes(f));
    if (unknown.length) throw new HttpProblem(400, 'Invalid request', `unknown field(s): ${unknown.join(', ')}`);
    const mode = S.ClassifyMode.safeParse(input.fields.mode ?? 'exclusive');
    if (!mode.success) throw new HttpProblem(400, 'Invalid request', 'mode must be "exclusive" or "findings"');
    const rawClasses = typeof input.fields.classes === 'string' ? safeJson(input.fields.classes) : input.fields.classes;
    if (mode.data === 'findings') {
      if (
        rawClasses !== undefined &&
        !(Array.isArray(rawClasses) && rawClasses.length <= 14 && rawClasses.every((x) => typeof x === 'string'))
      )
        throw new HttpProblem(400, 'Invalid request', 'in findings mode, classes is a list of observation names (at most 14)');
      const names = resolveFindingNames(rawClasses as string[] | undefined);
      const [vector] = await model.embedImages([input.bytes], limits);
      const found = await model.findings(vector!, names);
      return c.json({
        mode: 'findings',
        classes: found.map((f) => ({ name: f.name, probability: f.probability })),
        tookMs: Math.round((performance.now() - t0) * 10) / 10,
      });
    }
    let classes = services.defaultClasses;
    if (rawClasses !== undefined) {
      const parsed = S.ClassList.safeParse(rawClasses);
      if (!parsed.success)
        throw new HttpProblem(
          400,
          'Invalid request',
          parsed.error.issues.map((i) => `classes.${i.path.join('.')}: ${i.message}`).join('; '),
        );
      classes = resolveClasses(parsed.data, PROMPTS_PER_CLASS, 0);
    }
    const [vector] = await model.embedImages([input.bytes], limits);
    const probs = await model.classify(vector!, classes);
    return c.json({
      mode: 'exclusive',
      classes: probs.sort((a, b) => b.probability - a.probability),
      tookMs: Math.round((performance.now() - t0) * 10) / 10,
    });
  });

  app.openAPIRegistry.registerPath({
    method: 'post',
    path: '/v1/preview',
    operationId: 'previewImage',
    summary: 'An uploaded X-ray as a JPEG, decoded as the model reads it (DICOM included)',
    description: `Greyscale, at most ${QUERY_PREVIEW_SIZE} px on the long side; DICOM rescale, VOI window and MONOCHROME1 applied. Nothing is stored.`,
    request: { body: imageBody(S.PreviewJson) },
    responses: {
      200: { content: { 'image/jpeg': { schema: z.string().openapi({ format: 'binary' }) } }, description: 'JPEG' },
      ...problems,
    },
  });
  app.post('/v1/preview', async (c: Context) => {
    const input = await readImageInput(c);
    const unknown = Object.keys(input.fields).filter((f) => f !== 'image');
    if (unknown.length) throw new HttpProblem(400, 'Invalid request', `unknown field(s): ${unknown.join(', ')}`);
    const jpeg = await thumbnailJpeg(input.bytes, QUERY_PREVIEW_SIZE, limits);
    return c.body(new Uint8Array(jpeg), 200, { 'content-type': 'image/jpeg', 'cache-control': 'no-store' });
  });

  app.openapi(
    createRoute({
      method: 'get',
      path: '/v1/images/{id}',
      operationId: 'getImagePreview',
      summary: 'Preview (JPEG) of an indexed image',
      request: { params: z.object({ id: z.string().min(1).max(1000).openapi({ description: 'Image id, URL-encoded' }) }) },
      responses: {
        200: { content: { 'image/jpeg': { schema: z.string().openapi({ format: 'binary' }) } }, description: 'JPEG preview' },
        400: problem('Malformed id'),
        ...unauthorized,
        404: problem('No such image'),
      },
    }),
    async (c: Context) => {
      const id = pathId(c);
      const meta = await services.images.image(id);
      if (!meta) throw new HttpProblem(404, 'Not found', 'no image with this id in the index');
      let jpeg: Uint8Array | undefined = await services.images.thumbnail(id);
      if (!jpeg && config.imagesRoot)
        jpeg = await thumbnailJpeg(await readFile(`${config.imagesRoot}/${meta.path}`).catch(() => new Uint8Array(0))).catch(
          () => undefined,
        );
      if (!jpeg) throw new HttpProblem(404, 'Not found', 'no preview is stored for this image');
      return c.body(new Uint8Array(jpeg), 200, { 'content-type': 'image/jpeg', 'cache-control': 'private, max-age=3600' });
    },
  );

  app.openapi(
    createRoute({
      method: 'get',
      path: '/v1/reports/{id}',
      operationId: 'getReport',
      summary: 'An indexed report',
      request: { params: z.object({ id: z.string().min(1).max(1000).openapi({ description: 'Report id, URL-encoded' }) }) },
      responses: {
        200: json(z.object({ id: z.string(), text: z.record(z.string(), z.string()), labels: S.Labels }), 'The report'),
        400: problem('Malformed id'),
        ...unauthorized,
        404: problem('No such report'),
      },
    }),
    (c: Context) => {
      const r = index.report(pathId(c));
      if (!r) throw new HttpProblem(404, 'Not found', 'no report with this id in the index');
      return c.json({ id: r.id, text: r.text, labels: r.labels }, 200);
    },
  );

  app.doc31('/openapi.json', {
    openapi: '3.1.0',
    info: {
      title: 'medclip-search',
      version: '1.0.0',
      description: 'Retrieval over chest X-rays and radiology reports (MedCLIP). Errors are application/problem+json with a request id.',
      license: { name: 'MIT', url: 'https://opensource.org/licenses/MIT' },
    },
    servers: [{ url: '/', description: 'the server that serves this document' }],
    // Either key form is accepted. A local server may run with auth off (`medclip serve` on loopback says so).
    security: [{ apiKey: [] }, { bearer: [] }],
  });
  app.openAPIRegistry.registerComponent('securitySchemes', 'apiKey', {
    type: 'apiKey',
    in: 'header',
    name: 'x-api-key',
    description: 'an API key (the server stores its sha256)',
  });
  app.openAPIRegistry.registerComponent('securitySchemes', 'bearer', {
    type: 'http',
    scheme: 'bearer',
    description: 'the same API key as a bearer token',
  });
  app.get('/docs', (c) => c.html(renderDocsPage('/openapi.json')));
  app.get('/docs/:asset', async (c) => {
    const asset = await docsAsset(c.req.param('asset'));
    if (!asset) throw new HttpProblem(404, 'Not found', 'no such file of the API reference');
    return c.body(asset.body, 200, { 'content-type': asset.type, 'cache-control': 'public, max-age=86400' });
  });
  app.get('/favicon.ico', async (c) => {
    const icon = (await docsAsset('favicon-32x32.png'))!;
    return c.body(icon.body, 200, { 'content-type': icon.type, 'cache-control': 'public, max-age=86400' });
  });
  const page = async (c: Context, name: string) => {
    const asset = await pageAsset(name);
    if (!asset) throw new HttpProblem(404, 'Not found', 'no such file of the search page');
    return c.body(asset.body, 200, {
      'content-type': asset.type,
      'cache-control': name === 'index.html' ? 'no-cache' : 'public, max-age=300',
      'content-security-policy': PAGE_CSP,
      'x-content-type-options': 'nosniff',
      'referrer-policy': 'no-referrer',
    });
  };
  app.get('/', (c) => page(c, 'index.html'));
  app.get('/page/:asset', (c) => page(c, c.req.param('asset')));
  return app;
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** A client's X-Request-Id, if it is a UUID; anything else is dropped unseen. */
export function clientRequestId(value: string | undefined): string | undefined {
  return value && UUID.test(value) ? value.toLowerCase() : undefined;
}

/**
 * The `{id}` path segment, percent-decoded exactly once. Read from the raw URL: the router's own decoding leaves a
 * malformed escape (`%ZZ`, a lone `%`) as it was, which must be a 400, not a lookup of the wrong id.
 */
function pathId(c: Context): string {
  const raw = new URL(c.req.url).pathname.split('/').pop() ?? '';
  try {
    return decodeURIComponent(raw);
  } catch {
    throw new HttpProblem(400, 'Invalid request', 'the id in the path is not valid percent-encoding (encode it with encodeURIComponent)');
  }
}

/** Methods with a route at this path (for 405 + Allow), from the app's own route table. */
function allowedMethods(app: OpenAPIHono<Env>, path: string): string[] {
  const methods = new Set<string>();
  for (const r of app.routes) {
    if (r.method === 'ALL') continue; // middleware
    const pattern = new RegExp(
      `^${r.path
        .replace(/[.+?^${}()|[\]\\]/g, '\\$&')
        .replace(/\/:[^/]+/g, '/[^/]+')
        .replace(/\*/g, '.*')}$`,
    );
    if (pattern.test(path)) methods.add(r.method);
  }
  if (methods.has('GET')) methods.add('HEAD');
  return [...methods].sort();
}

function safeJson(v: string): unknown {
  try {
    return JSON.parse(v);
  } catch {
    throw new HttpProblem(400, 'Invalid request', 'classes must be a JSON array');
  }
}
