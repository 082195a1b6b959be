/** Small vector maths shared by serving (core/model/medclip-model.ts) and training's validation (train/zeroshot.ts). */

export function dot(a: Float32Array, b: Float32Array): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i]! * b[i]!;
  return s;
}

/** The mean of the vectors, L2-normalised (a class's embedding from its prompts' embeddings). */
export function meanNormalized(vectors: Float32Array[]): Float32Array {
  const d = vectors[0]!.length;
  const out = new Float32Array(d);
  for (const v of vectors) for (let i = 0; i < d; i++) out[i]! += v[i]!;
  const norm = Math.sqrt(dot(out, out)) || 1;
  for (let i = 0; i < d; i++) out[i]! /= norm;
  return out;
}

/** Softmax over classes of `scale * cos(image, class)` for L2-normalised embeddings (max-subtracted: no overflow). */
export function classSoftmax(image: Float32Array, classEmbeds: Float32Array[], scale: number): number[] {
  const logits = classEmbeds.map((c) => dot(c, image) * scale);
  const max = Math.max(...logits);
  const e = logits.map((l) => Math.exp(l - max));
  const z = e.reduce((a, b) => a + b, 0);
  return e.map((v) => v / z);
}
