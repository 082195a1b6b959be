/**
 * An X-ray from a request, in any of three forms: a raw body (`image/png`, `image/jpeg`, `application/dicom`,
 * `application/octet-stream`), multipart form data (field `image`, other fields as form values), or JSON with
 * the image base64-encoded. Anything else is a 415 problem.
 */
import type { Context } from 'hono';
import { HttpProblem } from './problem.ts';

export const RAW_IMAGE_TYPES = ['image/png', 'image/jpeg', 'application/dicom', 'application/octet-stream'];

export interface ImageInput {
  bytes: Uint8Array;
  /** Non-image fields: JSON body fields, form fields, or query parameters for raw bodies. */
  fields: Record<string, unknown>;
}

const BASE64 = /^[A-Za-z0-9+/\s]*={0,2}\s*$/;

export function decodeBase64Image(value: unknown): Uint8Array {
  if (typeof value !== 'string' || value.length === 0)
    throw new HttpProblem(400, 'Missing image', 'the "image" field must be a base64-encoded PNG, JPEG or DICOM');
  const data = value.replace(/^data:[\w/+.-]+;base64,/, '');
  if (!BASE64.test(data)) throw new HttpProblem(400, 'Invalid base64', 'the "image" field is not valid base64');
  const bytes = Buffer.from(data, 'base64');
  if (bytes.length === 0) throw new HttpProblem(400, 'Empty image', 'the "image" field decodes to no bytes');
  return new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.length);
}

export async function readImageInput(c: Context): Promise<ImageInput> {
  const type = (c.req.header('content-type') ?? '').split(';')[0]!.trim().toLowerCase();
  if (RAW_IMAGE_TYPES.includes(type)) {
    const bytes = new Uint8Array(await c.req.arrayBuffer());
    if (bytes.length === 0) throw new HttpProblem(400, 'Empty image', 'the request body is empty');
    return { bytes, fields: c.req.query() };
  }
  if (type === 'multipart/form-data') {
    let form: Record<string, string | File | (string | File)[]>;
    try {
      form = await c.req.parseBody({ all: true });
    } catch {
      throw new HttpProblem(400, 'Invalid form data', 'the multipart body could not be parsed');
    }
    const file = form.image;
    if (!(file instanceof File)) throw new HttpProblem(400, 'Missing image', 'the form needs a file field named "image"');
    const fields: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(form)) if (k !== 'image' && typeof v === 'string') fields[k] = v;
    const bytes = new Uint8Array(await file.arrayBuffer());
    if (bytes.length === 0) throw new HttpProblem(400, 'Empty image', 'the "image" file is empty');
    return { bytes, fields };
  }
  if (type === 'application/json') {
    let body: unknown;
    try {
      body = await c.req.json();
    } catch {
      throw new HttpProblem(400, 'Invalid JSON', 'the request body is not valid JSON');
    }
    if (!body || typeof body !== 'object' || Array.isArray(body))
      throw new HttpProblem(400, 'Invalid body', 'the JSON body must be an object');
    const { image, ...fields } = body as Record<string, unknown>;
    return { bytes: decodeBase64Image(image), fields: { ...fields, image: '(base64)' } };
  }
  throw new HttpProblem(
    415,
    'Unsupported media type',
    `send the image as ${RAW_IMAGE_TYPES.slice(0, 3).join(', ')}, multipart/form-data (field "image") or application/json (base64 "image")${type ? `, not ${type}` : ''}`,
  );
}
