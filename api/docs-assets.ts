/**
 * The API reference viewer's files, served from the `swagger-ui-dist` package on disk (no CDN: the docs work on an
 * offline hospital network). Read on first request and kept: three files, about 1.6 MB.
 */
import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';

export const DOCS_ASSETS: Record<string, string> = {
  'swagger-ui-bundle.js': 'text/javascript; charset=utf-8',
  'swagger-ui.css': 'text/css; charset=utf-8',
  'favicon-32x32.png': 'image/png',
};

const loaded = new Map<string, Promise<Uint8Array<ArrayBuffer>>>();

/** An asset's bytes and content type, or undefined for a name that is not one of the viewer's files. */
export async function docsAsset(name: string): Promise<{ body: Uint8Array<ArrayBuffer>; type: string } | undefined> {
  const type = DOCS_ASSETS[name];
  if (!type) return undefined;
  let p = loaded.get(name);
  if (!p) {
    const dir = dirname(createRequire(import.meta.url).resolve('swagger-ui-dist/package.json'));
    p = readFile(join(dir, name)).then((b) => new Uint8Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength)));
    p.catch(() => loaded.delete(name)); // a failed read is retried on the next request
    loaded.set(name, p);
  }
  return { body: await p, type };
}
