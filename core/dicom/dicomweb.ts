/**
 * A DICOMweb client (PS3.18): QIDO-RS searches (JSON, paged with limit/offset) and WADO-RS instance retrieval
 * (multipart/related, parsed by @remix-run/multipart-parser), with Basic Auth or a bearer token, a per-request
 * timeout and the project's retry policy for network failures, 429 and 5xx. Credentials never appear in messages.
 */
import { getMultipartBoundary, parseMultipartStream } from '@remix-run/multipart-parser';
import { MedclipError } from '../errors.ts';
import { DEFAULT_IMAGE_LIMITS, withRetry, type RetryPolicy } from '../util/index.ts';

export type DicomwebAuth = { user: string; password: string } | { token: string };

export interface DicomwebClientOptions {
  auth?: DicomwebAuth;
  retry?: Partial<RetryPolicy>;
  /** Per request (default 60 s). */
  timeoutMs?: number;
  /** Largest instance accepted (default: the decoder's input limit, 64 MB). */
  maxInstanceBytes?: number;
}

/** A DICOM JSON attribute (PS3.18 F.2). */
export interface DicomJsonAttribute {
  vr: string;
  Value?: unknown[];
}
export type DicomJson = Record<string, DicomJsonAttribute>;

export class DicomwebError extends MedclipError {
  constructor(
    message: string,
    readonly status?: number,
  ) {
    super(message, status === 401 || status === 403 || status === 404 || status === 400 ? 'input' : 'unavailable');
  }
}

/** The first value of a DICOM JSON attribute as a string (person names: their alphabetic form). */
export function jsonValue(item: DicomJson, tag: string): string | undefined {
  const v = item[tag.toUpperCase()]?.Value?.[0] ?? item[tag.toLowerCase()]?.Value?.[0];
  if (v === undefined || v === null) return undefined;
  if (typeof v === 'object') return (v as { Alphabetic?: string }).Alphabetic;
  const s = String(v).trim();
  return s || undefined;
}

/** The server's URL without credentials or query, as it may be recorded and shown. */
export function publicUrl(url: string): string {
  const u = new URL(url);
  u.username = '';
  u.password = '';
  u.search = '';
  u.hash = '';
  return u.toString().replace(/\/+$/, '');
}

const retryable = (status: number) => status === 429 || status >= 500;

export class DicomwebClient {
  readonly base: string;
  private readonly headers: Record<string, string> = {};

  constructor(
    url: string,
    private readonly options: DicomwebClientOptions = {},
  ) {
    let parsed: URL;
    try {
      parsed = new URL(url);
    } catch {
      throw new DicomwebError('--dicomweb must be an http(s) URL');
    }
    if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') throw new DicomwebError('--dicomweb must be an http(s) URL');
    const auth =
      options.auth ??
      (parsed.username ? { user: decodeURIComponent(parsed.username), password: decodeURIComponent(parsed.password) } : undefined);
    this.base = publicUrl(url);
    if (auth && 'token' in auth) this.headers.authorization = `Bearer ${auth.token}`;
    else if (auth) this.headers.authorization = `Basic ${Buffer.from(`${auth.user}:${auth.password}`).toString('base64')}`;
  }

  /** One GET with the retry policy; `what` names the request in errors (UIDs only). */
  private async get(path: string, accept: string, what: string): Promise<Response> {
    return withRetry(
      async () => {
        let res: Response;
        try {
          res = await fetch(`${this.base}${path}`, {
            headers: { ...this.headers, accept },
            signal: AbortSignal.timeout(this.options.timeoutMs ?? 60_000),
          });
        } catch (err) {
          const reason =
            (err as Error).name === 'TimeoutError' ? 'timed out' : ((err as { cause?: Error }).cause?.message ?? (err as Error).message);
          throw new DicomwebError(`DICOMweb ${what}: ${this.base} unreachable (${reason})`);
        }
        if (res.ok) return res;
        await res.body?.cancel();
        const error = new DicomwebError(
          res.status === 401 || res.status === 403
            ? `DICOMweb server ${this.base} refused the credentials (HTTP ${res.status}); set --dicomweb-user with MEDCLIP_DICOMWEB_PASSWORD, or MEDCLIP_DICOMWEB_TOKEN`
            : `DICOMweb ${what}: HTTP ${res.status}`,
          res.status,
        );
        throw error;
        // 4xx other than 429 will not change on a retry
      },
      {
        ...this.options.retry,
        shouldRetry: (err) => !(err instanceof DicomwebError && err.status !== undefined && !retryable(err.status)),
      },
    );
  }

  /** A QIDO-RS search, all pages (limit/offset); `params` values are matched as given. */
  async *search(path: string, params: Record<string, string | string[] | undefined>, pageSize = 500): AsyncGenerator<DicomJson> {
    let previousFirst: string | undefined;
    for (let offset = 0; ; offset += pageSize) {
      const q = new URLSearchParams();
      for (const [k, v] of Object.entries(params)) if (v !== undefined) for (const one of Array.isArray(v) ? v : [v]) q.append(k, one);
      q.set('limit', String(pageSize));
      q.set('offset', String(offset));
      const res = await this.get(`${path}?${q}`, 'application/dicom+json', `search ${path.replace(/\/[0-9.]+/g, '/{uid}')}`);
      const text = await res.text();
      let page: DicomJson[];
      try {
        page = text.trim() ? (JSON.parse(text) as DicomJson[]) : [];
      } catch {
        throw new DicomwebError(`DICOMweb search ${path}: the server's answer is not DICOM JSON`);
      }
      if (!Array.isArray(page)) throw new DicomwebError(`DICOMweb search ${path}: the server's answer is not a list`);
      // A server that ignores offset would answer the same page forever: a page that starts like the previous one,
      // or one longer than asked for (limit ignored: everything at once), ends the search.
      const first = JSON.stringify(page[0] ?? null);
      if (offset > 0 && first === previousFirst) return;
      previousFirst = first;
      yield* page;
      if (page.length !== pageSize) return;
    }
  }

  /** WADO-RS: one instance as stored (any transfer syntax; the decoder reads them all), as Part 10 bytes. */
  async retrieveInstance(study: string, series: string, instance: string): Promise<Uint8Array> {
    const max = this.options.maxInstanceBytes ?? DEFAULT_IMAGE_LIMITS.maxBytes;
    const res = await this.get(
      `/studies/${study}/series/${series}/instances/${instance}`,
      'multipart/related; type="application/dicom"; transfer-syntax=*',
      `retrieve instance ${instance}`,
    );
    const type = res.headers.get('content-type') ?? '';
    if (/^application\/dicom/i.test(type)) {
      const bytes = new Uint8Array(await res.arrayBuffer());
      if (bytes.length > max) throw new DicomwebError(`instance ${instance} is larger than ${max} bytes`, 413);
      return bytes;
    }
    const boundary = getMultipartBoundary(type);
    if (!boundary || !res.body) throw new DicomwebError(`instance ${instance}: the server's answer is not multipart/related`);
    try {
      for await (const part of parseMultipartStream(res.body, { boundary, maxFileSize: max, maxParts: 16, maxTotalSize: max })) {
        return part.bytes;
      }
    } catch (err) {
      throw new DicomwebError(`instance ${instance}: malformed multipart answer (${(err as Error).message.slice(0, 100)})`);
    }
    throw new DicomwebError(`instance ${instance}: the server's answer holds no part`);
  }
}
