/**
 * The medclip-search HTTP API as a Hono app (runtime-neutral: `server.ts` serves it on Node, `lambda.ts` on
 * AWS Lambda). Routing, validation and HTTP only: what is answered is decided by core/search/search-service.ts. The routes
 * live in sub-apps (api/routes/) mounted with `app.route()`; middleware, the error model and the OpenAPI document
 * are here.
 *
 *   const service = await createServices(model, index);
 *   const app = createApp(service, { auth: { mode: 'off' } });
 *   await app.request('/v1/search/text', { method: 'POST', body: JSON.stringify({ query: 'pleural effusion' }) });
 */
import { OpenAPIHono } from '@hono/zod-openapi';
import { bodyLimit } from 'hono/body-limit';
import type { Context } from 'hono';
import type { ContentfulStatusCode } from 'hono/utils/http-status';
import { cors } from 'hono/cors';
import { requestId } from 'hono/request-id';
import { HTTPException } from 'hono/http-exception';
import { randomUUID } from 'node:crypto';
import { ImageError } from '../core/image/index.ts';
import type { IndexBundle, IndexReader } from '../core/bundle/index.ts';
import type { MedClipModel } from '../core/model/index.ts';
import { fixedSource, type ServiceSource, SearchService, type SearchServiceOptions } from '../core/search/index.ts';
import { LAMBDA_PAYLOAD_LIMIT } from '../core/util/index.ts';
import { HTTP_STATUS, HTTP_TITLE, MedclipError } from '../core/errors.ts';
import { apiKeyAuth } from './auth.ts';
import { HttpProblem, problemResponse } from './problem.ts';
import type { Env } from './router.ts';
import { indexRoutes } from './routes/index-data.ts';
import { pageRoutes } from './routes/pages.ts';
import { searchRoutes } from './routes/search.ts';

export interface ApiConfig {
  auth: { mode: 'off' } | { mode: 'api-key'; hashes: Buffer[] };
  /** Allowed CORS origins ('*' for any); none = no CORS headers. */
  corsOrigins?: string[];
  /** Largest request body (default 6 MB, Lambda's limit). */
  maxBodyBytes?: number;
  /** Structured access log (request id, route, status, time): never bodies, queries or pixels. */
  log?: (entry: Record<string, unknown>) => void;
}

/** What the API serves from: the search service (model, index, image reader, built-in classes). */
export type ApiServices = SearchService;

/** The search service over a model and an index; images from the local bundle unless a reader is given. */
export function createServices(
  model: MedClipModel,
  index: IndexBundle,
  images?: IndexReader,
  options: SearchServiceOptions = {},
): Promise<SearchService> {
  return SearchService.create(model, index, images, options);
}

/** Lambda's request payload limit, and so every entry's default (the same constant the index builder's Lambda fan-out keeps under). */
const MAX_BODY_BYTES = LAMBDA_PAYLOAD_LIMIT;

function fromImageError(err: ImageError): HttpProblem {
  if (err.code === 'too-large') return new HttpProblem(413, 'Image too large', err.message);
  if (err.code === 'unsupported') return new HttpProblem(415, 'Unsupported image format', err.message);
  return new HttpProblem(400, 'Unreadable image', err.message);
}

/** Kinds whose message is written for the caller; the others (data, internal) are logged and answered generically. */
const CALLER_FACING = new Set(['input', 'not-found', 'unavailable']);

/** Set on a request whose client went away before its body arrived (nginx's "client closed request"). */
export const CLIENT_CLOSED = 499 as ContentfulStatusCode;

/**
 * `services`: one fixed service, or a source that follows the bundle's versions (core/search/live-search.ts). Each request
 * takes the service of the version live when it starts and keeps it to its end.
 */
export function createApp(services: SearchService | ServiceSource, config: ApiConfig): OpenAPIHono<Env> {
  const app = new OpenAPIHono<Env>();
  const source = 'acquire' in services ? services : fixedSource(services);

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
        // only what a route serves (the library's default also lists PUT, DELETE, PATCH)
        allowMethods: ['GET', 'HEAD', 'POST'],
        allowHeaders: ['content-type', 'x-api-key', 'authorization'],
        exposeHeaders: ['x-request-id'],
      }),
    );
  const maxBody = config.maxBodyBytes ?? MAX_BODY_BYTES;
  const tooLarge = (c: Context) =>
    problemResponse(c, new HttpProblem(413, 'Body too large', `requests are limited to ${Math.round(maxBody / 1024)} KiB`));
  const streamedLimit = bodyLimit({ maxSize: maxBody, onError: tooLarge });
  // Hono's bodyLimit first asks for the request's body stream, which makes the Node adapter build a whole web
  // Request (streams, an AbortSignal) for every request: a body without one (GET) or with a declared length is
  // judged from the headers here, and only a chunked body is counted by the library as it streams.
  app.use('/v1/*', (c, next) => {
    if (c.req.method === 'GET' || c.req.method === 'HEAD') return next();
    const length = c.req.header('content-length');
    if (length !== undefined && c.req.header('transfer-encoding') === undefined)
      return Number(length) > maxBody ? Promise.resolve(tooLarge(c)) : next();
    return streamedLimit(c, next);
  });
  if (config.auth.mode === 'api-key') app.use('/v1/*', apiKeyAuth(config.auth.hashes));
  app.use('*', async (c, next) => {
    const handle = source.acquire();
    c.set('service', handle.service);
    try {
      await next();
    } finally {
      handle.release();
    }
  });

  app.onError((err, c) => {
    // the client closed the connection mid-upload: nobody reads this answer, and it is not the server's fault
    if (c.req.raw.signal?.aborted)
      return problemResponse(c, new HttpProblem(CLIENT_CLOSED, 'Client closed request', 'the request body was not received in full'));
    if (err instanceof HttpProblem) return problemResponse(c, err);
    if (err instanceof HTTPException && err.status < 500) {
      const status = err.status as 400 | 415;
      const detail =
        status === 415
          ? 'this route takes a JSON body: send it with content-type: application/json'
          : /json/i.test(err.message)
            ? 'the request body is not valid JSON'
            : err.message || 'the request could not be read';
      return problemResponse(c, new HttpProblem(status, status === 415 ? 'Unsupported media type' : 'Invalid request', detail));
    }
    if (err instanceof ImageError) return problemResponse(c, fromImageError(err));
    // Every other error written for people: the status of its kind (a fault in the bundle itself is not the caller's).
    if (err instanceof MedclipError) {
      if (err.kind !== 'input' && err.kind !== 'not-found')
        config.log?.({ requestId: c.get('requestId'), route: c.req.routePath, error: err.name, kind: err.kind });
      return problemResponse(
        c,
        new HttpProblem(
          HTTP_STATUS[err.kind],
          HTTP_TITLE[err.kind],
          CALLER_FACING.has(err.kind) ? err.message : 'the service could not use its stored data; quote the request id when reporting it',
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

  app.route('/', indexRoutes());
  app.route('/', searchRoutes());
  app.route('/', pageRoutes());

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
  return app;
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** A client's X-Request-Id, if it is a UUID; anything else is dropped unseen. */
export function clientRequestId(value: string | undefined): string | undefined {
  return value && UUID.test(value) ? value.toLowerCase() : undefined;
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
