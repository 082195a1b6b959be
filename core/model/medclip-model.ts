/**
 * A model bundle (`models/NAME/`, DESIGN.md): manifest + ONNX image/text encoders + tokenizer.json, run with
 * onnxruntime-node on the CPU. Loading checks the format and every file's sha256; any CLIP-style dual
 * encoder exported to the same contract loads.
 *
 *   const model = await MedClipModel.load('models/medclip-tiny');
 *   const [image] = await model.embedImages([await readFile('xray.png')]);
 *   model.classify(image, resolveClasses(['No Finding', 'Pneumonia']));
 */
import { fsErrorReason, classSoftmax, dot, meanNormalized, boundedCache, readWhole, stringBytes } from '../util/index.ts';
import { createHash, webcrypto } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join, resolve, sep } from 'node:path';
import * as ort from 'onnxruntime-node';
import { parseImageSpec, type ImageSpec, type ImageLimits, DEFAULT_IMAGE_LIMITS } from '../image/index.ts';
import { embedImageSources } from './embed-images.ts';

export { dot, meanNormalized } from '../util/index.ts';
import { OBSERVATIONS, type Observation } from '../labeler/index.ts';
import { FINDING_PROMPTS, findingProbability, resolveFindingNames } from './findings.ts';
import type { ClassPrompts } from './prompts.ts';
import { TextTokenizer } from './tokenizer.ts';
import { findingValidity, parseCard, type ModelCard, type Validity } from './model-card.ts';
import { MedclipError } from '../errors.ts';

export const MODEL_FORMAT = 'medclip-model/1';

export class ModelError extends MedclipError {
  constructor(message: string) {
    super(message, 'data');
  }
}

export interface ModelManifest {
  format: string;
  name: string;
  embedDim: number;
  logitScale: number;
  image: ImageSpec & { file: string };
  text: { file: string; tokenizer: string; maxLength: number; pooling: string };
  labels: string[];
  trainedOn?: unknown;
  metrics?: unknown;
  /** Findings mode calibration: the temperature fitted on val (`medclip eval --task findings --fit`); absent = 1. */
  findings?: { temperature: number; fittedOn?: string; nll?: number };
  /** The model card (`card.json`): per-finding validation on held-out images; absent = no finding validated. */
  card?: string;
  sha256: Record<string, string>;
}

export interface ModelLoadOptions {
  /** Threads per onnxruntime session (default 1: a Lambda/serverless-friendly choice; raise for batch jobs). */
  threads?: number;
  /** Check every file's sha256 against the manifest (default true). */
  verify?: boolean;
  /**
   * Create the image encoder's session at its first use instead of at load (a server's cold start answers a text query
   * without it: ~25 ms at the shipped model). Its file is verified at load either way.
   */
  lazyImageEncoder?: boolean;
}

export function sha256(bytes: Uint8Array | string): string {
  return createHash('sha256').update(bytes).digest('hex');
}

/** sha256 hex computed on the thread pool (WebCrypto's digest), not on the calling thread. */
export async function sha256Async(bytes: Uint8Array): Promise<string> {
  return Buffer.from(await webcrypto.subtle.digest('SHA-256', bytes)).toString('hex');
}

function parseManifest(raw: unknown, dir: string): ModelManifest {
  const m = raw as Partial<ModelManifest> | null;
  if (!m || typeof m !== 'object') throw new ModelError(`${dir}: manifest.json is not an object`);
  if (m.format !== MODEL_FORMAT) throw new ModelError(`${dir}: unsupported model format "${String(m.format)}" (expected ${MODEL_FORMAT})`);
  if (typeof m.name !== 'string' || !m.name) throw new ModelError(`${dir}: manifest lacks a name`);
  if (!Number.isInteger(m.embedDim) || m.embedDim! <= 0) throw new ModelError(`${dir}: manifest embedDim must be a positive integer`);
  if (typeof m.logitScale !== 'number' || !(m.logitScale > 0)) throw new ModelError(`${dir}: manifest logitScale must be positive`);
  if (!m.image || typeof m.image.file !== 'string') throw new ModelError(`${dir}: manifest lacks image.file`);
  if (!m.text || typeof m.text.file !== 'string' || typeof m.text.tokenizer !== 'string' || !Number.isInteger(m.text.maxLength))
    throw new ModelError(`${dir}: manifest text block needs file, tokenizer and maxLength`);
  let spec: ImageSpec;
  try {
    spec = parseImageSpec(m.image);
  } catch (err) {
    throw new ModelError(`${dir}: ${(err as Error).message}`);
  }
  if (!Array.isArray(m.labels) || m.labels.join('|') !== OBSERVATIONS.join('|'))
    throw new ModelError(`${dir}: manifest labels must be the 14 observations in the shared order`);
  if (!m.sha256 || typeof m.sha256 !== 'object') throw new ModelError(`${dir}: manifest lacks sha256`);
  if (m.findings !== undefined && !(typeof m.findings?.temperature === 'number' && m.findings.temperature > 0))
    throw new ModelError(`${dir}: manifest findings.temperature must be a positive number`);
  return { ...(m as ModelManifest), image: { ...spec, file: m.image.file } };
}

