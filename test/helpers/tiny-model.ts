/** A small randomly initialised model bundle exported to the model contract (for index and API tests). */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { selectBackend } from '../../train/backend.ts';
import { exportRun } from '../../train/export.ts';
import { realImages, writeTinyRun } from './tiny-run.ts';

export async function tinyModelBundle(dir: string): Promise<string> {
  const bundle = join(dir, 'model');
  if (existsSync(join(bundle, 'manifest.json'))) return bundle;
  await selectBackend('wasm');
  const { sentences } = await writeTinyRun(join(dir, 'run'));
  await exportRun({ run: join(dir, 'run'), out: bundle, parityImages: await realImages(2), paritySentences: sentences.slice(0, 4) });
  return bundle;
}
