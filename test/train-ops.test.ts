// The wasm-friendly ops and the losses against references: tf.grad of the plain tfjs ops, and values by hand.
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs';
import { selectBackend } from '../train/backend.ts';
import { batchMatMul, conv2dSame, embeddingLookup, matMul2d } from '../train/ops.ts';
import { infoNceLoss, semanticLoss, semanticTargets, softCrossEntropy } from '../train/loss.ts';
import { Rng } from '../core/util/index.ts';

before(async () => {
  await selectBackend('wasm');
});

function seeded(shape: number[], seed: number): tf.Tensor {
  const rng = new Rng(seed);
  const n = shape.reduce((a, b) => a * b, 1);
  return tf.tensor(
    Float32Array.from({ length: n }, () => rng.uniform(-1, 1)),
    shape,
  );
}

function maxAbsDiff(a: tf.Tensor, b: tf.Tensor): number {
  return tf.tidy(() => tf.max(tf.abs(tf.sub(a, b))).dataSync()[0]!);
}

test('conv2dSame: value and both gradients match tf.conv2d (3x3 and 1x1, several channel counts)', () => {
  for (const [k, cin, cout] of [
    [3, 1, 4],
    [3, 4, 6],
    [1, 5, 3],
    [3, 8, 8],
  ] as const) {
    const x = seeded([2, 7, 6, cin], k * 10 + cin);
    const w = seeded([k, k, cin, cout], k * 100 + cout);
    const up = seeded([2, 7, 6, cout], 7);
    const ref = tf.grads((a: tf.Tensor, b: tf.Tensor) => tf.sum(tf.mul(tf.conv2d(a as tf.Tensor4D, b as tf.Tensor4D, 1, 'same'), up)));
    const ours = tf.grads((a: tf.Tensor, b: tf.Tensor) => tf.sum(tf.mul(conv2dSame(a, b), up)));
    // the wasm backend has no Conv2DBackpropFilter: take the reference gradient on the cpu backend
    const [rx, rw] = withBackend('cpu', () => ref([x, w]).map((t) => tf.keep(tf.tensor(t.dataSync(), t.shape))));
    const [ox, ow] = ours([x, w]);
    assert.ok(maxAbsDiff(conv2dSame(x, w), tf.conv2d(x as tf.Tensor4D, w as tf.Tensor4D, 1, 'same')) < 1e-5);
    assert.ok(maxAbsDiff(ox!, rx!) < 1e-4, `dx k=${k} cin=${cin}`);
    assert.ok(maxAbsDiff(ow!, rw!) < 1e-4, `dw k=${k} cin=${cin}`);
  }
});

function withBackend<T>(name: string, f: () => T): T {
  const prev = tf.getBackend();
  tf.setBackend(name);
  try {
    return f();
  } finally {
    tf.setBackend(prev);
  }
}

test('matMul2d and batchMatMul: gradients equal tf.matMul gradients', () => {
  const a = seeded([5, 4], 1);
  const b = seeded([4, 3], 2);
  const [ra, rb] = tf.grads((x: tf.Tensor, y: tf.Tensor) => tf.sum(tf.square(tf.matMul(x as tf.Tensor2D, y as tf.Tensor2D))))([a, b]);
  const [oa, ob] = tf.grads((x: tf.Tensor, y: tf.Tensor) => tf.sum(tf.square(matMul2d(x, y))))([a, b]);
  assert.ok(maxAbsDiff(oa!, ra!) < 1e-5 && maxAbsDiff(ob!, rb!) < 1e-5);
  const a3 = seeded([3, 5, 4], 3);
  const b3 = seeded([3, 4, 2], 4);
  const [ra3, rb3] = tf.grads((x: tf.Tensor, y: tf.Tensor) => tf.sum(tf.square(tf.matMul(x as tf.Tensor3D, y as tf.Tensor3D))))([a3, b3]);
  const [oa3, ob3] = tf.grads((x: tf.Tensor, y: tf.Tensor) => tf.sum(tf.square(batchMatMul(x, y))))([a3, b3]);
  assert.ok(maxAbsDiff(oa3!, ra3!) < 1e-5 && maxAbsDiff(ob3!, rb3!) < 1e-5);
});

test('embeddingLookup: gathers rows and scatters gradients, repeated ids accumulating', () => {
  const table = seeded([6, 3], 5);
  const ids = tf.tensor1d([1, 4, 1, 0], 'int32');
  assert.ok(maxAbsDiff(embeddingLookup(table, ids), tf.gather(table, ids)) < 1e-7);
  const up = seeded([4, 3], 6);
  const g = tf.grad((t: tf.Tensor) => tf.sum(tf.mul(embeddingLookup(t, ids), up)))(table);
  const u = up.arraySync() as number[][];
  const expected = Array.from({ length: 6 }, () => [0, 0, 0]);
  [1, 4, 1, 0].forEach((row, i) => u[i]!.forEach((v, d) => (expected[row]![d]! += v)));
  assert.ok(maxAbsDiff(g, tf.tensor(expected)) < 1e-6);
});

