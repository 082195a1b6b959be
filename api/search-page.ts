/**
 * The search page at `/` (api/page/: index.html, search.css, search.js and its modules): text or X-ray queries, filters, an
 * image viewer with window/level, a report view, findings with polarity. Plain files, no framework and no outside
 * assets, served under a strict Content-Security-Policy (no inline script or style). Read once and kept (~30 kB).
 */
import { staticFiles } from './static-files.ts';

const TYPES: Record<string, string> = {
  'index.html': 'text/html; charset=utf-8',
  'search.css': 'text/css; charset=utf-8',
  'search.js': 'text/javascript; charset=utf-8',
  // the script's modules (search.js imports them)
  ...Object.fromEntries(
    ['api.js', 'cards.js', 'dialogs.js', 'dom.js', 'filters.js', 'labels.js', 'results.js', 'state.js'].map((f) => [
      f,
      'text/javascript; charset=utf-8',
    ]),
  ),
};

/** The page's policy: everything from this origin; previews are blob: URLs made by the script. */
export const PAGE_CSP =
  "default-src 'self'; img-src 'self' blob:; script-src 'self'; style-src 'self'; connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'";

/** One of the page's files, or undefined for any other name. The folder sits next to this module (and next to
 * api.mjs in the Lambda package, dist/cli.mjs in the compiled CLI). */
export const pageAsset = staticFiles(TYPES, (name) => new URL(`./page/${name}`, import.meta.url));
