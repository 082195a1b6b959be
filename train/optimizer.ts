/** AdamW (decoupled weight decay), global-norm gradient clipping and a warmup + cosine learning-rate schedule. */
import * as tf from '@tensorflow/tfjs';

export interface AdamWOptions {
  beta1: number;
  beta2: number;
  eps: number;
  weightDecay: number;
}

export const DEFAULT_ADAMW: AdamWOptions = { beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0.05 };

/** Linear warmup to `peak`, then cosine decay to `peak * minRatio` at `total` steps. */
export function learningRate(step: number, peak: number, warmup: number, total: number, minRatio = 0.05): number {
  if (step < warmup) return (peak * (step + 1)) / warmup;
  const t = Math.min(1, (step - warmup) / Math.max(1, total - warmup));
  return peak * (minRatio + (1 - minRatio) * 0.5 * (1 + Math.cos(Math.PI * t)));
}

/** No decay for biases, norms, embeddings of positions and the logit scale (1-D and scalar tensors). */
export function decays(name: string, shape: number[]): boolean {
  return shape.length >= 2 && !name.endsWith('pos_embed');
}

export class AdamW {
  readonly m = new Map<string, tf.Variable>();
  readonly v = new Map<string, tf.Variable>();
  step = 0;

  constructor(
    private readonly params: Map<string, tf.Variable>,
    readonly names: string[],
    readonly options: AdamWOptions = DEFAULT_ADAMW,
  ) {
    for (const n of names) {
      const p = params.get(n)!;
      this.m.set(n, tf.variable(tf.zerosLike(p), false));
      this.v.set(n, tf.variable(tf.zerosLike(p), false));
    }
  }

  /** Clip gradients to `maxNorm` (global L2) and apply one update; returns the norm before clipping. */
  apply(grads: Record<string, tf.Tensor>, lr: number, maxNorm: number): number {
    const norm = tf.tidy(() => tf.sqrt(tf.addN(this.names.map((n) => tf.sum(tf.square(grads[n]!))))).dataSync()[0]!);
    const clip = Number.isFinite(norm) && norm > maxNorm ? maxNorm / norm : 1;
    this.step++;
    const { beta1, beta2, eps, weightDecay } = this.options;
    const c1 = 1 - beta1 ** this.step;
    const c2 = 1 - beta2 ** this.step;
    tf.tidy(() => {
      for (const n of this.names) {
        const p = this.params.get(n)!;
        const g = clip === 1 ? grads[n]! : tf.mul(grads[n]!, clip);
        const m = this.m.get(n)!;
        const v = this.v.get(n)!;
        m.assign(tf.add(tf.mul(m, beta1), tf.mul(g, 1 - beta1)));
        v.assign(tf.add(tf.mul(v, beta2), tf.mul(tf.square(g), 1 - beta2)));
        let update = tf.div(tf.div(m, c1), tf.add(tf.sqrt(tf.div(v, c2)), eps));
        if (weightDecay > 0 && decays(n, p.shape)) update = tf.add(update, tf.mul(p, weightDecay));
        p.assign(tf.sub(p, tf.mul(update, lr)));
      }
    });
    return norm;
  }

  /** Moments as plain arrays, for checkpoints. */
  state(): { step: number; m: Map<string, Float32Array>; v: Map<string, Float32Array> } {
    const copy = (src: Map<string, tf.Variable>) => new Map([...src].map(([k, t]) => [k, Float32Array.from(t.dataSync() as Float32Array)]));
    return { step: this.step, m: copy(this.m), v: copy(this.v) };
  }

  load(state: { step: number; m: Map<string, Float32Array>; v: Map<string, Float32Array> }): void {
    this.step = state.step;
    for (const n of this.names) {
      const m = state.m.get(n);
      const v = state.v.get(n);
      if (!m || !v) throw new Error(`optimizer state lacks ${n}`);
      tf.tidy(() => {
        this.m.get(n)!.assign(tf.tensor(m, this.m.get(n)!.shape));
        this.v.get(n)!.assign(tf.tensor(v, this.v.get(n)!.shape));
      });
    }
  }

  dispose(): void {
    for (const t of [...this.m.values(), ...this.v.values()]) t.dispose();
  }
}