test('semantic loss equals the MedCLIP formula computed by hand on a 2x2 batch', () => {
  // image 0: Pneumonia; image 1: No Finding. sentence 0: Pneumonia; sentence 1: Pneumonia + Lung Opacity.
  const imgLabels = tf.tensor2d([
    [0, 1, 0],
    [1, 0, 0],
  ]);
  const txtLabels = tf.tensor2d([
    [0, 1, 0],
    [0, 1, 1],
  ]);
  const logits = tf.tensor2d([
    [2, 1],
    [0.5, -1],
  ]);
  // label similarity [[1,1],[0,0]]: image rows -> softmax [[.5,.5],[.5,.5]]; text rows (transpose [[1,0],[1,0]]) -> softmax [[e/(e+1), 1/(e+1)] x2]
  const lse = (r: number[]) => Math.log(r.reduce((s, v) => s + Math.exp(v), 0));
  const L = [
    [2, 1],
    [0.5, -1],
  ];
  const imgSide = -(0.5 * (2 - lse(L[0]!)) + 0.5 * (1 - lse(L[0]!)) + 0.5 * (0.5 - lse(L[1]!)) + 0.5 * (-1 - lse(L[1]!))) / 2;
  const p = Math.E / (Math.E + 1);
  const cols = [
    [2, 0.5],
    [1, -1],
  ];
  const txtSide =
    -(p * (2 - lse(cols[0]!)) + (1 - p) * (0.5 - lse(cols[0]!)) + p * (1 - lse(cols[1]!)) + (1 - p) * (-1 - lse(cols[1]!))) / 2;
  const got = semanticLoss(logits, imgLabels, txtLabels).dataSync()[0]!;
  assert.ok(Math.abs(got - (imgSide + txtSide) / 2) < 1e-5, `${got} vs ${(imgSide + txtSide) / 2}`);
  const [ti] = semanticTargets(imgLabels, txtLabels);
  assert.deepEqual(
    Array.from(ti.dataSync()).map((v) => Math.round(v * 1000) / 1000),
    [0.5, 0.5, 0.5, 0.5],
  );
});

test('InfoNCE uses one-hot diagonal targets; semantic loss with identity labels reduces to it in the limit', () => {
  const logits = tf.tensor2d([
    [3, 0, -1],
    [0.2, 1, 0],
    [0, 0, 2],
  ]);
  const L = logits.arraySync() as number[][];
  const lse = (r: number[]) => Math.log(r.reduce((s, v) => s + Math.exp(v), 0));
  const rows = L.reduce((s, r, i) => s + lse(r) - r[i]!, 0) / 3;
  const colsM = L.map((_, j) => L.map((r) => r[j]!));
  const cols = colsM.reduce((s, c, i) => s + lse(c) - c[i]!, 0) / 3;
  assert.ok(Math.abs(infoNceLoss(logits).dataSync()[0]! - (rows + cols) / 2) < 1e-5);
  const eye = tf.eye(3) as tf.Tensor2D;
  const sharp = semanticLoss(logits, eye, eye, 0.01).dataSync()[0]!;
  assert.ok(Math.abs(sharp - infoNceLoss(logits).dataSync()[0]!) < 1e-4);
  assert.ok(softCrossEntropy(logits, eye).dataSync()[0]! > 0);
});

test('semantic loss does not push apart an image and a sentence with the same finding (no false negative)', () => {
  // two Pneumonia images, two Pneumonia sentences: every pair is a positive under semantic targets
  const labels = tf.tensor2d([
    [1, 0],
    [1, 0],
  ]);
  const aligned = tf.tensor2d([
    [5, 5],
    [5, 5],
  ]);
  const split = tf.tensor2d([
    [5, -5],
    [-5, 5],
  ]);
  // InfoNCE prefers the diagonal-only solution; the semantic loss prefers treating both as matches.
  assert.ok(infoNceLoss(split).dataSync()[0]! < infoNceLoss(aligned).dataSync()[0]!);
  assert.ok(semanticLoss(aligned, labels, labels).dataSync()[0]! < semanticLoss(split, labels, labels).dataSync()[0]!);
});

