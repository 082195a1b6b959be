/**
 * A small randomly initialised training run on disk (config, tokenizer, checkpoint), with BatchNorm statistics
 * and scales set to random values so that export's folding is exercised. Used by export and model tests.
 */
import { join } from 'node:path';
import { readFile } from 'node:fs/promises';
import { readReports, reportText } from '../../core/tables/index.ts';
import { labelReport } from '../../core/labeler/index.ts';
import { parseModelConfig, type ModelConfig } from '../../train/config.ts';
import { writeRandomRun } from '../../train/random-run.ts';
import { IMAGES_CSV, IU_REPORTS, DATA } from './paths.ts';

export const TINY_TEST_CONFIG = {
  name: 'test-tiny',
  embedDim: 16,
  logitScale: 14.285714,
  maxLogitScale: 100,
  image: {
    size: 32,
    channels: 1,
    mean: 0.5,
    std: 0.25,
    resize: 'pad-square',
    stemWidth: 4,
    stages: [
      { width: 8, depth: 1 },
      { width: 8, depth: 1 },
    ],
  },
  text: { vocabSize: 400, maxLength: 24, width: 16, layers: 1, heads: 2, mlpRatio: 2, pooling: 'mean' },
};

/** Real sentences from the IU train split (first `n` reports). */
export async function iuSentences(n: number): Promise<string[]> {
  const out: string[] = [];
  for await (const r of readReports(IU_REPORTS, { split: 'train' })) {
    out.push(...labelReport(reportText(r)).sentences.map((s) => s.text));
    if (out.length >= n) break;
  }
  return out.slice(0, n);
}

/** Real image files: NIH PNGs and Kermany JPEGs from the val split. */
export async function realImages(n: number): Promise<Uint8Array[]> {
  const lines = (await readFile(IMAGES_CSV, 'utf8'))
    .split('\n')
    .slice(1)
    .filter((l) => l.includes(',val,'));
  const nih = lines.filter((l) => l.includes(',nih,')).slice(0, Math.ceil(n / 2));
  const kermany = lines.filter((l) => l.includes(',kermany,')).slice(0, Math.floor(n / 2));
  return Promise.all([...nih, ...kermany].map((l) => readFile(join(DATA, l.split(',')[0]!))));
}

export async function writeTinyRun(
  dir: string,
  seed = 3,
): Promise<{ config: ModelConfig; values: Map<string, Float32Array>; sentences: string[] }> {
  const config = parseModelConfig(TINY_TEST_CONFIG);
  const sentences = await iuSentences(300);
  const values = await writeRandomRun(dir, config, sentences, {
    seed,
    state: { images: IMAGES_CSV, root: DATA, reports: IU_REPORTS, loss: 'semantic' },
  });
  return { config, values, sentences };
}
