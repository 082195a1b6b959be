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

export function apiKeyAuth(hashes: Buffer[]): MiddlewareHandler {
  return async (c, next) => {
    const bearer = /^Bearer\s+(.+)$/i.exec(c.req.header('authorization') ?? '')?.[1];
    const key = c.req.header('x-api-key') ?? bearer;
    if (!key) throw new HttpProblem(401, 'Unauthorized', 'this API needs a key: send it in the x-api-key header or as Authorization: Bearer KEY');
    const digest = hashApiKey(key);
    let ok = false;
    for (const h of hashes) ok = timingSafeEqual(digest, h) || ok; // no early exit
    if (!ok) throw new HttpProblem(401, 'Unauthorized', 'the API key is not valid');
    await next();
  };
}
