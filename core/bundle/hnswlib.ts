/**
 * hnswlib-node, the build this CPU runs fastest: the AVX2 + FMA addon (`scripts/build-hnswlib-avx2.mjs`, built by
 * `npm ci` next to npm's portable SSE one) where /proc/cpuinfo lists avx2 and fma, else the portable one. Both read
 * and write the same index files and return the same neighbours. `MEDCLIP_HNSW_SIMD=sse` forces the portable one.
 */
import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';

type Hnswlib = typeof import('hnswlib-node');
const require = createRequire(import.meta.url);

/** Where the AVX2 addon is built: beside hnswlib-node, in node_modules/.medclip-native. */
export function avx2AddonPath(): string {
  return join(dirname(require.resolve('hnswlib-node/package.json')), '..', '.medclip-native', 'hnswlib-avx2', 'addon.node');
}

/** Whether this CPU has AVX2 and FMA (Linux: /proc/cpuinfo; elsewhere the portable build is used). */
export function cpuHasAvx2(cpuinfo?: string): boolean {
  let info = cpuinfo;
  if (info === undefined) {
    try {
      info = readFileSync('/proc/cpuinfo', 'utf8');
    } catch {
      return false;
    }
  }
  const flags = new Set((/^flags\s*:(.*)$/m.exec(info)?.[1] ?? '').trim().split(/\s+/));
  return flags.has('avx2') && flags.has('fma');
}

export type HnswlibVariant = 'avx2' | 'sse';

/**
 * The build to load: AVX2 only when the CPU has it, the addon was built, and MEDCLIP_HNSW_SIMD is unset or `auto`.
 * Any other value loads the portable build (this runs at import, where nothing can report an error cleanly; the
 * server's environment check, core/util/env.ts, names a wrong value).
 */
export function chooseVariant(o: { env?: string; cpu: boolean; built: boolean }): HnswlibVariant {
  const auto = o.env === undefined || o.env === '' || o.env === 'auto';
  return auto && o.cpu && o.built ? 'avx2' : 'sse';
}

export const HNSWLIB_VARIANT: HnswlibVariant = chooseVariant({
  env: process.env.MEDCLIP_HNSW_SIMD,
  cpu: cpuHasAvx2(),
  built: existsSync(avx2AddonPath()),
});

export const hnswlib: Hnswlib = HNSWLIB_VARIANT === 'avx2' ? (require(avx2AddonPath()) as Hnswlib) : (require('hnswlib-node') as Hnswlib);

/** An HNSW index of either build (the same class). */
export type HierarchicalNSW = import('hnswlib-node').HierarchicalNSW;
