/** What the index holds: health and counts, facets for filters, an image's preview, a report. */
import { createRoute, z } from '@hono/zod-openapi';
import type { Context } from 'hono';
import { EXAMPLES } from '../examples.ts';
import { jpeg, json, problem, unauthorized } from '../openapi-parts.ts';
import { HttpProblem } from '../problem.ts';
import { router, type Env } from '../router.ts';
import * as S from '../schemas.ts';

const IdParam = z.object({ id: z.string().min(1).max(1000).openapi({ description: 'URL-encoded id' }) });

export function indexRoutes() {
  const app = router();

  app.openapi(
    createRoute({
      method: 'get',
      path: '/v1/health',
      operationId: 'getHealth',
      summary: 'Model and index identity and counts',
      responses: { 200: json(S.Health, 'Service is up', EXAMPLES.health), ...unauthorized },
    }),
    (c) => c.json(c.var.service.health(), 200),
  );

  app.openapi(
    createRoute({
      method: 'get',
      path: '/v1/facets',
      operationId: 'getFacets',
      summary: 'Views, sources and findings of the indexed images, with counts (to build filters)',
      responses: { 200: json(S.Facets, 'What the image collection holds', EXAMPLES.facets), ...unauthorized },
    }),
    async (c) => c.json(await c.var.service.facets(), 200),
  );

  app.openapi(
    createRoute({
      method: 'get',
      path: '/v1/images/{id}',
      operationId: 'getImagePreview',
      summary: 'Preview (JPEG) of an indexed image',
      request: { params: IdParam },
      responses: { 200: jpeg('JPEG preview'), 400: problem('Malformed id'), ...unauthorized, 404: problem('No such image') },
    }),
    async (c: Context<Env>) => {
      const bytes = await c.var.service.imagePreview(pathId(c));
      return c.body(new Uint8Array(bytes), 200, { 'content-type': 'image/jpeg', 'cache-control': 'private, max-age=3600' });
    },
  );

  app.openapi(
    createRoute({
      method: 'get',
      path: '/v1/reports/{id}',
      operationId: 'getReport',
      summary: 'An indexed report',
      request: { params: IdParam },
      responses: {
        200: json(
          z.object({
            id: z.string(),
            text: z.record(z.string(), z.string()),
            labels: S.Labels,
            dicom: S.DicomUids.optional(),
            viewerUrl: z.string().optional(),
          }),
          'The report',
        ),
        400: problem('Malformed id'),
        ...unauthorized,
        404: problem('No such report'),
      },
    }),
    (c: Context<Env>) => c.json(c.var.service.report(pathId(c)), 200),
  );

  return app;
}

/**
 * The `{id}` path segment, percent-decoded exactly once. Read from the raw URL, not `c.req.valid('param')`: the
 * router's own decoding leaves a malformed escape (`%ZZ`, a lone `%`) as it was, which must be a 400, not a lookup
 * of the wrong id.
 */
function pathId(c: Context): string {
  const raw = new URL(c.req.url).pathname.split('/').pop() ?? '';
  try {
    return decodeURIComponent(raw);
  } catch {
    throw new HttpProblem(400, 'Invalid request', 'the id in the path is not valid percent-encoding (encode it with encodeURIComponent)');
  }
}
