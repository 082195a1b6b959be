// Bring your own encoder: a CLIP-style dual encoder made here (a 3-channel image tower fed per-channel normalised
// pixels, a text tower over a byte-level BPE tokenizer with its own start/end tokens, both written as ONNX with the
// project's graph builder) goes through `medclip import-model`, index, search and classify; malformed ones are refused
// in one line.
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { GraphBuilder, ELEM } from '../train/onnx/graph.ts';
import { Rng } from '../core/util/index.ts';
import { imageToTensor, parseImageSpec } from '../core/image/index.ts';
import { MedClipModel, TextTokenizer } from '../core/model/index.ts';
import { IndexBundle } from '../core/bundle/index.ts';
import { SearchService } from '../core/search/index.ts';
import { buildIndex } from '../index-builder/build.ts';
import { DATA, IMAGES_CSV, IU_REPORTS, outputDir, REPO } from './helpers/paths.ts';
import { medclip } from './helpers/cli.ts';

const dir = outputDir('import-model');
const SIZE = 32;
const DIM = 16;
const MEAN = [0.48145466, 0.4578275, 0.40821073];
const STD = [0.26862954, 0.26130258, 0.27577711];
const XRAY = join(REPO, 'samples/corpus/images/nih/00001303_001.png');

/** A byte-level BPE tokenizer.json in CLIP's style: 256 byte symbols, a few merges, <|startoftext|> and <|endoftext|>. */
function bpeTokenizer(): { json: object; vocabSize: number } {
  const bytes: number[] = [];
  for (let i = 33; i <= 126; i++) bytes.push(i);
  for (let i = 161; i <= 172; i++) bytes.push(i);
  for (let i = 174; i <= 255; i++) bytes.push(i);
  const chars = [...bytes];
  let extra = 0;
  for (let b = 0; b < 256; b++) if (!bytes.includes(b)) chars.push(256 + extra++);
  const vocab: Record<string, number> = {};
  chars.forEach((c, i) => {
    vocab[String.fromCharCode(c)] = i;
  });
  const merges = [
    ['e', 'f'],
    ['ef', 'f'],
    ['u', 's'],
    ['p', 'l'],
    ['i', 'o'],
    ['io', 'n'],
  ];
  for (const [a, b] of merges) vocab[a! + b!] = Object.keys(vocab).length;
  const start = Object.keys(vocab).length;
  const special = (content: string, id: number) => ({
    id,
    content,
    single_word: false,
    lstrip: false,
    rstrip: false,
    normalized: false,
    special: true,
  });
  const json = {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: [special('<|startoftext|>', start), special('<|endoftext|>', start + 1)],
    normalizer: { type: 'Lowercase' },
    pre_tokenizer: { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true },
    post_processor: {
      type: 'TemplateProcessing',
      single: [
        { SpecialToken: { id: '<|startoftext|>', type_id: 0 } },
        { Sequence: { id: 'A', type_id: 0 } },
        { SpecialToken: { id: '<|endoftext|>', type_id: 0 } },
      ],
      pair: [{ Sequence: { id: 'A', type_id: 0 } }],
      special_tokens: {
        '<|startoftext|>': { id: '<|startoftext|>', ids: [start], tokens: ['<|startoftext|>'] },
        '<|endoftext|>': { id: '<|endoftext|>', ids: [start + 1], tokens: ['<|endoftext|>'] },
      },
    },
    decoder: { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true },
    model: {
      type: 'BPE',
      dropout: null,
      unk_token: null,
      continuing_subword_prefix: null,
      end_of_word_suffix: null,
      fuse_unk: false,
      byte_fallback: false,
      vocab,
      merges: merges.map(([a, b]) => `${a} ${b}`),
    },
  };
  return { json, vocabSize: start + 2 };
}

const random = (rng: Rng, n: number) => Float32Array.from({ length: n }, () => rng.next() * 2 - 1);

/** Image tower: pixel_values [N, 3, S, S] -> flatten -> linear -> image_embeds [N, D] (optionally broken on purpose). */
function imageTower(o: { input?: string; dim?: number; rank3?: boolean; nan?: boolean } = {}): Uint8Array {
  const g = new GraphBuilder('image');
  const x = g.input(o.input ?? 'pixel_values', ELEM.float, ['N', 3, SIZE, SIZE]);
  const flat = g.op('Flatten', [x], { axis: { i: 1 } });
  const dim = o.dim ?? DIM;
  let y = g.op('MatMul', [flat, g.float(random(new Rng(7), 3 * SIZE * SIZE * dim), [3 * SIZE * SIZE, dim], 'w')]);
  if (o.nan) y = g.op('Mul', [y, g.float([Number.NaN], [1], 'nan')]);
  if (o.rank3) y = g.op('Unsqueeze', [y, g.int64([1])]);
  // named as CLIP exports name it
  const embeds = g.node('Identity', [y], {}, ['image_embeds'])[0]!;
  g.output(embeds, ELEM.float, o.rank3 ? ['N', 1, dim] : ['N', dim]);
  return g.toBytes(13);
}

