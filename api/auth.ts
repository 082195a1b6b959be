/**
 * API keys. Configured as sha256 hex digests (never the keys themselves); a request presents its key in
 * `x-api-key` or `Authorization: Bearer KEY`; digests are compared in constant time.
 *
 *   const keys = parseApiKeyHashes(process.env.MEDCLIP_API_KEY_SHA256);   // "hash1,hash2"
 *   app.use('/v1/*', apiKeyAuth(keys));
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import type { MiddlewareHandler } from 'hono';
import { HttpProblem } from './problem.ts';
import { MedclipError } from '../core/errors.ts';

export function hashApiKey(key: string): Buffer {
  return createHash('sha256').update(key, 'utf8').digest();
}

export function parseApiKeyHashes(list: string | undefined): Buffer[] {
  return (list ?? '')
    .split(',')
    .map((s) => s.trim().toLowerCase())
    .filter(Boolean)
    .map((hex) => {
      if (!/^[0-9a-f]{64}$/.test(hex)) throw new Error('API key hashes must be 64 hex characters (sha256 of the key)');
      return Buffer.from(hex, 'hex');
    });
}

/** RFC 9110 §11.6.1: a 401 names how to authenticate (a bearer token; the x-api-key header works too). */
export const WWW_AUTHENTICATE = 'Bearer realm="medclip-search"';

export function apiKeyAuth(hashes: Buffer[]): MiddlewareHandler {
  if (hashes.length === 0) throw new Error('API-key auth needs at least one key hash'); // fail closed, never open
  const challenge = { 'www-authenticate': WWW_AUTHENTICATE };
  return async (c, next) => {
    const bearer = /^Bearer\s+(.+)$/i.exec(c.req.header('authorization') ?? '')?.[1];
    const key = c.req.header('x-api-key') ?? bearer;
    if (!key)
      throw new HttpProblem(
        401,
        'Unauthorized',
        'this API needs a key: send it in the x-api-key header or as Authorization: Bearer KEY',
        {},
        challenge,
      );
    const digest = hashApiKey(key);
    let ok = false;
    for (const h of hashes) ok = timingSafeEqual(digest, h) || ok; // no early exit
    if (!ok)
      throw new HttpProblem(
        401,
        'Unauthorized',
        'the API key is not valid',
        {},
        { ...challenge, 'www-authenticate': `${WWW_AUTHENTICATE}, error="invalid_token"` },
      );
    await next();
  };
}

export type AuthMode = 'api-key' | 'iam' | 'off';

export class AuthConfigError extends MedclipError {
  constructor(message: string) {
    super(message, 'input');
  }
}

/**
 * The auth a deployment asked for, failing closed: `MEDCLIP_AUTH=api-key` (or hashes alone) needs at least one key
 * hash; `iam` means the Function URL authenticates callers (AWS_IAM) and the app checks nothing; `off` is explicit.
 * Nothing configured at all is refused rather than served open.
 */
export function resolveAuth(
  mode: string | undefined,
  hashList: string | undefined,
): { mode: 'api-key'; hashes: Buffer[] } | { mode: 'off' } {
  const hashes = parseApiKeyHashes(hashList);
  const m = (mode ?? '').trim().toLowerCase();
  if (m && m !== 'api-key' && m !== 'iam' && m !== 'off')
    throw new AuthConfigError(`MEDCLIP_AUTH must be api-key, iam or off, not "${mode}"`);
  if (m === 'api-key' || (!m && hashes.length)) {
    if (!hashes.length)
      throw new AuthConfigError('MEDCLIP_AUTH is api-key but MEDCLIP_API_KEY_SHA256 holds no key hash: refusing to serve an open API');
    return { mode: 'api-key', hashes };
  }
  if (!m)
    throw new AuthConfigError(
      'no auth configured: set MEDCLIP_API_KEY_SHA256 (API keys), or MEDCLIP_AUTH=iam when the Function URL authenticates callers',
    );
  return { mode: 'off' };
}
