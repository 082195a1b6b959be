/**
 * The MedCLIP dual encoder in TensorFlow.js: a ResNet-style CNN for images and a small Transformer for text,
 * each projected to `embedDim` and L2-normalised, plus a learnable logit scale.
 *
 * Parameters live in a flat, ordered name -> variable map so that checkpoints, the optimiser and the ONNX
 * exporter all address them the same way. Every layer here has an ONNX counterpart in `onnx-export.ts`.
 */
import * as tf from '@tensorflow/tfjs';
import { Rng } from '../core/util/index.ts';
import type { ModelConfig } from './config.ts';
import { conv2dSame, dense, embeddingLookup, gelu, l2Normalize, layerNorm, batchMatMul } from './ops.ts';

export const BN_EPS = 1e-5;
export const BN_MOMENTUM = 0.1;
export const LN_EPS = 1e-5;

export interface ParamSpec {
  shape: number[];
  /** 'he': N(0, 2/fan_in); 'xavier': N(0, 1/fan_in); 'embed': N(0, 0.02); a number: constant. */
  init: 'he' | 'xavier' | 'embed' | number;
  /** Buffers (BatchNorm running statistics) are state, not trained. */
  trainable: boolean;
}

/** Name -> spec of every tensor the model holds, in a stable order. */
export function parameterSpecs(config: ModelConfig): Map<string, ParamSpec> {
  const specs = new Map<string, ParamSpec>();
  const add = (name: string, shape: number[], init: ParamSpec['init'], trainable = true) => specs.set(name, { shape, init, trainable });
  const bn = (name: string, c: number) => {
    add(`${name}.gamma`, [c], 1);
    add(`${name}.beta`, [c], 0);
    add(`${name}.mean`, [c], 0, false);
    add(`${name}.var`, [c], 1, false);
  };
  const { image, text, embedDim } = config;
  add('image.stem.conv', [3, 3, 4, image.stemWidth], 'he');
  bn('image.stem.bn', image.stemWidth);
  let c = image.stemWidth;
  image.stages.forEach((stage, s) => {
    for (let b = 0; b < stage.depth; b++) {
      const p = `image.stage${s}.block${b}`;
      add(`${p}.conv1`, [3, 3, c, stage.width], 'he');
      bn(`${p}.bn1`, stage.width);
      add(`${p}.conv2`, [3, 3, stage.width, stage.width], 'he');
      // Zero-init the last BN scale: each block starts as the identity (Goyal et al.), which trains faster.
      bn(`${p}.bn2`, stage.width);
      specs.get(`${p}.bn2.gamma`)!.init = 0;
      if (c !== stage.width) {
        add(`${p}.shortcut`, [c, stage.width], 'he');
        bn(`${p}.shortcut_bn`, stage.width);
      }
      c = stage.width;
    }
  });
  add('image.proj.w', [c, embedDim], 'xavier');
  add('image.proj.b', [embedDim], 0);

  const d = text.width;
  add('text.token_embed', [text.vocabSize, d], 'embed');
  add('text.pos_embed', [text.maxLength, d], 'embed');
  for (let l = 0; l < text.layers; l++) {
    const p = `text.layer${l}`;
    add(`${p}.ln1.gamma`, [d], 1);
    add(`${p}.ln1.beta`, [d], 0);
    add(`${p}.qkv.w`, [d, 3 * d], 'xavier');
    add(`${p}.qkv.b`, [3 * d], 0);
    add(`${p}.out.w`, [d, d], 'xavier');
    add(`${p}.out.b`, [d], 0);
    add(`${p}.ln2.gamma`, [d], 1);
    add(`${p}.ln2.beta`, [d], 0);
    add(`${p}.fc1.w`, [d, text.mlpRatio * d], 'xavier');
    add(`${p}.fc1.b`, [text.mlpRatio * d], 0);
    add(`${p}.fc2.w`, [text.mlpRatio * d, d], 'xavier');
    add(`${p}.fc2.b`, [d], 0);
  }
  add('text.ln_final.gamma', [d], 1);
  add('text.ln_final.beta', [d], 0);
  add('text.proj.w', [d, embedDim], 'xavier');
  add('text.proj.b', [embedDim], 0);
  add('logit_scale', [], Math.log(config.logitScale));
  return specs;
}

/** Seeded initial values, computed in JS so every backend starts from the same numbers. */
export function initialValues(config: ModelConfig, seed: number): Map<string, Float32Array> {
  const rng = new Rng(seed);
  const gauss = () => {
    const u = Math.max(rng.next(), 1e-12);
    return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * rng.next());
  };
  const out = new Map<string, Float32Array>();
  for (const [name, spec] of parameterSpecs(config)) {
    const size = spec.shape.reduce((a, b) => a * b, 1);
    const v = new Float32Array(size);
    if (typeof spec.init === 'number') v.fill(spec.init);
    else {
      const fanIn = spec.shape.length === 4 ? spec.shape[0]! * spec.shape[1]! * spec.shape[2]! : spec.shape[0]!;
      const std = spec.init === 'embed' ? 0.02 : Math.sqrt((spec.init === 'he' ? 2 : 1) / fanIn);
      for (let i = 0; i < size; i++) v[i] = gauss() * std;
    }
    out.set(name, v);
  }
  return out;
}