/** Text tower: input_ids, attention_mask [N, L] -> embedding lookup -> masked sum -> text_embeds [N, D]. */
function textTower(vocabSize: number, dim = DIM): Uint8Array {
  const g = new GraphBuilder('text');
  const ids = g.input('input_ids', ELEM.int64, ['N', 'L']);
  const mask = g.input('attention_mask', ELEM.int64, ['N', 'L']);
  const table = g.float(random(new Rng(11), vocabSize * dim), [vocabSize, dim], 'embedding');
  const tokens = g.op('Gather', [table, ids]);
  const m = g.op('Unsqueeze', [g.op('Cast', [mask], { to: { i: ELEM.float } }), g.int64([2])]);
  const pooled = g.node('ReduceSum', [g.op('Mul', [tokens, m]), g.int64([1])], { keepdims: { i: 0 } }, ['text_embeds'])[0]!;
  g.output(pooled, ELEM.float, ['N', dim]);
  return g.toBytes(13);
}

let files: { image: string; text: string; tokenizer: string };
let vocabSize: number;

before(() => {
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  const tok = bpeTokenizer();
  vocabSize = tok.vocabSize;
  files = { image: join(dir, 'image.onnx'), text: join(dir, 'text.onnx'), tokenizer: join(dir, 'tokenizer.json') };
  writeFileSync(files.image, imageTower());
  writeFileSync(files.text, textTower(vocabSize));
  writeFileSync(files.tokenizer, JSON.stringify(tok.json));
});

const importArgs = (out: string, image = files.image, text = files.text) => [
  'import-model',
  '--image-onnx',
  image,
  '--text-onnx',
  text,
  '--tokenizer',
  files.tokenizer,
  '--out',
  out,
  '--size',
  String(SIZE),
  '--channels',
  '3',
  '--mean',
  MEAN.join(','),
  '--std',
  STD.join(','),
  '--max-length',
  '24',
];

test('3 channels: the grey X-ray replicated into R, G and B, each normalised with its own mean and std', async () => {
  const spec = parseImageSpec({ size: SIZE, channels: 3, mean: MEAN, std: STD, resize: 'center-crop', interpolation: 'bicubic' });
  const t = await imageToTensor(readFileSync(XRAY), spec);
  assert.deepEqual(t.dims, [3, SIZE, SIZE]);
  const area = SIZE * SIZE;
  for (const i of [0, 100, area - 1]) {
    const grey = t.data[i]! * STD[0]! + MEAN[0]!; // back to [0, 1]
    for (let c = 1; c < 3; c++)
      assert.ok(Math.abs(t.data[c * area + i]! * STD[c]! + MEAN[c]! - grey) < 1e-5, `channel ${c} is the same grey`);
  }
  assert.throws(() => parseImageSpec({ size: SIZE, channels: 2, mean: 0.5, std: 0.5 }), /channels must be 1/);
  assert.throws(() => parseImageSpec({ size: SIZE, channels: 3, mean: [0.5, 0.5], std: 0.5 }), /one number or one per channel/);
  // the BPE tokenizer: its own start and end tokens; the end kept on truncation, padding with the end token
  const tok = new TextTokenizer(JSON.parse(readFileSync(files.tokenizer, 'utf8')));
  const ids = tok.encodeIds('Small left pleural effusion', 6);
  assert.equal(ids.length, 6);
  assert.equal(ids[0], vocabSize - 2, '<|startoftext|> first');
  assert.equal(ids[5], vocabSize - 1, '<|endoftext|> kept last');
  assert.equal(tok.padId, vocabSize - 1);
});

