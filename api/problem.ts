/** RFC 9457 problem details: every error the API returns is `application/problem+json` with a useful detail. */
import type { Context } from 'hono';
import type { ContentfulStatusCode } from 'hono/utils/http-status';
import { MedclipError } from '../core/errors.ts';

export class HttpProblem extends MedclipError {
  constructor(
    readonly status: ContentfulStatusCode,
    readonly title: string,
    readonly detail: string,
    readonly extra: Record<string, unknown> = {},
    /** Response headers that belong to the problem (WWW-Authenticate on 401, Allow on 405). */
    readonly headers: Record<string, string> = {},
  ) {
    super(detail, status < 500 ? 'input' : status === 503 ? 'unavailable' : 'internal');
  }
}

const TYPES: Record<number, string> = {
  400: 'bad-request',
  401: 'unauthorized',
  404: 'not-found',
  405: 'method-not-allowed',
  413: 'payload-too-large',
  415: 'unsupported-media-type',
  422: 'unprocessable-content',
  431: 'request-header-fields-too-large',
  499: 'client-closed-request',
  500: 'internal-error',
  503: 'unavailable',
};

export function problemResponse(c: Context, p: HttpProblem): Response {
  const body = {
    type: `https://medclip-search.dev/problems/${TYPES[p.status] ?? 'error'}`,
    title: p.title,
    status: p.status,
    detail: p.detail,
    instance: c.req.path,
    requestId: c.get('requestId' as never) as string | undefined,
    ...p.extra,
  };
  return c.body(JSON.stringify(body), p.status, { ...p.headers, 'content-type': 'application/problem+json' });
}
