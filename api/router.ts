/** The Hono app type of every route module, and a factory that gives each the same validation hook (400 problem+json). */
import { OpenAPIHono } from '@hono/zod-openapi';
import type { SearchService } from '../core/search/index.ts';
import { HttpProblem, problemResponse } from './problem.ts';

/** Per request: its id, and the search service (one index version) it is answered from from start to end. */
export type Env = { Variables: { requestId: string; service: SearchService } };

export function router(): OpenAPIHono<Env> {
  return new OpenAPIHono<Env>({
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
}