test('import -> index -> search -> classify with a foreign CLIP-style encoder', async () => {
  const out = join(dir, 'foreign');
  const r = await medclip(...importArgs(out), '--name', 'foreign-clip');
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /wrote .*foreign: foreign-clip, embedDim 16, 3 channel\(s\) at 32 px/);
  const manifest = JSON.parse(readFileSync(join(out, 'manifest.json'), 'utf8')) as {
    image: { channels: number; mean: number[]; interpolation: string };
    text: { maxLength: number };
    sha256: Record<string, string>;
  };
  assert.equal(manifest.image.channels, 3);
  assert.deepEqual(manifest.image.mean, MEAN);
  assert.equal(manifest.image.interpolation, 'bicubic');
  assert.equal(manifest.text.maxLength, 24);
  assert.deepEqual(Object.keys(manifest.sha256).sort(), ['image_encoder.onnx', 'text_encoder.onnx', 'tokenizer.json']);

  // index real X-rays and reports with it, then search both ways and classify, as the API does
  const lines = readFileSync(IMAGES_CSV, 'utf8').trim().split('\n');
  const table = join(dir, 'images.csv');
  writeFileSync(table, [lines[0], ...lines.filter((l) => l.includes(',val,')).slice(0, 8)].join('\n') + '\n');
  const index = join(dir, 'index');
  const built = await buildIndex({ model: out, images: table, root: DATA, reports: IU_REPORTS, reportSplit: 'val', out: index });
  assert.equal(built.images.indexed, 8);
  const model = await MedClipModel.load(out);
  try {
    const service = await SearchService.create(model, await IndexBundle.load(index, { model }));
    const text = await service.searchText({ query: 'small left pleural effusion', target: 'reports', k: 3 });
    assert.equal(text.hits.length, 3);
    const images = await service.searchText({ query: 'pneumonia', target: 'images', k: 3 });
    assert.equal(images.hits.length, 3);
    const xray = readFileSync(join(DATA, lines.filter((l) => l.includes(',val,'))[0]!.split(',')[0]!));
    const similar = await service.searchImage(xray, { target: 'images', k: 1 });
    assert.ok(Math.abs(similar.hits[0]!.score - 1) < 1e-4, 'an indexed X-ray finds itself first');
    const classes = await service.classify(xray, { mode: 'findings' });
    assert.equal(classes.classes.length, 14);
    for (const c of classes.classes) assert.ok(c.probability >= 0 && c.probability <= 1 && c.validated === false, c.name);
  } finally {
    await model.close();
  }
  // with a labelled table: the findings temperature is fitted and the model card written (nothing validated here)
  const carded = join(dir, 'foreign-card');
  const withCard = await medclip(...importArgs(carded), '--images', table, '--root', DATA);
  assert.equal(withCard.code, 0, withCard.stderr);
  assert.match(withCard.stdout, /model card of foreign-card: pooled over/);
  const cardManifest = JSON.parse(readFileSync(join(carded, 'manifest.json'), 'utf8')) as {
    card?: string;
    findings?: { temperature: number };
  };
  assert.equal(cardManifest.card, 'card.json');
  assert.ok(cardManifest.findings!.temperature > 0);
  // an existing bundle is not replaced without --force
  const again = await medclip(...importArgs(out));
  assert.equal(again.code, 1);
  assert.match(again.stderr.trim(), /exists: choose another --out, or --force/);
});

test('malformed encoders are refused in one line, and nothing is written', async () => {
  const cases: [string, Uint8Array, Uint8Array, RegExp][] = [
    ['wrong-input', imageTower({ input: 'pixels' }), textTower(vocabSize), /image encoder takes \[pixels\]; it must take "pixel_values"/],
    [
      'rank-3',
      imageTower({ rank3: true }),
      textTower(vocabSize),
      /image encoder output .* is \[1, 1, 16\] float32; expected \[batch, dim\]/,
    ],
    ['nan', imageTower({ nan: true }), textTower(vocabSize), /image encoder returned a NaN or infinite embedding/],
    ['mismatch', imageTower(), textTower(vocabSize, 8), /the towers embed to different dimensions: image 16, text 8/],
  ];
  for (const [name, image, text, message] of cases) {
    const imageFile = join(dir, `${name}-image.onnx`);
    const textFile = join(dir, `${name}-text.onnx`);
    writeFileSync(imageFile, image);
    writeFileSync(textFile, text);
    const out = join(dir, name);
    const r = await medclip(...importArgs(out, imageFile, textFile));
    assert.equal(r.code, 1, `${name}: ${r.stderr}`);
    const last = r.stderr.trim().split('\n').pop()!;
    assert.match(last, message, name);
    assert.match(last, /^medclip: /);
    assert.throws(() => readFileSync(join(out, 'manifest.json')), /ENOENT/, `${name}: nothing written`);
  }
});
