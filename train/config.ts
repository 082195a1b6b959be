/** Model architecture configs (`configs/*.json`), validated. */
import { readFile } from 'node:fs/promises';
import { parseImageSpec, type ImageSpec } from '../core/image/index.ts';
import { MedclipError } from '../core/errors.ts';

/** This project's image towers are grey, with one mean and std (imported encoders may take three channels). */
export interface ImageEncoderConfig extends ImageSpec {
  channels: 1;
  mean: number;
  std: number;
  /** Channels of the stem: 2x2 space-to-depth, then a 3x3 convolution at half resolution. */
  stemWidth: number;
  /** Per stage: average-pool by 2, then `depth` residual blocks of `width` channels. */
  stages: { width: number; depth: number }[];
}

export interface TextEncoderConfig {
  vocabSize: number;
  maxLength: number;
  width: number;
  layers: number;
  heads: number;
  mlpRatio: number;
  pooling: 'mean';
}

export interface ModelConfig {
  name: string;
  embedDim: number;
  /** Initial logit scale (CLIP: 1/0.07), clamped to [1, maxLogitScale] while training. */
  logitScale: number;
  maxLogitScale: number;
  image: ImageEncoderConfig;
  text: TextEncoderConfig;
}

export class ConfigError extends MedclipError {
  constructor(message: string) {
    super(message, 'input');
  }
}

function posInt(v: unknown, what: string): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v <= 0) throw new ConfigError(`${what} must be a positive integer`);
  return v;
}

export function parseModelConfig(raw: unknown): ModelConfig {
  if (!raw || typeof raw !== 'object') throw new ConfigError('model config must be a JSON object');
  // biome-ignore lint/suspicious/noExplicitAny: an untyped JSON config, every field checked below
  const r = raw as Record<string, any>;
  if (typeof r.name !== 'string' || !/^[\w.-]+$/.test(r.name)) throw new ConfigError('name must be a word (letters, digits, . _ -)');
  const img = r.image ?? {};
  const txt = r.text ?? {};
  let spec: ImageSpec;
  try {
    spec = parseImageSpec({ size: img.size, channels: 1, mean: img.mean, std: img.std, resize: img.resize ?? 'pad-square' });
  } catch (err) {
    throw new ConfigError(`image: ${(err as Error).message}`);
  }
  if (!Array.isArray(img.stages) || img.stages.length === 0) throw new ConfigError('image.stages must be a non-empty array');
  // biome-ignore lint/suspicious/noExplicitAny: elements of the untyped JSON config, checked by posInt
  const stages = img.stages.map((s: any, i: number) => ({
    width: posInt(s?.width, `image.stages[${i}].width`),
    depth: posInt(s?.depth, `image.stages[${i}].depth`),
  }));
  if (spec.size % 2 ** (stages.length + 1) !== 0)
    throw new ConfigError(`image.size must be divisible by ${2 ** (stages.length + 1)} (the stem and each stage halve it)`);
  const width = posInt(txt.width, 'text.width');
  const heads = posInt(txt.heads, 'text.heads');
  if (width % heads !== 0) throw new ConfigError('text.width must be divisible by text.heads');
  if ((txt.pooling ?? 'mean') !== 'mean') throw new ConfigError('text.pooling must be "mean"');
  const logitScale = r.logitScale ?? 1 / 0.07;
  const maxLogitScale = r.maxLogitScale ?? 100;
  if (!(logitScale >= 1 && logitScale <= maxLogitScale)) throw new ConfigError('logitScale must lie in [1, maxLogitScale]');
  return {
    name: r.name,
    embedDim: posInt(r.embedDim, 'embedDim'),
    logitScale,
    maxLogitScale,
    image: { ...greySpec(spec), stemWidth: posInt(img.stemWidth, 'image.stemWidth'), stages },
    text: {
      vocabSize: posInt(txt.vocabSize, 'text.vocabSize'),
      maxLength: posInt(txt.maxLength, 'text.maxLength'),
      width,
      layers: posInt(txt.layers, 'text.layers'),
      heads,
      mlpRatio: posInt(txt.mlpRatio ?? 4, 'text.mlpRatio'),
      pooling: 'mean',
    },
  };
}

export async function loadModelConfig(file: string): Promise<ModelConfig> {
  let raw: unknown;
  try {
    raw = JSON.parse(await readFile(file, 'utf8'));
  } catch (err) {
    throw new ConfigError(`${file}: ${(err as NodeJS.ErrnoException).code === 'ENOENT' ? 'not found' : 'not valid JSON'}`);
  }
  try {
    return parseModelConfig(raw);
  } catch (err) {
    throw new ConfigError(`${file}: ${(err as Error).message}`);
  }
}

/** The image spec of a tower this project trains: one grey channel, one mean and std. */
function greySpec(spec: ImageSpec): ImageSpec & { channels: 1; mean: number; std: number } {
  if (spec.channels !== 1 || typeof spec.mean !== 'number' || typeof spec.std !== 'number')
    throw new ConfigError('image: a trained tower takes one grey channel with one mean and std');
  return { ...spec, channels: 1, mean: spec.mean, std: spec.std };
}
