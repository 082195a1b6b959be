/** A small randomly initialised model bundle exported to the model contract (for index and API tests). */
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { selectBackend } from '../../train/backend.ts';
import { exportRun } from '../../train/export.ts';
import { realImages, writeTinyRun } from './tiny-run.ts';
import { buildIndex } from '../../index-builder/build.ts';
import { DATA, IMAGES_CSV, IU_REPORTS } from './paths.ts';

/** Bundles exported by this test process: a bundle left by an earlier run (older code) is never reused. */
const fresh = new Map<string, Promise<string>>();

export function tinyModelBundle(dir: string): Promise<string> {
  let p = fresh.get(dir);
  if (!p) {
    p = exportTinyModel(dir);
    fresh.set(dir, p);
  }
  return p;
}

async function exportTinyModel(dir: string): Promise<string> {
  const bundle = join(dir, 'model');
  rmSync(bundle, { recursive: true, force: true });
  rmSync(join(dir, 'run'), { recursive: true, force: true });
  await selectBackend('wasm');
  const { sentences } = await writeTinyRun(join(dir, 'run'));
  await exportRun({ run: join(dir, 'run'), out: bundle, parityImages: await realImages(2), paritySentences: sentences.slice(0, 4) });
  return bundle;
}

/**
 * A small index bundle built with the tiny model: the first `images` val rows of images.csv (real files) and
 * the IU val reports. Returns the model and index folders and the image rows used.
 */
export async function tinyIndexBundle(
  dir: string,
  options: { images: number; thumbnails?: boolean; rows?: (lines: string[]) => string[] },
): Promise<{ modelDir: string; indexDir: string; rows: string[] }> {
  const modelDir = await tinyModelBundle(dir);
  const lines = readFileSync(IMAGES_CSV, 'utf8').trim().split('\n');
  const rows = options.rows ? options.rows(lines) : lines.filter((l) => l.includes(',val,')).slice(0, options.images);
  writeFileSync(join(dir, 'images.csv'), [lines[0], ...rows].join('\n') + '\n');
  const indexDir = join(dir, 'index');
  rmSync(indexDir, { recursive: true, force: true });
  await buildIndex({
    model: modelDir,
    images: join(dir, 'images.csv'),
    root: DATA,
    reports: IU_REPORTS,
    reportSplit: 'val',
    out: indexDir,
    thumbnails: options.thumbnails,
  });
  return { modelDir, indexDir, rows };
}
