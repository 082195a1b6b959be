/** Calling the API app in process, as tests do most often. */
import type { OpenAPIHono } from '@hono/zod-openapi';

/** POST /v1/search/text for reports; the parsed answer typed as the caller reads it. */
export async function textToReports<T>(app: Pick<OpenAPIHono, 'request'>, query: string, k = 5): Promise<T> {
  const r = await app.request('/v1/search/text', {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ query, target: 'reports', k }),
  });
  return (await r.json()) as T;
}
