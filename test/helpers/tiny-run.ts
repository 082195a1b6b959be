/**
 * A small randomly initialised training run on disk (config, tokenizer, checkpoint), with BatchNorm statistics
 * and scales set to random values so that export's folding is exercised. Used by export and model tests.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { readFile } from 'node:fs/promises';
import { Rng } from '../../core/random.ts';
import { readReports, reportText } from '../../core/reports.ts';
import { labelReport } from '../../core/labeler/labeler.ts';
import { TextTokenizer, trainWordPiece } from '../../core/tokenizer.ts';
import { writeTensors } from '../../train/checkpoint.ts';
import { parseModelConfig, type ModelConfig } from '../../train/config.ts';
import { initialValues } from '../../train/model.ts';
import { IMAGES_CSV, IU_REPORTS, DATA } from './paths.ts';

export const TINY_TEST_CONFIG = {
  name: 'test-tiny',
  embedDim: 16,
  logitScale: 14.285714,
  maxLogitScale: 100,
  image: { size: 32, channels: 1, mean: 0.5, std: 0.25, resize: 'pad-square', stemWidth: 4, stages: [{ width: 8, depth: 1 }, { width: 8, depth: 1 }] },
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
  const lines = (await readFile(IMAGES_CSV, 'utf8')).split('\n').slice(1).filter((l) => l.includes(',val,'));
  const nih = lines.filter((l) => l.includes(',nih,')).slice(0, Math.ceil(n / 2));
  const kermany = lines.filter((l) => l.includes(',kermany,')).slice(0, Math.floor(n / 2));
  return Promise.all([...nih, ...kermany].map((l) => readFile(join(DATA, l.split(',')[0]!))));
}

export async function writeTinyRun(dir: string, seed = 3): Promise<{ config: ModelConfig; values: Map<string, Float32Array>; sentences: string[] }> {
  const config = parseModelConfig(TINY_TEST_CONFIG);
  const sentences = await iuSentences(300);
  const tokenizer = new TextTokenizer(trainWordPiece(sentences, { vocabSize: config.text.vocabSize }));
  const values = initialValues(config, seed);
  const rng = new Rng(seed);
  for (const [name, v] of values) {
    if (name.endsWith('.mean') || name.endsWith('.beta') || name.endsWith('_bn.beta')) for (let i = 0; i < v.length; i++) v[i] = rng.uniform(-0.5, 0.5);
    if (name.endsWith('.var')) for (let i = 0; i < v.length; i++) v[i] = rng.uniform(0.5, 2);
    if (name.endsWith('.gamma')) for (let i = 0; i < v.length; i++) v[i] = rng.uniform(0.5, 1.5);
  }
  mkdirSync(join(dir, 'checkpoint-best', 'weights'), { recursive: true });
  writeFileSync(join(dir, 'config.json'), JSON.stringify(config));
  await tokenizer.save(join(dir, 'tokenizer.json'));
  await writeTensors(join(dir, 'checkpoint-best', 'weights'), values);
  writeFileSync(join(dir, 'checkpoint-best', 'state.json'), JSON.stringify({ step: 0, options: { images: IMAGES_CSV, root: DATA, reports: IU_REPORTS, loss: 'semantic' } }));
  return { config, values, sentences };
}