export class DualEncoder {
  readonly variables = new Map<string, tf.Variable>();
  readonly trainable: string[] = [];

  constructor(
    readonly config: ModelConfig,
    values: Map<string, Float32Array>,
  ) {
    for (const [name, spec] of parameterSpecs(config)) {
      const v = values.get(name);
      if (!v) throw new Error(`missing parameter ${name}`);
      const expected = spec.shape.reduce((a, b) => a * b, 1);
      if (v.length !== expected) throw new Error(`parameter ${name} has ${v.length} values, expected ${expected}`);
      this.variables.set(name, tf.variable(tf.tensor(v, spec.shape), spec.trainable));
      if (spec.trainable) this.trainable.push(name);
    }
  }

  static create(config: ModelConfig, seed = 0): DualEncoder {
    return new DualEncoder(config, initialValues(config, seed));
  }

  p(name: string): tf.Variable {
    const v = this.variables.get(name);
    if (!v) throw new Error(`no parameter ${name}`);
    return v;
  }

  get parameterCount(): number {
    let n = 0;
    for (const name of this.trainable) n += this.p(name).size;
    return n;
  }

  /** Current values (a copy), e.g. for checkpoints and export. */
  values(): Map<string, Float32Array> {
    const out = new Map<string, Float32Array>();
    for (const [name, v] of this.variables) out.set(name, Float32Array.from(v.dataSync() as Float32Array));
    return out;
  }

  setValues(values: Map<string, Float32Array>): void {
    for (const [name, v] of this.variables) {
      const nv = values.get(name);
      if (!nv || nv.length !== v.size) throw new Error(`checkpoint lacks ${name} or its shape differs`);
      tf.tidy(() => v.assign(tf.tensor(nv, v.shape)));
    }
  }

  logitScale(): tf.Scalar {
    return tf.exp(tf.clipByValue(this.p('logit_scale'), 0, Math.log(this.config.maxLogitScale))) as tf.Scalar;
  }

  /**
   * Batch normalisation. Training uses batch statistics and records them in `updates` for the caller
   * to fold into the running averages after the step; inference uses the running averages.
   */
  private batchNorm(x: tf.Tensor4D, name: string, ctx: ForwardContext): tf.Tensor4D {
    const gamma = this.p(`${name}.gamma`);
    const beta = this.p(`${name}.beta`);
    if (!ctx.training) {
      const scale = tf.mul(gamma, tf.rsqrt(tf.add(this.p(`${name}.var`), BN_EPS)));
      return tf.add(tf.mul(tf.sub(x, this.p(`${name}.mean`)), scale), beta) as tf.Tensor4D;
    }
    const { mean, variance } = tf.moments(x, [0, 1, 2]);
    ctx.updates?.push({ name, mean: tf.keep(mean), variance: tf.keep(variance) });
    return tf.add(tf.mul(tf.mul(tf.sub(x, mean), tf.rsqrt(tf.add(variance, BN_EPS))), gamma), beta) as tf.Tensor4D;
  }

  /** pixels [N, S, S, 1] (NHWC, normalised) -> image embeddings [N, D], L2-normalised. */
  encodeImage(pixels: tf.Tensor4D, ctx: ForwardContext = { training: false }): tf.Tensor2D {
    const { image } = this.config;
    const [n, size] = pixels.shape;
    // Stem: 2x2 space-to-depth (ONNX SpaceToDepth, same channel order), then a 3x3 conv at half resolution.
    const s2d = tf.reshape(tf.transpose(tf.reshape(pixels, [n, size / 2, 2, size / 2, 2, 1]), [0, 1, 3, 2, 4, 5]), [
      n,
      size / 2,
      size / 2,
      4,
    ]);
    let x = tf.relu(this.batchNorm(conv2dSame(s2d, this.p('image.stem.conv')), 'image.stem.bn', ctx)) as tf.Tensor4D;
    let c = image.stemWidth;
    image.stages.forEach((stage, s) => {
      x = tf.avgPool(x, 2, 2, 'valid');
      for (let b = 0; b < stage.depth; b++) {
        const p = `image.stage${s}.block${b}`;
        let y = tf.relu(this.batchNorm(conv2dSame(x, this.p(`${p}.conv1`)), `${p}.bn1`, ctx)) as tf.Tensor4D;
        y = this.batchNorm(conv2dSame(y, this.p(`${p}.conv2`)), `${p}.bn2`, ctx);
        const shortcut = c !== stage.width ? this.batchNorm(dense(x, this.p(`${p}.shortcut`)) as tf.Tensor4D, `${p}.shortcut_bn`, ctx) : x;
        x = tf.relu(tf.add(y, shortcut)) as tf.Tensor4D;
        c = stage.width;
      }
    });
    const pooled = tf.mean(x, [1, 2]);
    return l2Normalize(dense(pooled, this.p('image.proj.w'), this.p('image.proj.b'))) as tf.Tensor2D;
  }

