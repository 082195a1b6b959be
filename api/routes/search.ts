/** Search and classification routes: text -> images/reports, image -> images/reports, zero-shot, upload preview. */
import { createRoute, z } from '@hono/zod-openapi';
import type { Context } from 'hono';
import { BUILTIN_CLASS_NAMES } from '../../core/model/index.ts';
import { QUERY_PREVIEW_SIZE, type StageTimings } from '../../core/search/index.ts';
import { EXAMPLES } from '../examples.ts';
import { ClassifyFields, PreviewFields, SearchImageFields, imageFields } from '../image-fields.ts';
import { readImageInput } from '../image-input.ts';
import { imageBody, imageQuery, jpeg, json, problems, searchJson } from '../openapi-parts.ts';
import { HttpProblem } from '../problem.ts';
import { router, type Env } from '../router.ts';
import * as S from '../schemas.ts';

/** A Server-Timing header value (`embed;dur=0.253, search;dur=0.301`): where a search's time went, no content. */
export function serverTiming(timings: StageTimings): string {
  return Object.entries(timings)
    .map(([stage, ms]) => `${stage};dur=${ms.toFixed(3)}`)
    .join(', ');
}

export function searchRoutes() {
  const app = router();

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
      responses: { 200: searchJson(S.SearchResponse, 'Ranked hits', EXAMPLES.textSearch), ...problems },
    }),
    async (c) => {
      const timings: StageTimings = {};
      const result = await c.var.service.searchText(c.req.valid('json'), timings);
      c.header('server-timing', serverTiming(timings));
      return c.json(result as never, 200);
    },
  );

  // Image routes take three body forms (raw, multipart, base64 JSON), read by `readImageInput` and validated by one
  // schema per route (api/image-fields.ts); the registry documents them without a JSON-only validator.
  app.openAPIRegistry.registerPath({
    method: 'post',
    path: '/v1/search/image',
    operationId: 'searchByImage',
    summary: 'Search with an X-ray: similar images, or reports',
    description: 'With a raw body, `target`, `k` and `filter` (JSON) go in the query string; in a form, as fields.',
    responses: { 200: searchJson(S.SearchResponse, 'Ranked hits', EXAMPLES.imageSearch), ...problems },
    request: {
      body: imageBody(S.ImageJson),
      query: imageQuery({
        target: z.enum(['images', 'reports']).optional().openapi({ description: 'what to search (default reports)' }),
        k: z.number().int().min(1).max(100).optional().openapi({ description: 'number of hits (default 10)' }),
        filter: z.string().optional().openapi({ description: 'JSON: { must, mustNot, view, source }', example: '{"must":["Pneumonia"]}' }),
      }),
    },
  });
  app.post('/v1/search/image', async (c: Context<Env>) => {
    const input = await readImageInput(c);
    const timings: StageTimings = {};
    const result = await c.var.service.searchImage(input.bytes, imageFields(input.fields, SearchImageFields), timings);
    c.header('server-timing', serverTiming(timings));
    return c.json(result);
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
  app.post('/v1/classify', async (c: Context<Env>) => {
    const input = await readImageInput(c);
    const { mode, classes } = imageFields(input.fields, ClassifyFields);
    if (mode === 'findings') {
      if (classes && !(classes.length <= 14 && classes.every((x) => typeof x === 'string')))
        throw new HttpProblem(400, 'Invalid request', 'in findings mode, classes is a list of observation names (at most 14)');
      return c.json(await c.var.service.classify(input.bytes, { mode, classes: classes as string[] | undefined }));
    }
    const parsed = classes === undefined ? undefined : S.ClassList.safeParse(classes);
    if (parsed && !parsed.success)
      throw new HttpProblem(400, 'Invalid request', parsed.error.issues.map((i) => `classes.${i.path.join('.')}: ${i.message}`).join('; '));
    return c.json(await c.var.service.classify(input.bytes, { mode, classes: parsed?.data }));
  });

  app.openAPIRegistry.registerPath({
    method: 'post',
    path: '/v1/preview',
    operationId: 'previewImage',
    summary: 'An uploaded X-ray as a JPEG, decoded as the model reads it (DICOM included)',
    description: `Greyscale, at most ${QUERY_PREVIEW_SIZE} px on the long side; DICOM rescale, VOI window and MONOCHROME1 applied. Nothing is stored.`,
    request: { body: imageBody(S.PreviewJson) },
    responses: { 200: jpeg('JPEG'), ...problems },
  });
  app.post('/v1/preview', async (c: Context<Env>) => {
    const input = await readImageInput(c);
    imageFields(input.fields, PreviewFields);
    const bytes = await c.var.service.previewUpload(input.bytes);
    return c.body(new Uint8Array(bytes), 200, { 'content-type': 'image/jpeg', 'cache-control': 'no-store' });
  });

  return app;
}
