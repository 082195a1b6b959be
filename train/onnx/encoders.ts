/**
 * ONNX graphs (opset 17) of the two encoders in `train/model.ts`, from trained values.
 * Image: NCHW input; BatchNorm folded into the preceding conv (inference statistics); 3x3 'same' convs at
 * stride 1 use symmetric pads [1,1,1,1], exactly tfjs's 'same' (downsampling is average pooling, so the
 * asymmetric stride-2 'same' padding trap never arises). Text: int64 ids/mask, LayerNormalization (opset 17),
 * GELU written with Erf (no Gelu op before opset 20).
 */
import type { ModelConfig } from '../config.ts';
import { BN_EPS, LN_EPS } from '../model.ts';
import { ELEM, GraphBuilder } from './graph.ts';

export const OPSET = 17;

type Values = Map<string, Float32Array>;

function get(values: Values, name: string): Float32Array {
  const v = values.get(name);
  if (!v) throw new Error(`export: weights lack ${name}`);
  return v;
}

/** tfjs conv kernel [kh, kw, cin, cout] with a folded BatchNorm -> ONNX weight [cout, cin, kh, kw] and bias. */
function foldConvBn(
  kernel: Float32Array,
  k: number,
  cin: number,
  cout: number,
  values: Values,
  bn: string,
): { w: Float32Array; b: Float32Array } {
  const gamma = get(values, `${bn}.gamma`);
  const beta = get(values, `${bn}.beta`);
  const mean = get(values, `${bn}.mean`);
  const variance = get(values, `${bn}.var`);
  const w = new Float32Array(cout * cin * k * k);
  const b = new Float32Array(cout);
  for (let co = 0; co < cout; co++) {
    const s = gamma[co]! / Math.sqrt(variance[co]! + BN_EPS);
    b[co] = beta[co]! - mean[co]! * s;
    for (let ci = 0; ci < cin; ci++)
      for (let i = 0; i < k; i++)
        for (let j = 0; j < k; j++) w[((co * cin + ci) * k + i) * k + j] = kernel[((i * k + j) * cin + ci) * cout + co]! * s;
  }
  return { w, b };
}

function l2Normalize(g: GraphBuilder, x: string, out: string): void {
  const norm = g.op('ReduceL2', [x], { axes: { ints: [-1] }, keepdims: { i: 1 } });
  const safe = g.op('Max', [norm, g.float([1e-12], [])]);
  g.node('Div', [x, safe], {}, [out]);
}

export function imageEncoderOnnx(config: ModelConfig, values: Values): Uint8Array {
  const { image, embedDim } = config;
  const g = new GraphBuilder('image_encoder');
  const input = g.input('pixel_values', ELEM.float, ['batch', 1, image.size, image.size]);
  const conv = (x: string, kernelName: string, bn: string, k: number, cin: number, cout: number): string => {
    const { w, b } = foldConvBn(get(values, kernelName), k, cin, cout, values, bn);
    const p = (k - 1) / 2;
    return g.op('Conv', [x, g.initializer(kernelName, w, [cout, cin, k, k]), g.initializer(`${kernelName}.bias`, b, [cout])], {
      kernel_shape: { ints: [k, k] },
      pads: { ints: [p, p, p, p] },
      strides: { ints: [1, 1] },
    });
  };
  let x = g.op('SpaceToDepth', [input], { blocksize: { i: 2 } });
  x = g.op('Relu', [conv(x, 'image.stem.conv', 'image.stem.bn', 3, 4, image.stemWidth)]);
  let c = image.stemWidth;
  image.stages.forEach((stage, s) => {
    x = g.op('AveragePool', [x], { kernel_shape: { ints: [2, 2] }, strides: { ints: [2, 2] } });
    for (let b = 0; b < stage.depth; b++) {
      const p = `image.stage${s}.block${b}`;
      let y = g.op('Relu', [conv(x, `${p}.conv1`, `${p}.bn1`, 3, c, stage.width)]);
      y = conv(y, `${p}.conv2`, `${p}.bn2`, 3, stage.width, stage.width);
      // The shortcut is a dense layer over channels in tfjs: a 1x1 conv here ([cin, cout] = [1,1,cin,cout] layout).
      const shortcut = c !== stage.width ? conv(x, `${p}.shortcut`, `${p}.shortcut_bn`, 1, c, stage.width) : x;
      x = g.op('Relu', [g.op('Add', [y, shortcut])]);
      c = stage.width;
    }
  });
  const pooled = g.op('Flatten', [g.op('GlobalAveragePool', [x])], { axis: { i: 1 } });
  const projected = g.op('Add', [
    g.op('MatMul', [pooled, g.initializer('image.proj.w', get(values, 'image.proj.w'), [c, embedDim])]),
    g.initializer('image.proj.b', get(values, 'image.proj.b'), [embedDim]),
  ]);
  l2Normalize(g, projected, 'image_embeds');
  g.output('image_embeds', ELEM.float, ['batch', embedDim]);
  return g.toBytes(OPSET, `medclip-search image encoder "${config.name}"`);
}

