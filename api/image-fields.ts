/**
 * The non-image fields of the image routes, however they arrive (query string and form fields are strings, JSON
 * fields are values), validated by one zod schema per route: the same checks and messages for all three forms.
 */
import { z } from '@hono/zod-openapi';
import { HttpProblem } from './problem.ts';
import * as S from './schemas.ts';

/** A string that holds JSON is parsed (a form or query string carries `filter` and `classes` as JSON text). */
const jsonText = (field: string, what: string) => (v: unknown) => {
  if (typeof v !== 'string') return v;
  try {
    return JSON.parse(v);
  } catch {
    throw new HttpProblem(400, 'Invalid request', `${field} must be ${what} (JSON)`);
  }
};
const integerText = (v: unknown) => (typeof v === 'string' && /^-?\d+$/.test(v) ? Number(v) : v);

export const SearchImageFields = z.object({
  target: S.Target.default('reports'),
  k: z.preprocess(integerText, S.K),
  filter: z.preprocess(jsonText('filter', 'an object'), S.Filter.optional()),
});

export const ClassifyFields = z.object({
  mode: S.ClassifyMode.default('exclusive'),
  // checked per mode by the route: exclusive needs 2-20 classes, findings takes 1-14 observation names
  classes: z.preprocess(jsonText('classes', 'an array'), z.array(z.unknown()).min(1).max(20).optional()),
});

export const PreviewFields = z.object({});

/** Validate `fields` (the image itself excluded) with `schema`; unknown fields are refused by name. */
export function imageFields<T extends z.ZodObject>(fields: Record<string, unknown>, schema: T): z.output<T> {
  const { image: _image, ...rest } = fields;
  const unknown = Object.keys(rest).filter((f) => !(f in schema.shape));
  if (unknown.length) throw new HttpProblem(400, 'Invalid request', `unknown field(s): ${unknown.join(', ')}`);
  const parsed = schema.safeParse(rest);
  if (!parsed.success)
    throw new HttpProblem(
      400,
      'Invalid request',
      parsed.error.issues.map((i) => `${i.path.join('.') || '(body)'}: ${i.message}`).join('; '),
    );
  return parsed.data;
}
