/**
 * Builds a second hnswlib-node addon with AVX2 + FMA (hnswlib's inner-product kernels then use 256-bit registers)
 * into node_modules/.medclip-native/hnswlib-avx2/addon.node, beside the portable SSE one npm builds. `core/bundle/hnswlib.ts`
 * loads it only where the CPU has AVX2 and FMA. Run by `npm ci` (prepare) with npm's own node-gyp; never fatal: without
 * a compiler or Node headers it says so in one line and the SSE addon is used.
 *
 *   node scripts/build-hnswlib-avx2.mjs
 */
import { execFileSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, renameSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';

const REPO = join(import.meta.dirname, '..');
const require = createRequire(join(REPO, 'package.json'));
const source = dirname(require.resolve('hnswlib-node/package.json'));
const outDir = join(REPO, 'node_modules/.medclip-native/hnswlib-avx2');
const work = join(REPO, 'node_modules/.medclip-native/.build-hnswlib-avx2');

function nodeGyp() {
  const candidates = [
    process.env.npm_execpath && join(dirname(dirname(process.env.npm_execpath)), 'node_modules/node-gyp/bin/node-gyp.js'),
    '/usr/lib/node_modules/npm/node_modules/node-gyp/bin/node-gyp.js',
    '/usr/local/lib/node_modules/npm/node_modules/node-gyp/bin/node-gyp.js',
  ].filter(Boolean);
  return candidates.find((p) => existsSync(p));
}

try {
  if (process.arch !== 'x64') throw new Error(`not an x86-64 machine (${process.arch})`);
  const gyp = nodeGyp();
  if (!gyp) throw new Error("npm's node-gyp was not found");
  const nodedir = process.env.npm_config_nodedir || (existsSync('/usr/include/node/node_api.h') ? '/usr' : undefined);
  rmSync(work, { recursive: true, force: true });
  mkdirSync(work, { recursive: true });
  for (const f of ['binding.gyp', 'src', 'package.json']) cpSync(join(source, f), join(work, f), { recursive: true });
  execFileSync(process.execPath, [gyp, 'rebuild', '--release', ...(nodedir ? [`--nodedir=${nodedir}`] : [])], {
    cwd: work,
    stdio: ['ignore', 'ignore', 'pipe'],
    // node-addon-api is resolved from the project's node_modules; -mavx2 -mfma turn on hnswlib's AVX kernels
    env: { ...process.env, NODE_PATH: join(REPO, 'node_modules'), CXXFLAGS: '-O3 -mavx2 -mfma' },
  });
  mkdirSync(outDir, { recursive: true });
  renameSync(join(work, 'build/Release/addon.node'), join(outDir, 'addon.node'));
  console.log('built hnswlib-node with AVX2 (node_modules/.medclip-native/hnswlib-avx2/addon.node)');
} catch (err) {
  const detail = (err.stderr?.toString() ?? '').split('\n').find((l) => /error/i.test(l)) ?? err.message;
  console.log(`hnswlib-node AVX2 build skipped (the portable SSE build is used): ${detail.trim().slice(0, 200)}`);
} finally {
  rmSync(work, { recursive: true, force: true });
}