  /** ids, mask: int32 [N, L] -> text embeddings [N, D], L2-normalised (masked mean pooling). */
  encodeText(ids: tf.Tensor2D, mask: tf.Tensor2D): tf.Tensor2D {
    const { text } = this.config;
    const [n, len] = ids.shape;
    const d = text.width;
    const heads = text.heads;
    const dh = d / heads;
    let x = tf.reshape(embeddingLookup(this.p('text.token_embed'), tf.reshape(ids, [-1])), [n, len, d]);
    x = tf.add(x, tf.slice(this.p('text.pos_embed'), [0, 0], [len, d]));
    const maskF = tf.cast(mask, 'float32');
    // Additive attention bias: 0 for tokens, -1e9 for padding; [N*H, 1, L].
    const bias = tf.reshape(tf.tile(tf.reshape(tf.mul(tf.sub(1, maskF), -1e9), [n, 1, 1, len]), [1, heads, 1, 1]), [n * heads, 1, len]);
    const splitHeads = (t: tf.Tensor) => tf.reshape(tf.transpose(tf.reshape(t, [n, len, heads, dh]), [0, 2, 1, 3]), [n * heads, len, dh]);
    for (let l = 0; l < text.layers; l++) {
      const p = `text.layer${l}`;
      const h = layerNorm(x, this.p(`${p}.ln1.gamma`), this.p(`${p}.ln1.beta`), LN_EPS);
      const qkv = dense(h, this.p(`${p}.qkv.w`), this.p(`${p}.qkv.b`));
      const [q, k, v] = tf.split(qkv, 3, 2);
      const scores = tf.add(tf.mul(batchMatMul(splitHeads(q!), tf.transpose(splitHeads(k!), [0, 2, 1])), 1 / Math.sqrt(dh)), bias);
      const attn = batchMatMul(tf.softmax(scores), splitHeads(v!));
      const merged = tf.reshape(tf.transpose(tf.reshape(attn, [n, heads, len, dh]), [0, 2, 1, 3]), [n, len, d]);
      x = tf.add(x, dense(merged, this.p(`${p}.out.w`), this.p(`${p}.out.b`)));
      const h2 = layerNorm(x, this.p(`${p}.ln2.gamma`), this.p(`${p}.ln2.beta`), LN_EPS);
      x = tf.add(x, dense(gelu(dense(h2, this.p(`${p}.fc1.w`), this.p(`${p}.fc1.b`))), this.p(`${p}.fc2.w`), this.p(`${p}.fc2.b`)));
    }
    x = layerNorm(x, this.p('text.ln_final.gamma'), this.p('text.ln_final.beta'), LN_EPS);
    const m = tf.reshape(maskF, [n, len, 1]);
    const pooled = tf.div(tf.sum(tf.mul(x, m), 1), tf.maximum(tf.sum(m, 1), 1));
    return l2Normalize(dense(pooled, this.p('text.proj.w'), this.p('text.proj.b'))) as tf.Tensor2D;
  }

  /** Names of the BatchNorm layers, in forward order (the order `encodeImage` records their statistics). */
  batchNormLayers(): string[] {
    return [...this.variables.keys()].filter((n) => n.endsWith('.mean') && n.startsWith('image.')).map((n) => n.slice(0, -'.mean'.length));
  }

  /** Fold the batch statistics recorded during a training step into the running averages. */
  applyBatchNormUpdates(updates: BatchNormUpdate[]): void {
    tf.tidy(() => {
      for (const u of updates) {
        const mean = this.p(`${u.name}.mean`);
        const variance = this.p(`${u.name}.var`);
        mean.assign(tf.add(tf.mul(mean, 1 - BN_MOMENTUM), tf.mul(u.mean, BN_MOMENTUM)));
        variance.assign(tf.add(tf.mul(variance, 1 - BN_MOMENTUM), tf.mul(u.variance, BN_MOMENTUM)));
      }
    });
    for (const u of updates) tf.dispose([u.mean, u.variance]);
  }

  dispose(): void {
    for (const v of this.variables.values()) v.dispose();
    this.variables.clear();
  }
}

export interface BatchNormUpdate {
  name: string;
  mean: tf.Tensor;
  variance: tf.Tensor;
}

export interface ForwardContext {
  training: boolean;
  updates?: BatchNormUpdate[];
}