/** A file named by the manifest, kept inside the bundle folder. */
function bundleFile(dir: string, name: string): string {
  const abs = resolve(dir, name);
  if (!abs.startsWith(resolve(dir) + sep)) throw new ModelError(`${dir}: manifest names a file outside the bundle (${name})`);
  return abs;
}

export class MedClipModel {
  /** Class embeddings by prompt list, within a memory budget: custom classes arrive with every request. */
  private readonly classCache = boundedCache<string, Float32Array>('class-prompts', (v, k) => v.byteLength + stringBytes(k));

  private constructor(
    readonly dir: string,
    readonly manifest: ModelManifest,
    /** sha256 of manifest.json: the identity index bundles record. */
    readonly manifestSha256: string,
    readonly tokenizer: TextTokenizer,
    /** The image encoder's session, or how to make it at first use (`lazyImageEncoder`). */
    private readonly imageEncoder: ort.InferenceSession | (() => Promise<ort.InferenceSession>),
    private readonly textSession: ort.InferenceSession,
    /** The model card, when the bundle has one (`medclip eval --card`). */
    readonly card?: ModelCard,
  ) {
    if (typeof imageEncoder !== 'function') this.image = Promise.resolve(imageEncoder);
  }

  /** Whether the card validates a finding (and its pooled AUC); without a card nothing is validated. */
  validity(name: string): Validity {
    return findingValidity(this.card, name);
  }

  static async load(dir: string, options: ModelLoadOptions = {}): Promise<MedClipModel> {
    let manifestBytes: Buffer;
    try {
      manifestBytes = await readFile(join(dir, 'manifest.json'));
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      throw new ModelError(
        code === 'ENOENT' || code === 'ENOTDIR'
          ? `${dir}: no manifest.json (not a model bundle)`
          : `${join(dir, 'manifest.json')}: cannot read (${fsErrorReason(err)})`,
      );
    }
    let raw: unknown;
    try {
      raw = JSON.parse(manifestBytes.toString('utf8'));
    } catch {
      throw new ModelError(`${dir}: manifest.json is not valid JSON`);
    }
    const manifest = parseManifest(raw, dir);
    const files = [manifest.image.file, manifest.text.file, manifest.text.tokenizer, ...(manifest.card ? [manifest.card] : [])];
    const contents = new Map<string, Buffer>();
    // side by side, each one request to the thread pool (core/util/read-whole.ts)
    const read = await Promise.allSettled(files.map((f) => readWhole(bundleFile(dir, f))));
    read.forEach((r, i) => {
      if (r.status === 'rejected') {
        if (r.reason instanceof ModelError) throw r.reason;
        throw new ModelError(`${dir}: missing ${files[i]}`);
      }
      contents.set(files[i]!, r.value);
    });
    if (options.verify !== false) {
      // hashed on the thread pool (WebCrypto), side by side and off this thread (which may be starting an index)
      const digests = await Promise.all(files.map((f) => sha256Async(contents.get(f)!)));
      files.forEach((f, i) => {
        const expected = manifest.sha256[f];
        if (!expected) throw new ModelError(`${dir}: manifest has no sha256 for ${f}`);
        if (digests[i] !== expected) throw new ModelError(`${dir}: ${f} does not match its sha256 (corrupted or modified)`);
      });
    }
    let tokenizer: TextTokenizer;
    try {
      tokenizer = new TextTokenizer(JSON.parse(contents.get(manifest.text.tokenizer)!.toString('utf8')));
    } catch (err) {
      throw new ModelError(`${dir}: ${manifest.text.tokenizer}: ${(err as Error).message}`);
    }
    const threads = options.threads ?? 1;
    const sessionOptions: ort.InferenceSession.SessionOptions = {
      executionProviders: ['cpu'],
      intraOpNumThreads: threads,
      interOpNumThreads: 1,
      graphOptimizationLevel: 'all',
    };
    const create = async (what: 'image' | 'text'): Promise<ort.InferenceSession> => {
      const [file, input] = what === 'image' ? [manifest.image.file, 'pixel_values'] : [manifest.text.file, 'input_ids'];
      let session: ort.InferenceSession;
      try {
        session = await ort.InferenceSession.create(contents.get(file)!, sessionOptions);
      } catch (err) {
        throw new ModelError(`${dir}: an encoder could not be loaded by onnxruntime: ${(err as Error).message.split('\n')[0]}`);
      }
      if (!session.inputNames.includes(input)) {
        await session.release();
        throw new ModelError(`${dir}: ${what} encoder has no input "${input}"`);
      }
      return session;
    };
    const imageSession = options.lazyImageEncoder ? () => create('image') : await create('image');
    const textSession = await create('text');
    const card = manifest.card ? parseCard(contents.get(manifest.card)!.toString('utf8'), join(dir, manifest.card)) : undefined;
    return new MedClipModel(dir, manifest, sha256(manifestBytes), tokenizer, imageSession, textSession, card);
  }

