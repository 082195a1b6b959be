/**
 * What the Lambda entry accepts, checked before Hono's adapter sees it: a Function URL / API Gateway v2 HTTP event
 * with string headers and (when flagged) a real base64 body, or an internal shard request. Anything else gets a
 * 400 problem+json response, never a throw, a 500 or text/plain.
 */
import { z } from 'zod';
import type { ShardRequest } from '../core/search/index.ts';

export interface LambdaHttpResult {
  statusCode: number;
  headers: Record<string, string>;
  body: string;
  isBase64Encoded: boolean;
}

export function problemResult(status: number, title: string, detail: string): LambdaHttpResult {
  const type = status === 503 ? 'unavailable' : status === 400 ? 'bad-request' : 'error';
  return {
    statusCode: status,
    headers: { 'content-type': 'application/problem+json' },
    body: JSON.stringify({ type: `https://medclip-search.dev/problems/${type}`, title, status, detail }),
    isBase64Encoded: false,
  };
}

const TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/; // RFC 9110 field name
const FIELD_VALUE = /^[^\0\r\n]*$/;
const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

const HttpEvent = z
  .object({
    version: z.string().optional(),
    rawPath: z.string().startsWith('/').max(8192),
    rawQueryString: z.string().max(16384).optional(),
    headers: z
      .record(z.string().regex(TOKEN, 'not a valid header name'), z.string().regex(FIELD_VALUE, 'holds a control character'))
      .optional(),
    cookies: z.array(z.string()).optional(),
    requestContext: z.object({ http: z.object({ method: z.string().regex(TOKEN), path: z.string().optional() }).loose() }).loose(),
    body: z.string().optional().nullable(),
    isBase64Encoded: z.boolean().optional(),
  })
  .loose();

const Filter = z
  .object({
    must: z.array(z.string()).optional(),
    mustNot: z.array(z.string()).optional(),
    view: z.array(z.string()).optional(),
    source: z.array(z.string()).optional(),
  })
  .strict();
const ShardEvent = z.discriminatedUnion('op', [
  z.object({ kind: z.literal('medclip-shard'), op: z.literal('count') }).strict(),
  z.object({ kind: z.literal('medclip-shard'), op: z.literal('facets') }).strict(),
  z
    .object({
      kind: z.literal('medclip-shard'),
      op: z.literal('search'),
      vector: z.string().regex(BASE64).min(4).max(65536),
      k: z.number().int().min(1).max(1000),
      filter: Filter.optional(),
      crossModal: z.boolean().optional(),
    })
    .strict(),
  z.object({ kind: z.literal('medclip-shard'), op: z.literal('thumbnail'), id: z.string().min(1).max(1000) }).strict(),
]);

export type CheckedEvent =
  | { kind: 'http'; event: unknown }
  | { kind: 'shard'; request: ShardRequest }
  | { kind: 'invalid'; detail: string };

const describe = (issues: z.core.$ZodIssue[]) =>
  issues
    .slice(0, 3)
    .map((i) => `${i.path.join('.') || '(event)'}: ${i.message}`)
    .join('; ');

export function checkEvent(event: unknown): CheckedEvent {
  if (event === null || typeof event !== 'object' || Array.isArray(event))
    return {
      kind: 'invalid',
      detail: `the event must be an object, not ${event === null ? 'null' : Array.isArray(event) ? 'an array' : typeof event}`,
    };
  if ((event as { kind?: unknown }).kind === 'medclip-shard') {
    const r = ShardEvent.safeParse(event);
    return r.success
      ? { kind: 'shard', request: r.data as ShardRequest }
      : { kind: 'invalid', detail: `malformed shard request: ${describe(r.error.issues)}` };
  }
  const r = HttpEvent.safeParse(event);
  if (!r.success) return { kind: 'invalid', detail: `not a Function URL or API Gateway v2 event: ${describe(r.error.issues)}` };
  if (r.data.isBase64Encoded && r.data.body && !BASE64.test(r.data.body.replace(/\s+/g, '')))
    return { kind: 'invalid', detail: 'isBase64Encoded is set but the body is not valid base64' };
  return { kind: 'http', event };
}
