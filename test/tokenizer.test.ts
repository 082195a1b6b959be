import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { writeFile } from 'node:fs/promises';
import { bertTokenizerJson, TextTokenizer, TokenizerError, trainWordPiece, type TokenizerJson } from '../core/model/index.ts';
import { readReports, reportText } from '../core/tables/index.ts';
import { splitSentences } from '../core/labeler/index.ts';
import { IU_REPORTS, outputDir } from './helpers/paths.ts';

async function corpus(split: string): Promise<string[]> {
  const texts: string[] = [];
  for await (const r of readReports(IU_REPORTS, { split })) texts.push(reportText(r));
  return texts;
}

let trained: TokenizerJson | undefined;
async function trainedOnIu(): Promise<TokenizerJson> {
  trained ??= trainWordPiece(await corpus('train'), { vocabSize: 2000 });
  return trained;
}

/** What a BERT uncased tokenizer reproduces on decode: lowercase, accents stripped, spaces around punctuation. */
function normalised(s: string): string {
  return s
    .toLowerCase()
    .normalize('NFD')
    .replace(/\p{Mn}/gu, '')
    .replace(/([\p{P}\p{S}])/gu, ' $1 ')
    .replace(/\s+/g, ' ')
    .trim();
}

test('a WordPiece vocabulary trained on IU train reports round-trips val sentences', async () => {
  const json = await trainedOnIu();
  assert.equal(Object.keys(json.model.vocab).length, 2000);
  const tok = new TextTokenizer(json);
  const sentences = (await corpus('val')).flatMap((t) => splitSentences(t)).slice(0, 400);
  let unknown = 0;
  let tokens = 0;
  for (const s of sentences) {
    const ids = tok.encodeIds(s);
    assert.equal(ids[0], json.model.vocab['[CLS]']);
    assert.equal(ids.at(-1), json.model.vocab['[SEP]']);
    tokens += ids.length;
    unknown += ids.filter((i) => i === json.model.vocab['[UNK]']).length;
    if (!ids.includes(json.model.vocab['[UNK]']!)) {
      // The decoder rejoins "##" pieces; punctuation spacing is the only difference to the normalised input.
      assert.equal(normalised(tok.decode(ids)), normalised(s), s.length.toString());
    }
  }
  assert.ok(unknown / tokens < 0.005, `unknown rate ${unknown / tokens}`);
  // Frequent findings are single tokens.
  for (const w of ['atelectasis', 'pneumothorax', 'cardiomegaly', 'effusion', 'xxxx'])
    assert.deepEqual(tok.tokens(w), ['[CLS]', w, '[SEP]']);
});

test('training is deterministic and saved tokenizer.json files load again', async () => {
  const texts = (await corpus('val')).slice(0, 100);
  const a = trainWordPiece(texts, { vocabSize: 400 });
  const b = trainWordPiece(texts, { vocabSize: 400 });
  assert.deepEqual(a, b);
  const file = join(outputDir('tokenizer'), 'tokenizer.json');
  await new TextTokenizer(a).save(file);
  const loaded = await TextTokenizer.load(file);
  assert.deepEqual(
    loaded.encodeIds('No acute cardiopulmonary process.'),
    new TextTokenizer(a).encodeIds('No acute cardiopulmonary process.'),
  );
  await assert.rejects(TextTokenizer.load(join(outputDir('tokenizer'), 'missing.json')), TokenizerError);
  await writeFile(join(outputDir('tokenizer'), 'bad.json'), '{"version": ');
  await assert.rejects(TextTokenizer.load(join(outputDir('tokenizer'), 'bad.json')), /not valid JSON/);
  assert.throws(() => trainWordPiece(texts, { vocabSize: 3 }), TokenizerError);
});

test('an existing BERT tokenizer.json (written here) loads and splits words greedily, longest piece first', () => {
  const vocab = [
    '[PAD]',
    '[UNK]',
    '[CLS]',
    '[SEP]',
    '[MASK]',
    'un',
    '##aff',
    '##able',
    'the',
    'lung',
    '##s',
    'are',
    'clear',
    '.',
    'a',
    '##ff',
  ];
  const json = bertTokenizerJson(Object.fromEntries(vocab.map((t, i) => [t, i])));
  const tok = new TextTokenizer(JSON.parse(JSON.stringify(json)) as TokenizerJson);
  assert.deepEqual(tok.tokens('Unaffable'), ['[CLS]', 'un', '##aff', '##able', '[SEP]']);
  assert.deepEqual(tok.tokens('The LUNGS are clear.'), ['[CLS]', 'the', 'lung', '##s', 'are', 'clear', '.', '[SEP]']);
  assert.deepEqual(tok.tokens('zebra'), ['[CLS]', '[UNK]', '[SEP]']);
  assert.equal(tok.decode(tok.encodeIds('the lungs are clear.')), 'the lungs are clear.');
});

test('batches are padded and truncated to a fixed length with int64 ids and a mask', async () => {
  const tok = new TextTokenizer(await trainedOnIu());
  const long = 'There is no focal consolidation, pleural effusion or pneumothorax and the heart size is normal. '.repeat(5);
  const batch = tok.encodeBatch(['Lungs are clear.', long], 16);
  assert.deepEqual(batch.dims, [2, 16]);
  assert.ok(batch.inputIds instanceof BigInt64Array && batch.attentionMask instanceof BigInt64Array);
  const row = (a: BigInt64Array, r: number) => Array.from(a.subarray(r * 16, (r + 1) * 16), Number);
  const ids0 = row(batch.inputIds, 0);
  const mask0 = row(batch.attentionMask, 0);
  const len0 = mask0.reduce((s, v) => s + v, 0);
  assert.equal(len0, tok.encodeIds('Lungs are clear.').length);
  assert.ok(ids0.slice(len0).every((v) => v === tok.padId));
  assert.ok(row(batch.attentionMask, 1).every((v) => v === 1));
  assert.equal(row(batch.inputIds, 1)[15], tok.sepId, 'truncation keeps the final [SEP]');
});

test('trimmed batches are as wide as their longest row, with the same ids and mask in that width', async () => {
  const tok = new TextTokenizer(await trainedOnIu());
  const texts = ['Lungs are clear.', 'No pneumothorax.'];
  const full = tok.encodeBatch(texts, 32);
  const trimmed = tok.encodeBatch(texts, 32, { trim: true });
  const width = Math.max(...texts.map((t) => tok.encodeIds(t, 32).length));
  assert.deepEqual(trimmed.dims, [2, width]);
  for (let r = 0; r < 2; r++) {
    assert.deepEqual(
      Array.from(trimmed.inputIds.subarray(r * width, (r + 1) * width)),
      Array.from(full.inputIds.subarray(r * 32, r * 32 + width)),
    );
    assert.deepEqual(
      Array.from(trimmed.attentionMask.subarray(r * width, (r + 1) * width)),
      Array.from(full.attentionMask.subarray(r * 32, r * 32 + width)),
    );
    assert.ok(
      Array.from(full.attentionMask.subarray(r * 32 + width, (r + 1) * 32)).every((v) => v === 0n),
      'only padding was cut',
    );
  }
});