  get name(): string {
    return this.manifest.name;
  }
  get embedDim(): number {
    return this.manifest.embedDim;
  }
  get imageSpec(): ImageSpec {
    return this.manifest.image;
  }

  /** Embed preprocessed pixels [n, C, S, S] (planar row-major, normalised) -> [n, D] L2-normalised rows. */
  async embedPixels(pixels: Float32Array, n: number): Promise<Float32Array> {
    const s = this.manifest.image.size;
    const c = this.manifest.image.channels;
    if (pixels.length !== n * c * s * s) throw new ModelError(`embedPixels: expected ${n}x${c}x${s}x${s} values, got ${pixels.length}`);
    const session = await this.imageSession();
    const out = await session.run({ pixel_values: new ort.Tensor('float32', pixels, [n, c, s, s]) });
    const t = out[embedsOutput(session, 'image_embeds')]!;
    return this.checkOutput(t, n, 'image');
  }

  /** Decode and embed encoded images (PNG/JPEG/DICOM); throws `ImageError` for a bad one. */
  async embedImages(images: Uint8Array[], limits: ImageLimits = DEFAULT_IMAGE_LIMITS): Promise<Float32Array[]> {
    const out = await embedImageSources(this, images, { limits });
    const failed = out.find((r) => !r.ok);
    if (failed && !failed.ok) throw failed.error; // one request, one answer: the first unusable image is the error
    return out.map((r) => (r.ok ? r.vector : new Float32Array(0)));
  }

  /** Embed sentences -> one L2-normalised row each. */
  async embedTexts(texts: string[], batchSize = 64): Promise<Float32Array[]> {
    const outRows: Float32Array[] = [];
    for (let start = 0; start < texts.length; start += batchSize) {
      const part = texts.slice(start, start + batchSize);
      // Trailing all-padding columns trimmed: shorter sequences, same embeddings (masked attention and pooling).
      const enc = this.tokenizer.encodeBatch(part, this.manifest.text.maxLength, { trim: true });
      // an exported text tower that pools at the end token may take no mask
      const out = await this.textSession.run({
        input_ids: new ort.Tensor('int64', enc.inputIds, enc.dims),
        ...(this.textSession.inputNames.includes('attention_mask')
          ? { attention_mask: new ort.Tensor('int64', enc.attentionMask, enc.dims) }
          : {}),
      });
      const t = out[embedsOutput(this.textSession, 'text_embeds')]!;
      outRows.push(...rows(this.checkOutput(t, part.length, 'text'), part.length, this.embedDim));
    }
    return outRows;
  }

