/**
 * A randomly initialised training run on disk (config, tokenizer trained on the given sentences, checkpoint):
 * what `medclip export` reads. For tests of export and the runtime, and for speed measurements of an architecture
 * before any training (`bench/index --config configs/base.json`). BatchNorm statistics and scales are set to
 * random values so that export's folding is exercised.
 *
 *   await writeRandomRun('runs/untrained-base', parseModelConfig(json), sentences);
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Rng } from '../core/util/index.ts';
import { TextTokenizer, trainWordPiece } from '../core/model/index.ts';
import { writeTensors } from './checkpoint.ts';
import type { ModelConfig } from './config.ts';
import { initialValues } from './model.ts';

export async function writeRandomRun(
  dir: string,
  config: ModelConfig,
  sentences: string[],
  options: { seed?: number; state?: Record<string, unknown> } = {},
): Promise<Map<string, Float32Array>> {
  const seed = options.seed ?? 3;
  const tokenizer = new TextTokenizer(trainWordPiece(sentences, { vocabSize: config.text.vocabSize }));
  const values = initialValues(config, seed);
  const rng = new Rng(seed);
  for (const [name, v] of values) {
    if (name.endsWith('.mean') || name.endsWith('.beta') || name.endsWith('_bn.beta'))
      for (let i = 0; i < v.length; i++) v[i] = rng.uniform(-0.5, 0.5);
    if (name.endsWith('.var')) for (let i = 0; i < v.length; i++) v[i] = rng.uniform(0.5, 2);
    if (name.endsWith('.gamma')) for (let i = 0; i < v.length; i++) v[i] = rng.uniform(0.5, 1.5);
  }
  mkdirSync(join(dir, 'checkpoint-best', 'weights'), { recursive: true });
  writeFileSync(join(dir, 'config.json'), JSON.stringify(config));
  await tokenizer.save(join(dir, 'tokenizer.json'));
  await writeTensors(join(dir, 'checkpoint-best', 'weights'), values);
  writeFileSync(join(dir, 'checkpoint-best', 'state.json'), JSON.stringify({ step: 0, options: options.state ?? {} }));
  return values;
}