export function textEncoderOnnx(config: ModelConfig, values: Values): Uint8Array {
  const { text, embedDim } = config;
  const d = text.width;
  const heads = text.heads;
  const dh = d / heads;
  const g = new GraphBuilder('text_encoder');
  const ids = g.input('input_ids', ELEM.int64, ['batch', 'sequence']);
  const mask = g.input('attention_mask', ELEM.int64, ['batch', 'sequence']);
  const w = (name: string, dims: number[]) => g.initializer(name, get(values, name), dims);
  const dense = (x: string, name: string, inDim: number, outDim: number) =>
    g.op('Add', [g.op('MatMul', [x, w(`${name}.w`, [inDim, outDim])]), w(`${name}.b`, [outDim])]);
  const layerNorm = (x: string, name: string) =>
    g.op('LayerNormalization', [x, w(`${name}.gamma`, [d]), w(`${name}.beta`, [d])], { axis: { i: -1 }, epsilon: { f: LN_EPS } });

  let x = g.op('Gather', [w('text.token_embed', [text.vocabSize, d]), ids], { axis: { i: 0 } });
  const seqLen = g.op('Gather', [g.op('Shape', [ids]), g.int64([1])], { axis: { i: 0 } });
  const positions = g.op('Slice', [w('text.pos_embed', [text.maxLength, d]), g.int64([0]), seqLen, g.int64([0])]);
  x = g.op('Add', [x, positions]);
  const maskF = g.op('Cast', [mask], { to: { i: ELEM.float } });
  // Additive attention bias [N, 1, 1, L]: 0 for tokens, -1e9 for padding.
  const bias = g.op('Unsqueeze', [g.op('Mul', [g.op('Sub', [g.float([1], []), maskF]), g.float([-1e9], [])]), g.int64([1, 2])]);
  const headShape = g.int64([0, 0, heads, dh]);
  const mergeShape = g.int64([0, 0, d]);
  const scale = g.float([1 / Math.sqrt(dh)], []);
  const half = g.float([0.5], []);
  const one = g.float([1], []);
  const invSqrt2 = g.float([Math.SQRT1_2], []);
  for (let l = 0; l < text.layers; l++) {
    const p = `text.layer${l}`;
    const h = layerNorm(x, `${p}.ln1`);
    const qkv = dense(h, `${p}.qkv`, d, 3 * d);
    const [q, k, v] = g.node('Split', [qkv], { axis: { i: 2 } }, 3) as [string, string, string];
    const heads4 = (t: string) => g.op('Transpose', [g.op('Reshape', [t, headShape])], { perm: { ints: [0, 2, 1, 3] } });
    const kT = g.op('Transpose', [g.op('Reshape', [k, headShape])], { perm: { ints: [0, 2, 3, 1] } });
    const scores = g.op('Add', [g.op('Mul', [g.op('MatMul', [heads4(q), kT]), scale]), bias]);
    const attn = g.op('MatMul', [g.op('Softmax', [scores], { axis: { i: -1 } }), heads4(v)]);
    const merged = g.op('Reshape', [g.op('Transpose', [attn], { perm: { ints: [0, 2, 1, 3] } }), mergeShape]);
    x = g.op('Add', [x, dense(merged, `${p}.out`, d, d)]);
    const h2 = layerNorm(x, `${p}.ln2`);
    const f = dense(h2, `${p}.fc1`, d, text.mlpRatio * d);
    const gelu = g.op('Mul', [g.op('Mul', [f, half]), g.op('Add', [one, g.op('Erf', [g.op('Mul', [f, invSqrt2])])])]);
    x = g.op('Add', [x, dense(gelu, `${p}.fc2`, text.mlpRatio * d, d)]);
  }
  x = layerNorm(x, 'text.ln_final');
  const m = g.op('Unsqueeze', [maskF, g.int64([2])]);
  const summed = g.op('ReduceSum', [g.op('Mul', [x, m]), g.int64([1])], { keepdims: { i: 0 } });
  const count = g.op('Max', [g.op('ReduceSum', [m, g.int64([1])], { keepdims: { i: 0 } }), one]);
  const pooled = g.op('Div', [summed, count]);
  l2Normalize(g, dense(pooled, 'text.proj', d, embedDim), 'text_embeds');
  g.output('text_embeds', ELEM.float, ['batch', embedDim]);
  return g.toBytes(OPSET, `medclip-search text encoder "${config.name}"`);
}
