/**
 * Packages the Lambda code: `api.mjs` (the HTTP API) and `worker.mjs` (the embedding worker) bundled by esbuild,
 * the native modules they load (onnxruntime-node CPU for linux-x64 only, sharp, hnswlib-node) with their runtime
 * dependencies copied from node_modules and pruned, and the shipped model + sample index as a fallback when no
 * S3 bundle is configured. `npm run package:lambda` writes `.build/lambda` (the CDK asset).
 *
 *   node --import tsx infra/package-lambda.ts [--out .build/lambda]
 */
import { build } from 'esbuild';
import { cpSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { parseArgs } from 'node:util';

const REPO = join(import.meta.dirname, '..');
/** Modules loaded at run time rather than bundled: native addons and packages that locate .wasm files on disk. */
export const RUNTIME_MODULES = [
  'onnxruntime-node',
  'sharp',
  'hnswlib-node',
  '@cornerstonejs/codec-charls',
  '@cornerstonejs/codec-libjpeg-turbo-8bit',
  '@cornerstonejs/codec-openjpeg',
  'swagger-ui-dist',
];

function packageDir(name: string, from = REPO): string | undefined {
  for (let d = from; ; d = dirname(d)) {
    const p = join(d, 'node_modules', name);
    if (existsSync(join(p, 'package.json'))) return p;
    if (dirname(d) === d) return undefined;
  }
}

/** The runtime dependency closure of the given packages (dependencies + installed optional dependencies). */
function closure(names: string[]): Map<string, string> {
  const out = new Map<string, string>();
  const visit = (name: string, from: string) => {
    if (out.has(name)) return;
    const dir = packageDir(name, from);
    if (!dir) return; // an optional dependency for another platform
    out.set(name, dir);
    const pkg = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as {
      dependencies?: Record<string, string>;
      optionalDependencies?: Record<string, string>;
    };
    for (const dep of [...Object.keys(pkg.dependencies ?? {}), ...Object.keys(pkg.optionalDependencies ?? {})]) visit(dep, dir);
  };
  for (const n of names) visit(n, REPO);
  return out;
}

/** Files a Lambda never needs: other platforms' binaries, GPU providers, sources, build intermediates, docs. */
function prune(root: string): void {
  const ort = join(root, 'node_modules/onnxruntime-node');
  for (const d of readdirSync(join(ort, 'bin'))) {
    for (const platform of readdirSync(join(ort, 'bin', d))) {
      if (platform !== 'linux') rmSync(join(ort, 'bin', d, platform), { recursive: true, force: true });
      else
        for (const arch of readdirSync(join(ort, 'bin', d, platform)))
          if (arch !== 'x64') rmSync(join(ort, 'bin', d, platform, arch), { recursive: true, force: true });
    }
  }
  const walk = (d: string) => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      const p = join(d, e.name);
      if (e.isDirectory()) {
        if (
          ['obj.target', '.deps', 'src', 'test', 'tests', 'docs', 'example', 'examples', '.github'].includes(e.name) &&
          !p.includes('/lib/')
        )
          rmSync(p, { recursive: true, force: true });
        else walk(p);
      } else if (/(_providers_(cuda|tensorrt)|\.(md|map|ts|cc|h|cpp|gyp|mk|o)$)/i.test(e.name) && !e.name.endsWith('.d.ts'))
        rmSync(p, { force: true });
    }
  };
  walk(join(root, 'node_modules'));
}

export function dirSize(dir: string): number {
  let n = 0;
  for (const e of readdirSync(dir, { withFileTypes: true }))
    n += e.isDirectory() ? dirSize(join(dir, e.name)) : statSync(join(dir, e.name)).size;
  return n;
}

export async function packageLambda(out: string): Promise<{ bytes: number }> {
  rmSync(out, { recursive: true, force: true });
  mkdirSync(out, { recursive: true });
  await build({
    entryPoints: { api: join(REPO, 'api/lambda.ts'), worker: join(REPO, 'index-builder/lambda-worker.ts') },
    bundle: true,
    platform: 'node',
    target: 'node22',
    format: 'esm',
    outdir: out,
    outExtension: { '.js': '.mjs' },
    // Code splitting: what is imported dynamically (the AWS SDK clients, used only with S3 bundles or shards) lands
    // in its own chunk, loaded when first needed rather than on every cold start.
    splitting: true,
    chunkNames: 'chunks/[name]-[hash]',
    external: [...RUNTIME_MODULES, 'tsx', 'tsx/*'],
    // some bundled CommonJS code calls require(): give the ES module one
    banner: { js: "import { createRequire as __createRequire } from 'node:module'; const require = __createRequire(import.meta.url);" },
    sourcemap: true,
    logLevel: 'warning',
  });
  for (const [name, dir] of closure(RUNTIME_MODULES)) cpSync(dir, join(out, 'node_modules', name), { recursive: true, dereference: true });
  // hnswlib-node's AVX2 build (core/bundle/hnswlib.ts loads it only on a CPU with AVX2 and FMA; the portable one otherwise)
  const avx2 = join(REPO, 'node_modules/.medclip-native/hnswlib-avx2');
  if (existsSync(avx2)) cpSync(avx2, join(out, 'node_modules/.medclip-native/hnswlib-avx2'), { recursive: true });
  prune(out);
  // the search page's files, read next to api.mjs (api/search-page.ts resolves ./page/ from its own module)
  cpSync(join(REPO, 'api/page'), join(out, 'page'), { recursive: true });
  cpSync(join(REPO, 'models/medclip-tiny'), join(out, 'models/medclip-tiny'), { recursive: true });
  cpSync(join(REPO, 'indexes/sample'), join(out, 'indexes/sample'), { recursive: true });
  writeFileSync(join(out, 'package.json'), JSON.stringify({ type: 'module', private: true }) + '\n');
  return { bytes: dirSize(out) };
}

if (process.argv[1] && relative(process.argv[1], import.meta.filename) === '') {
  const { values } = parseArgs({ options: { out: { type: 'string', default: join(REPO, '.build/lambda') } } });
  const { bytes } = await packageLambda(values.out!);
  console.log(`wrote ${values.out}: ${(bytes / 1048576).toFixed(1)} MB unzipped`);
}
