/**
 * The API reference viewer's files, served from the `swagger-ui-dist` package on disk (no CDN: the docs work on an
 * offline hospital network). Read on first request and kept: three files, about 1.6 MB.
 */
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { staticFiles } from './static-files.ts';

export const DOCS_ASSETS: Record<string, string> = {
  'swagger-ui-bundle.js': 'text/javascript; charset=utf-8',
  'swagger-ui.css': 'text/css; charset=utf-8',
  'favicon-32x32.png': 'image/png',
};

/** An asset's bytes and content type, or undefined for a name that is not one of the viewer's files. */
export const docsAsset = staticFiles(DOCS_ASSETS, (name) =>
  join(dirname(createRequire(import.meta.url).resolve('swagger-ui-dist/package.json')), name),
);
