/**
 * Compiles the CLI to JavaScript (`dist/`), so `medclip` and `npm start` run without a TypeScript loader:
 * `dist/cli.mjs` (cli/main.ts) and the worker-thread entries it starts (`dist/embed-worker.mjs`,
 * `dist/train-worker.mjs`), bundled by esbuild with every package left external (they load from node_modules as
 * usual), plus the search page's files (`dist/page/`). Runs on `npm ci` (prepare) and before `npm start`/`npm test`.
 *
 *   node scripts/build.mjs
 */
import { build } from 'esbuild';
import { cpSync, mkdirSync, renameSync, rmSync } from 'node:fs';
import { join } from 'node:path';

const REPO = join(import.meta.dirname, '..');
const out = join(REPO, 'dist');
const staging = join(REPO, 'dist.tmp');
rmSync(staging, { recursive: true, force: true });
mkdirSync(staging);
await build({
  entryPoints: {
    cli: join(REPO, 'cli/main.ts'),
    'embed-worker': join(REPO, 'index-builder/embed-worker.ts'),
    'hnsw-worker': join(REPO, 'index-builder/hnsw-worker.ts'),
    'train-worker': join(REPO, 'train/worker.ts'),
  },
  outdir: staging,
  outExtension: { '.js': '.mjs' },
  bundle: true,
  packages: 'external',
  platform: 'node',
  format: 'esm',
  target: 'node20',
  sourcemap: 'linked',
  logLevel: 'warning',
});
cpSync(join(REPO, 'api/page'), join(staging, 'page'), { recursive: true });
// swap in whole: a reader never sees half a build
rmSync(out, { recursive: true, force: true });
renameSync(staging, out);