  /** The output checked ([n, D] float32, finite) and its rows L2-normalised (exports that leave that out are common). */
  private checkOutput(t: ort.Tensor, n: number, what: string): Float32Array {
    if (t.type !== 'float32' || t.dims.length !== 2 || t.dims[0] !== n || t.dims[1] !== this.embedDim)
      throw new ModelError(
        `${this.dir}: ${what} encoder returned [${t.dims.join(', ')}] ${t.type}, expected [${n}, ${this.embedDim}] float32`,
      );
    const data = t.data as Float32Array;
    const d = this.embedDim;
    const out = new Float32Array(data.length);
    for (let r = 0; r < n; r++) {
      let norm = 0;
      for (let i = r * d; i < (r + 1) * d; i++) norm += data[i]! * data[i]!;
      if (!Number.isFinite(norm) || norm === 0)
        throw new ModelError(`${this.dir}: ${what} encoder returned a ${norm === 0 ? 'zero' : 'non-finite'} embedding`);
      const inv = 1 / Math.sqrt(norm);
      for (let i = r * d; i < (r + 1) * d; i++) out[i] = data[i]! * inv;
    }
    return out;
  }

  /** One embedding per class: the re-normalised mean of its prompt embeddings (cached per prompt list). */
  async classEmbeddings(classes: ClassPrompts[]): Promise<Float32Array[]> {
    const out: Float32Array[] = [];
    for (const c of classes) {
      const key = JSON.stringify(c.prompts);
      let cached = this.classCache.get(key);
      if (!cached) {
        cached = meanNormalized(await this.embedTexts(c.prompts));
        this.classCache.set(key, cached);
      }
      out.push(cached);
    }
    return out;
  }

  /** Zero-shot probabilities: softmax over classes of logitScale * cos(image, class embedding). */
  async classify(imageEmbedding: Float32Array, classes: ClassPrompts[]): Promise<{ name: string; probability: number }[]> {
    const probs = classSoftmax(imageEmbedding, await this.classEmbeddings(classes), this.manifest.logitScale);
    return classes.map((c, i) => ({ name: c.name, probability: probs[i]! }));
  }

  /**
   * Findings mode: per observation, the cosine margin between its positive and negative prompt sets
   * (`core/model/findings.ts`), and P(present) = sigmoid(logitScale * margin / temperature), each independent.
   */
  async findings(
    imageEmbedding: Float32Array,
    names?: string[],
    temperature = this.manifest.findings?.temperature ?? 1,
  ): Promise<{ name: Observation; probability: number; margin: number }[]> {
    const wanted = resolveFindingNames(names);
    const pos = await this.classEmbeddings(wanted.map((n) => ({ name: n, prompts: FINDING_PROMPTS[n].positive })));
    const neg = await this.classEmbeddings(wanted.map((n) => ({ name: n, prompts: FINDING_PROMPTS[n].negative })));
    return wanted.map((name, i) => {
      const margin = dot(pos[i]!, imageEmbedding) - dot(neg[i]!, imageEmbedding);
      return { name, margin, probability: findingProbability(margin, this.manifest.logitScale, temperature) };
    });
  }

  /** The image encoder's session, made at its first use when it was left to it (a failure is retried by the next). */
  private imageSession(): Promise<ort.InferenceSession> {
    if (!this.image) {
      const make = this.imageEncoder as () => Promise<ort.InferenceSession>;
      this.image = make().catch((err: unknown) => {
        this.image = undefined;
        throw err;
      });
    }
    return this.image;
  }
  private image?: Promise<ort.InferenceSession>;

  async close(): Promise<void> {
    const image = await this.image?.catch(() => undefined);
    await Promise.all([image?.release(), this.textSession.release()]);
  }
}

function rows(flat: Float32Array, n: number, d: number): Float32Array[] {
  return Array.from({ length: n }, (_, i) => flat.slice(i * d, (i + 1) * d));
}

/** The embeddings output of an encoder: the one named as CLIP exports name it, else the first. */
function embedsOutput(session: ort.InferenceSession, name: string): string {
  return session.outputNames.includes(name) ? name : session.outputNames[0]!;
}
