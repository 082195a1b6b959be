/** Where the shared real data lives (../shared/data beside the repository), and a scratch folder for outputs. */
import { mkdirSync } from 'node:fs';
import { currentVersionSync } from '../../core/bundle/index.ts';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
export const DATA = process.env.MEDCLIP_DATA_DIR ?? resolve(REPO, '../shared/data');
export const IU_REPORTS = join(DATA, 'reports/iu_reports.csv');
export const IMAGES_CSV = join(DATA, 'images.csv');
export const NIH_PNG = join(DATA, 'images/nih/00001280_004.png');
export const FULLRES_DIR = join(DATA, 'samples/fullres');

/** A per-suite output folder under .test-output/ (git-ignored), created if missing; suites remove what they must not reuse. */
export function outputDir(name: string): string {
  const dir = join(REPO, '.test-output', name);
  mkdirSync(dir, { recursive: true });
  return dir;
}

/** The live version folder of an index bundle location (where its files are). */
export function liveDir(bundle: string): string {
  const dir = currentVersionSync(bundle, 'manifest.json');
  if (!dir) throw new Error(`${bundle} holds no index bundle`);
  return dir;
}