test('gradient check: the dual encoder analytic gradients match central finite differences', async () => {
  const { parseModelConfig } = await import('../train/config.ts');
  const { DualEncoder } = await import('../train/model.ts');
  const { similarityLogits } = await import('../train/loss.ts');
  const { TINY_TEST_CONFIG } = await import('./helpers/tiny-run.ts');
  const config = parseModelConfig({ ...TINY_TEST_CONFIG, image: { ...TINY_TEST_CONFIG.image, size: 16 } });
  const model = DualEncoder.create(config, 11);
  const B = 4;
  const L = 8;
  const pixels = seeded([B, 16, 16, 1], 21) as tf.Tensor4D;
  const rng = new Rng(5);
  const ids = tf.tensor2d(
    Int32Array.from({ length: B * L }, () => 5 + rng.int(300)),
    [B, L],
    'int32',
  );
  const mask = tf.tensor2d(
    Int32Array.from({ length: B * L }, (_, i) => (i % L < 3 + (Math.floor(i / L) % 4) ? 1 : 0)),
    [B, L],
    'int32',
  );
  const imgLabels = tf.tensor2d([
    [1, 0, 1],
    [0, 1, 0],
    [1, 1, 0],
    [0, 0, 1],
  ]);
  const txtLabels = tf.tensor2d([
    [1, 0, 0],
    [0, 1, 1],
    [1, 0, 1],
    [0, 1, 0],
  ]);
  // Training-mode forward (BatchNorm on batch statistics), semantic loss.
  const loss = () =>
    semanticLoss(
      similarityLogits(model.encodeImage(pixels, { training: true, updates: [] }), model.encodeText(ids, mask), model.logitScale()),
      imgLabels,
      txtLabels,
    );
  const names = [
    'image.stem.conv',
    'image.stage0.block0.conv1',
    'image.stage0.block0.shortcut',
    'image.stage1.block0.conv2',
    'image.proj.w',
    'text.token_embed',
    'text.layer0.qkv.w',
    'text.layer0.fc1.w',
    'text.ln_final.gamma',
    'logit_scale',
  ];
  const vars = names.map((n) => model.p(n));
  const { grads } = tf.variableGrads(() => loss() as tf.Scalar, vars);
  const eps = 2e-3;
  let checked = 0;
  for (const name of names) {
    const v = model.p(name);
    const g = grads[v.name]!.dataSync();
    const values = Float32Array.from(v.dataSync());
    // the coordinates with the largest gradients (token rows that occur, etc.), plus a random one
    const order = Array.from(g.keys()).sort((a, b) => Math.abs(g[b]!) - Math.abs(g[a]!));
    for (const i of new Set([order[0]!, order[1 % order.length]!, order[rng.int(Math.min(order.length, 50))]!])) {
      const at = (delta: number) => {
        const w = values.slice();
        w[i] = w[i]! + delta;
        v.assign(tf.tensor(w, v.shape));
        return tf.tidy(() => loss().dataSync()[0]!);
      };
      // Richardson extrapolation of two central differences: O(eps^4) truncation error
      const central = (h: number) => (at(h) - at(-h)) / (2 * h);
      const fd = (4 * central(eps / 2) - central(eps)) / 3;
      v.assign(tf.tensor(values, v.shape));
      assert.ok(Math.abs(fd - g[i]!) <= 2e-3 + 0.05 * Math.abs(g[i]!), `${name}[${i}]: analytic ${g[i]} vs finite difference ${fd}`);
      checked++;
    }
  }
  assert.ok(checked >= names.length * 2);
  model.dispose();
});

test('augmentation: off = the exact pixels; on = a bounded, seeded, label-preserving jitter of the same image', async () => {
  const { augmentInto, DEFAULT_AUGMENT } = await import('../train/augment.ts');
  const size = 32;
  const src = Uint8Array.from({ length: size * size }, (_, i) => (i * 13) % 256);
  const plain = new Float32Array(size * size);
  augmentInto(src, size, plain, size, { mean: 0, std: 1 / 255 }, undefined);
  assert.deepEqual(Array.from(plain), Array.from(src));
  // a larger cached square resized down: a smooth ramp stays a ramp
  const ramp = Uint8Array.from({ length: 36 * 36 }, (_, i) => (i % 36) * 7);
  const small = new Float32Array(size * size);
  augmentInto(ramp, 36, small, size, { mean: 0, std: 1 / 255 }, undefined);
  for (let u = 1; u < size; u++) assert.ok(small[u]! >= small[u - 1]!, 'monotone along the row');
  const a = new Float32Array(size * size);
  const b = new Float32Array(size * size);
  augmentInto(src, size, a, size, { mean: 0.5, std: 0.25 }, new Rng(9), DEFAULT_AUGMENT);
  augmentInto(src, size, b, size, { mean: 0.5, std: 0.25 }, new Rng(9), DEFAULT_AUGMENT);
  assert.deepEqual(a, b, 'seeded');
  assert.ok(
    a.every((v) => v >= -2 - 1e-6 && v <= 2 + 1e-6),
    'normalised range of [0, 255]',
  );
  assert.ok(
    a.some((v, i) => Math.abs(v - (src[i]! / 255 - 0.5) / 0.25) > 0.01),
    'augmented differs',
  );
});
