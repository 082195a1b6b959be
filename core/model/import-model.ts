/**
 * Bring your own encoder: a CLIP-style dual encoder exported to ONNX (an image tower taking `pixel_values`
 * [N, C, S, S], a text tower taking `input_ids` (and `attention_mask`) and pooling inside its graph) plus a Hugging
 * Face `tokenizer.json` (WordPiece or BPE) becomes a model bundle this engine serves unchanged. Both towers are run on
 * a real X-ray and a real sentence before anything is written: a wrong input name, an output that is not [batch, dim],
 * a NaN, or towers of different dimensions is refused in one line, naming what is wrong.
 *
 *   await importModel({ imageOnnx, textOnnx, tokenizer, out: 'models/mine', name: 'mine', image: { size: 224,
 *     channels: 3, mean: [0.481, 0.458, 0.408], std: [0.269, 0.261, 0.276], resize: 'center-crop',
 *     interpolation: 'bicubic' }, maxLength: 77, checkImage, checkText: 'No acute cardiopulmonary process.' });
 */
import { copyFile, mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { OBSERVATIONS } from '../labeler/index.ts';
import { imageToTensor, parseImageSpec, type ImageSpec } from '../image/index.ts';
import { fsErrorReason } from '../util/index.ts';
import { MedClipModel, MODEL_FORMAT, ModelError, sha256 } from './medclip-model.ts';
import { TextTokenizer, type TokenizerJson } from './tokenizer.ts';

export interface ImportModelOptions {
  imageOnnx: string;
  textOnnx: string;
  tokenizer: string;
  /** The bundle folder to write (refused when it exists, unless `force`). */
  out: string;
  name: string;
  image: Omit<ImageSpec, 'interpolation'> & { interpolation?: ImageSpec['interpolation'] };
  maxLength: number;
  /** CLIP's learned logit scale (100 for open_clip and Hugging Face CLIP after training). */
  logitScale?: number;
  /** A real X-ray and a real sentence the towers are run on before anything is written. */
  checkImage: Uint8Array;
  checkText: string;
  force?: boolean;
}

async function readInput(file: string, what: string): Promise<Buffer> {
  try {
    return await readFile(file);
  } catch (err) {
    throw new ModelError(`${what} ${file}: ${(err as NodeJS.ErrnoException).code === 'ENOENT' ? 'not found' : fsErrorReason(err)}`);
  }
}

async function session(bytes: Buffer, what: string, file: string): Promise<ort.InferenceSession> {
  try {
    return await ort.InferenceSession.create(bytes, { executionProviders: ['cpu'], intraOpNumThreads: 1 });
  } catch (err) {
    throw new ModelError(`${what} ${file}: onnxruntime cannot load it (${(err as Error).message.split('\n')[0]})`);
  }
}

/** One encoder's embedding of one input: [1, D] float32, finite; the dimension D. */
function embedding(out: ort.InferenceSession.OnnxValueMapType, s: ort.InferenceSession, name: string, what: string): number {
  const key = s.outputNames.includes(name) ? name : s.outputNames[0]!;
  const t = out[key]!;
  if (t.type !== 'float32' || t.dims.length !== 2 || t.dims[0] !== 1)
    throw new ModelError(
      `${what} encoder output "${key}" is [${t.dims.join(', ')}] ${t.type}; expected [batch, dim] float32 (pool inside the graph)`,
    );
  const data = t.data as Float32Array;
  if (!data.every(Number.isFinite)) throw new ModelError(`${what} encoder returned a NaN or infinite embedding on a real input`);
  if (data.every((x) => x === 0)) throw new ModelError(`${what} encoder returned an all-zero embedding on a real input`);
  return Number(t.dims[1]);
}

/** Check both towers on real input, then write the bundle (manifest with every file's sha256) and load it back. */
export async function importModel(o: ImportModelOptions): Promise<MedClipModel> {
  if (existsSync(o.out) && !o.force) throw new ModelError(`${o.out} exists: choose another --out, or --force to replace it`);
  let spec: ImageSpec;
  try {
    spec = parseImageSpec(o.image);
  } catch (err) {
    throw new ModelError((err as Error).message);
  }
  if (!Number.isInteger(o.maxLength) || o.maxLength < 2 || o.maxLength > 4096)
    throw new ModelError('--max-length must be an integer in [2, 4096]');
  if (o.logitScale !== undefined && !(o.logitScale > 0 && o.logitScale <= 1000))
    throw new ModelError(`--logit-scale must be a positive number (CLIP: 100), got ${o.logitScale}`);
  const [imageBytes, textBytes, tokenizerBytes] = await Promise.all([
    readInput(o.imageOnnx, 'image encoder'),
    readInput(o.textOnnx, 'text encoder'),
    readInput(o.tokenizer, 'tokenizer'),
  ]);
  let tokenizer: TextTokenizer;
  try {
    tokenizer = new TextTokenizer(JSON.parse(tokenizerBytes.toString('utf8')) as TokenizerJson);
  } catch (err) {
    throw new ModelError(`tokenizer ${o.tokenizer}: ${(err as Error).message}`);
  }
  const imageSession = await session(imageBytes, 'image encoder', o.imageOnnx);
  const textSession = await session(textBytes, 'text encoder', o.textOnnx);
  try {
    if (!imageSession.inputNames.includes('pixel_values'))
      throw new ModelError(
        `image encoder takes [${imageSession.inputNames.join(', ')}]; it must take "pixel_values" [N, ${spec.channels}, ${spec.size}, ${spec.size}]`,
      );
    if (!textSession.inputNames.includes('input_ids'))
      throw new ModelError(
        `text encoder takes [${textSession.inputNames.join(', ')}]; it must take "input_ids" (and may take "attention_mask")`,
      );
    const pixels = await imageToTensor(o.checkImage, spec);
    let imageDim: number;
    try {
      imageDim = embedding(
        await imageSession.run({ pixel_values: new ort.Tensor('float32', pixels.data, [1, spec.channels, spec.size, spec.size]) }),
        imageSession,
        'image_embeds',
        'image',
      );
    } catch (err) {
      if (err instanceof ModelError) throw err;
      throw new ModelError(
        `image encoder fails on a [1, ${spec.channels}, ${spec.size}, ${spec.size}] X-ray: ${(err as Error).message.split('\n')[0]}`,
      );
    }
    const enc = tokenizer.encodeBatch([o.checkText], o.maxLength, { trim: true });
    let textDim: number;
    try {
      textDim = embedding(
        await textSession.run({
          input_ids: new ort.Tensor('int64', enc.inputIds, enc.dims),
          ...(textSession.inputNames.includes('attention_mask')
            ? { attention_mask: new ort.Tensor('int64', enc.attentionMask, enc.dims) }
            : {}),
        }),
        textSession,
        'text_embeds',
        'text',
      );
    } catch (err) {
      if (err instanceof ModelError) throw err;
      throw new ModelError(`text encoder fails on a tokenised sentence: ${(err as Error).message.split('\n')[0]}`);
    }
    if (imageDim !== textDim) throw new ModelError(`the towers embed to different dimensions: image ${imageDim}, text ${textDim}`);

    const staging = `${o.out}.import-${process.pid}`;
    await rm(staging, { recursive: true, force: true });
    await mkdir(staging, { recursive: true });
    try {
      await Promise.all([
        copyFile(o.imageOnnx, join(staging, 'image_encoder.onnx')),
        copyFile(o.textOnnx, join(staging, 'text_encoder.onnx')),
        writeFile(join(staging, 'tokenizer.json'), tokenizerBytes),
      ]);
      const manifest = {
        format: MODEL_FORMAT,
        name: o.name,
        embedDim: imageDim,
        logitScale: o.logitScale ?? 100,
        image: { file: 'image_encoder.onnx', ...spec },
        text: { file: 'text_encoder.onnx', tokenizer: 'tokenizer.json', maxLength: o.maxLength, pooling: 'graph' },
        labels: [...OBSERVATIONS],
        importedFrom: { imageOnnx: o.imageOnnx, textOnnx: o.textOnnx, tokenizer: o.tokenizer, at: new Date().toISOString() },
        sha256: {
          'image_encoder.onnx': sha256(imageBytes),
          'text_encoder.onnx': sha256(textBytes),
          'tokenizer.json': sha256(tokenizerBytes),
        },
      };
      await writeFile(join(staging, 'manifest.json'), JSON.stringify(manifest, null, 2) + '\n');
      // the bundle loads as every bundle does before it is published
      await (await MedClipModel.load(staging)).close();
      if (o.force) await rm(o.out, { recursive: true, force: true });
      await rename(staging, o.out);
    } catch (err) {
      await rm(staging, { recursive: true, force: true });
      throw err;
    }
    return await MedClipModel.load(o.out);
  } finally {
    await Promise.all([imageSession.release(), textSession.release()]);
  }
}
