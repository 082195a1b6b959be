/**
 * The search page at `/` (api/page/: index.html, search.css, search.js): text or X-ray queries, filters, an
 * image viewer with window/level, a report view, findings with polarity. Plain files, no framework and no outside
 * assets, served under a strict Content-Security-Policy (no inline script or style). Read once and kept (~30 kB).
 */
import { readFile } from 'node:fs/promises';

const TYPES: Record<string, string> = {
  'index.html': 'text/html; charset=utf-8',
  'search.css': 'text/css; charset=utf-8',
  'search.js': 'text/javascript; charset=utf-8',
};

/** The page's policy: everything from this origin; previews are blob: URLs made by the script. */
export const PAGE_CSP =
  "default-src 'self'; img-src 'self' blob:; script-src 'self'; style-src 'self'; connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'";

const loaded = new Map<string, Promise<Uint8Array<ArrayBuffer>>>();

/** One of the page's files, or undefined for any other name. The folder sits next to this module (and next to
 * api.mjs in the Lambda package). */
export async function pageAsset(name: string): Promise<{ body: Uint8Array<ArrayBuffer>; type: string } | undefined> {
  const type = TYPES[name];
  if (!type) return undefined;
  let p = loaded.get(name);
  if (!p) {
    p = readFile(new URL(`./page/${name}`, import.meta.url)).then(
      (b) => new Uint8Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength)),
    );
    p.catch(() => loaded.delete(name));
    loaded.set(name, p);
  }
  return { body: await p, type };
}
