/** Pieces of the OpenAPI route declarations shared by the route modules: JSON and problem+json responses, image bodies. */
import { z } from '@hono/zod-openapi';
import { EXAMPLES } from './examples.ts';
import * as S from './schemas.ts';

export const json = (schema: z.ZodType, description: string, example?: unknown) => ({
  content: { 'application/json': { schema, ...(example ? { example } : {}) } },
  description,
});

/** A search's 200: its hits, and where its time went (Server-Timing: `embed` and `search`, in ms). */
export const searchJson = (schema: z.ZodType, description: string, example?: unknown) => ({
  ...json(schema, description, example),
  headers: {
    'Server-Timing': {
      description: 'milliseconds spent on the encoder (an image decode included) and on the search: embed;dur=0.253, search;dur=0.301',
      schema: { type: 'string' as const },
    },
  },
});

/** Errors are served as RFC 9457 problem details, and declared so. */
export const problem = (description: string) => ({
  content: { 'application/problem+json': { schema: S.Problem, example: EXAMPLES.problem } },
  description,
});

export const unauthorized = { 401: problem('Missing or wrong API key (when the deployment uses keys); see WWW-Authenticate') };

export const problems = {
  400: problem('Invalid request'),
  ...unauthorized,
  413: problem('Body or image too large'),
  415: problem('Unsupported media type'),
};

/** Fields that go in the query string when the image is the raw body. */
export const imageQuery = (fields: Record<string, z.ZodType>) => z.object(fields);

/** An X-ray in any of three forms: raw bytes, multipart (`image` field), or JSON with the image base64-encoded. */
export const imageBody = (jsonSchema: z.ZodType) => ({
  content: {
    'image/png': { schema: z.string().openapi({ format: 'binary' }) },
    'image/jpeg': { schema: z.string().openapi({ format: 'binary' }) },
    'application/dicom': { schema: z.string().openapi({ format: 'binary' }) },
    'multipart/form-data': { schema: z.object({ image: z.string().openapi({ format: 'binary' }) }).passthrough() },
    'application/json': { schema: jsonSchema },
  },
  required: true,
});

export const jpeg = (description: string) => ({
  content: { 'image/jpeg': { schema: z.string().openapi({ format: 'binary' }) } },
  description,
});
