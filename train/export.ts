/**
 * `medclip export`: a training run's checkpoint -> a model bundle (DESIGN.md) with ONNX encoders, written
 * atomically, then verified: the bundle is loaded with onnxruntime (as `core/model` serves it) and its
 * embeddings are compared with tfjs's on real images and sentences.
 */
import * as tf from '@tensorflow/tfjs';
import { readFile, rename, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { imageToTensor } from '../core/image/index.ts';
import { OBSERVATIONS } from '../core/labeler/index.ts';
import { MedClipModel, MODEL_FORMAT, sha256, type ModelManifest, type TextTokenizer } from '../core/model/index.ts';
import { checkpointFolder, readTensors, writeAtomically } from './checkpoint.ts';
import { parseModelConfig, type ModelConfig } from './config.ts';
import { tokenizeAll } from './data.ts';
import { DualEncoder } from './model.ts';
import { imageEncoderOnnx, textEncoderOnnx } from './onnx/encoders.ts';
import { MedclipError } from '../core/errors.ts';

export class ExportError extends MedclipError {
  constructor(message: string) {
    super(message, 'data');
  }
}

export interface ExportOptions {
  run: string;
  out: string;
  checkpoint?: 'best' | 'latest';
  /** Real images (encoded bytes) and sentences for the parity check. */
  parityImages: Uint8Array[];
  paritySentences: string[];
  /** Largest allowed |tfjs - onnxruntime| over embedding values. */
  tolerance?: number;
}

export interface ExportResult {
  dir: string;
  manifest: ModelManifest;
  parity: { image: number; text: number };
}

/** The checkpoint folder of a run; an `ExportError` when it has none. */
export function checkpointDir(run: string, which: 'best' | 'latest' = 'best'): string {
  const ckpt = checkpointFolder(join(resolve(run), `checkpoint-${which}`));
  if (!ckpt || !existsSync(join(ckpt, 'weights', 'tensors.json')))
    throw new ExportError(`${run}: no ${which} checkpoint (run medclip train first)`);
  return ckpt;
}

export async function exportRun(o: ExportOptions): Promise<ExportResult> {
  const run = resolve(o.run);
  const ckpt = checkpointDir(o.run, o.checkpoint);
  let config: ModelConfig;
  try {
    config = parseModelConfig(JSON.parse(await readFile(join(run, 'config.json'), 'utf8')));
  } catch (err) {
    throw new ExportError(`${o.run}/config.json: ${(err as Error).message}`);
  }
  const values = await readTensors(join(ckpt, 'weights'));
  const state = JSON.parse(await readFile(join(ckpt, 'state.json'), 'utf8')) as {
    step: number;
    best?: unknown;
    options?: Record<string, unknown>;
  };
  const tokenizerJson = await readFile(join(run, 'tokenizer.json'));
  const logitScale = Math.exp(Math.min(Math.max(values.get('logit_scale')![0]!, 0), Math.log(config.maxLogitScale)));

  const imageOnnx = imageEncoderOnnx(config, values);
  const textOnnx = textEncoderOnnx(config, values);
  const files: Record<string, Uint8Array> = {
    'image_encoder.onnx': imageOnnx,
    'text_encoder.onnx': textOnnx,
    'tokenizer.json': tokenizerJson,
  };
  const { stages, stemWidth, ...imageSpec } = config.image;
  const options = state.options ?? {};
  const manifest: ModelManifest = {
    format: MODEL_FORMAT,
    name: config.name === 'tiny' || config.name === 'base' ? `medclip-${config.name}` : config.name,
    embedDim: config.embedDim,
    logitScale,
    image: { file: 'image_encoder.onnx', ...imageSpec },
    text: { file: 'text_encoder.onnx', tokenizer: 'tokenizer.json', maxLength: config.text.maxLength, pooling: config.text.pooling },
    labels: [...OBSERVATIONS],
    trainedOn: {
      images: options.images,
      reports: options.reports,
      split: options.trainSplit,
      steps: state.step,
      batch: options.batch,
      loss: options.loss,
      architecture: { ...config, image: { ...config.image, stemWidth, stages } },
    },
    metrics: { validation: state.best ?? null },
    sha256: Object.fromEntries(Object.entries(files).map(([k, v]) => [k, sha256(v)])),
  };
  const dir = resolve(o.out);
  await writeAtomically(dir, async (tmp) => {
    for (const [name, bytes] of Object.entries(files)) await writeFile(join(tmp, name), bytes);
    await writeFile(join(tmp, 'manifest.json'), JSON.stringify(manifest, null, 2) + '\n');
  });
  const parity = await checkParity(dir, config, values, o);
  const tolerance = o.tolerance ?? 1e-4;
  if (!(parity.image <= tolerance && parity.text <= tolerance))
    throw new ExportError(
      `parity check failed: max |tfjs - onnx| image ${parity.image.toExponential(2)}, text ${parity.text.toExponential(2)} (tolerance ${tolerance})`,
    );
  return { dir, manifest, parity };
}

/** Max absolute difference of embeddings between the tfjs model and the exported bundle. */
export async function checkParity(
  dir: string,
  config: ModelConfig,
  values: Map<string, Float32Array>,
  o: Pick<ExportOptions, 'parityImages' | 'paritySentences'>,
): Promise<{ image: number; text: number }> {
  const bundle = await MedClipModel.load(dir);
  const model = new DualEncoder(config, values);
  try {
    const s = config.image.size;
    let image = 0;
    if (o.parityImages.length) {
      const pixels = new Float32Array(o.parityImages.length * s * s);
      for (let i = 0; i < o.parityImages.length; i++) pixels.set((await imageToTensor(o.parityImages[i]!, config.image)).data, i * s * s);
      const viaOnnx = await bundle.embedPixels(pixels, o.parityImages.length);
      const viaTf = tf.tidy(() => model.encodeImage(tf.tensor4d(pixels, [o.parityImages.length, s, s, 1])).dataSync() as Float32Array);
      image = maxAbsDiff(viaOnnx, viaTf);
    }
    let text = 0;
    if (o.paritySentences.length) {
      const tokenizer = bundle.tokenizer as TextTokenizer;
      const viaOnnx = await bundle.embedTexts(o.paritySentences);
      const L = config.text.maxLength;
      const tok = tokenizeAll(tokenizer, o.paritySentences, L);
      const n = o.paritySentences.length;
      const viaTf = tf.tidy(
        () => model.encodeText(tf.tensor2d(tok.ids, [n, L], 'int32'), tf.tensor2d(tok.mask, [n, L], 'int32')).dataSync() as Float32Array,
      );
      const flat = new Float32Array(n * config.embedDim);
      viaOnnx.forEach((r, i) => flat.set(r, i * config.embedDim));
      text = maxAbsDiff(flat, viaTf);
    }
    return { image, text };
  } finally {
    model.dispose();
    await bundle.close();
  }
}

function maxAbsDiff(a: Float32Array, b: Float32Array): number {
  if (a.length !== b.length) return Number.POSITIVE_INFINITY;
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

/**
 * Store the fitted findings-mode temperature in a model bundle's manifest (written to a temporary file, then renamed
 * over it). The manifest's sha256 is the model's identity, so index bundles built before must be rebuilt.
 */
export async function writeFindingsTemperature(
  dir: string,
  findings: { temperature: number; nll?: number; fittedOn?: string },
): Promise<void> {
  const file = join(dir, 'manifest.json');
  const manifest = JSON.parse(await readFile(file, 'utf8')) as Record<string, unknown>;
  manifest.findings = {
    temperature: Math.round(findings.temperature * 1e4) / 1e4,
    ...(findings.nll !== undefined ? { nll: Math.round(findings.nll * 1e4) / 1e4 } : {}),
    ...(findings.fittedOn ? { fittedOn: findings.fittedOn } : {}),
  };
  const tmp = `${file}.tmp-${process.pid}`;
  await writeFile(tmp, JSON.stringify(manifest, null, 2) + '\n');
  await rename(tmp, file);
}
