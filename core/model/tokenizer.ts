/**
 * WordPiece tokenizer: our own trainer builds a vocabulary from a report corpus and writes it in the Hugging Face
 * `tokenizer.json` format; encoding and decoding go through `@huggingface/tokenizers` (which loads, but cannot
 * train). Any Hugging Face `tokenizer.json` loads the same way: WordPiece (BERT) or byte-level BPE (CLIP), with its
 * own special tokens (the end token kept on truncation, the pad token from its padding block or vocabulary).
 *
 * Training mirrors Hugging Face's WordPiece trainer: the same normaliser and pre-tokeniser as at inference (taken
 * from the library, so the two cannot drift), a character alphabet with `##` continuation forms, then greedy merges
 * of the most frequent adjacent pair until the vocabulary is full. (Scoring pairs by count / (count(a) x count(b)),
 * the original WordPiece likelihood, was tried: on 2,700 IU reports it kept frequent words like "atelectasis" in
 * pieces at a 3,000-token vocabulary, so frequency it is.)
 */
import { readFile, writeFile } from 'node:fs/promises';
import { Tokenizer } from '@huggingface/tokenizers';
import { MedclipError } from '../errors.ts';

export const SPECIAL_TOKENS = ['[PAD]', '[UNK]', '[CLS]', '[SEP]', '[MASK]'] as const;
const PREFIX = '##';

export interface TokenizerJson {
  version: string;
  model: { type: string; vocab: Record<string, number>; unk_token?: string; [k: string]: unknown };
  added_tokens?: { id: number; content: string; special?: boolean }[];
  [k: string]: unknown;
}

export class TokenizerError extends MedclipError {
  constructor(message: string) {
    super(message, 'data');
  }
}

function specialToken(content: string, id: number) {
  return { id, content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true };
}

/** A BERT-style tokenizer.json around a vocabulary (token -> id). */
export function bertTokenizerJson(vocab: Record<string, number>): TokenizerJson {
  const id = (t: string) => {
    const v = vocab[t];
    if (v === undefined) throw new TokenizerError(`vocabulary lacks ${t}`);
    return v;
  };
  return {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: SPECIAL_TOKENS.map((t) => specialToken(t, id(t))),
    normalizer: { type: 'BertNormalizer', clean_text: true, handle_chinese_chars: true, strip_accents: null, lowercase: true },
    pre_tokenizer: { type: 'BertPreTokenizer' },
    post_processor: {
      type: 'TemplateProcessing',
      single: [
        { SpecialToken: { id: '[CLS]', type_id: 0 } },
        { Sequence: { id: 'A', type_id: 0 } },
        { SpecialToken: { id: '[SEP]', type_id: 0 } },
      ],
      pair: [
        { SpecialToken: { id: '[CLS]', type_id: 0 } },
        { Sequence: { id: 'A', type_id: 0 } },
        { SpecialToken: { id: '[SEP]', type_id: 0 } },
        { Sequence: { id: 'B', type_id: 1 } },
        { SpecialToken: { id: '[SEP]', type_id: 1 } },
      ],
      special_tokens: {
        '[CLS]': { id: '[CLS]', ids: [id('[CLS]')], tokens: ['[CLS]'] },
        '[SEP]': { id: '[SEP]', ids: [id('[SEP]')], tokens: ['[SEP]'] },
      },
    },
    decoder: { type: 'WordPiece', prefix: PREFIX, cleanup: true },
    model: { type: 'WordPiece', unk_token: '[UNK]', continuing_subword_prefix: PREFIX, max_input_chars_per_word: 100, vocab },
  };
}

export interface WordPieceTrainOptions {
  /** Target vocabulary size, special tokens included. */
  vocabSize?: number;
  /** Pairs seen fewer times than this are never merged. */
  minFrequency?: number;
  /** Keep at most this many distinct characters (the most frequent); the rest become [UNK]. */
  limitAlphabet?: number;
}

/** Train a WordPiece vocabulary on texts and return the tokenizer.json object. Deterministic for a given corpus. */
export function trainWordPiece(texts: Iterable<string>, options: WordPieceTrainOptions = {}): TokenizerJson {
  const vocabSize = options.vocabSize ?? 4096;
  const minFrequency = options.minFrequency ?? 2;
  const limitAlphabet = options.limitAlphabet ?? 1000;
  if (!Number.isInteger(vocabSize) || vocabSize < SPECIAL_TOKENS.length + 2)
    throw new TokenizerError(`vocabSize must be an integer >= ${SPECIAL_TOKENS.length + 2}`);

  // Normalise and pre-tokenise exactly as the loaded tokenizer will.
  const skeleton = new Tokenizer(bertTokenizerJson(Object.fromEntries(SPECIAL_TOKENS.map((t, i) => [t, i]))), {});
  const wordCounts = new Map<string, number>();
  for (const text of texts) {
    const normalised = skeleton.normalizer ? skeleton.normalizer.normalize(text) : text;
    const words = skeleton.pre_tokenizer ? skeleton.pre_tokenizer.pre_tokenize_text(normalised) : normalised.split(/\s+/);
    for (const word of words) if (word) wordCounts.set(word, (wordCounts.get(word) ?? 0) + 1);
  }

  // Alphabet: most frequent characters first, ties by code point.
  const charCounts = new Map<string, number>();
  for (const [word, n] of wordCounts) for (const ch of word) charCounts.set(ch, (charCounts.get(ch) ?? 0) + n);
  const alphabet = [...charCounts.entries()]
    .sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1))
    .slice(0, limitAlphabet)
    .map(([ch]) => ch)
    .sort();
  const alphabetSet = new Set(alphabet);

  const vocab: string[] = [...SPECIAL_TOKENS];
  const inVocab = new Set<string>(vocab);
  const add = (t: string) => {
    if (!inVocab.has(t)) {
      inVocab.add(t);
      vocab.push(t);
    }
  };
  for (const ch of alphabet) add(ch);
  for (const ch of alphabet) add(PREFIX + ch);

  // Words as symbol arrays; words holding a character outside the alphabet stay whole-[UNK] and are skipped.
  const words: { symbols: string[]; count: number }[] = [];
  for (const [word, count] of [...wordCounts.entries()].sort((a, b) => (a[0] < b[0] ? -1 : 1))) {
    const chars = [...word];
    if (!chars.every((c) => alphabetSet.has(c))) continue;
    words.push({ symbols: chars.map((c, i) => (i === 0 ? c : PREFIX + c)), count });
  }

  const join = (a: string, b: string) => a + (b.startsWith(PREFIX) ? b.slice(PREFIX.length) : b);
  while (vocab.length < vocabSize) {
    const pairCounts = new Map<string, number>();
    for (const { symbols, count } of words) {
      for (let i = 0; i + 1 < symbols.length; i++) {
        const key = symbols[i]! + '\u0000' + symbols[i + 1]!;
        pairCounts.set(key, (pairCounts.get(key) ?? 0) + count);
      }
    }
    let best: string | undefined;
    let bestCount = 0;
    for (const [key, n] of pairCounts) {
      // Ties: the lexicographically smaller pair, for determinism.
      if (n > bestCount || (n === bestCount && best !== undefined && key < best)) {
        best = key;
        bestCount = n;
      }
    }
    if (bestCount < minFrequency) best = undefined;
    if (!best) break;
    const [a, b] = best.split('\u0000') as [string, string];
    const merged = join(a, b);
    add(merged);
    for (const w of words) {
      const s = w.symbols;
      if (s.length < 2) continue;
      const out: string[] = [];
      for (let i = 0; i < s.length; i++) {
        if (i + 1 < s.length && s[i] === a && s[i + 1] === b) {
          out.push(merged);
          i++;
        } else out.push(s[i]!);
      }
      w.symbols = out;
    }
  }
  return bertTokenizerJson(Object.fromEntries(vocab.map((t, i) => [t, i])));
}

export interface EncodedBatch {
  /** Row-major [n, maxLength] token ids, int64 as ONNX wants. */
  inputIds: BigInt64Array;
  attentionMask: BigInt64Array;
  dims: [number, number];
}

/** Encode/decode with truncation and padding to a fixed length (BERT-style: [CLS] ... [SEP] [PAD]...). */
export class TextTokenizer {
  readonly padId: number;
  readonly sepId: number;
  readonly vocabSize: number;
  private readonly tokenizer: Tokenizer;

  constructor(readonly json: TokenizerJson) {
    if (!json || typeof json !== 'object' || !json.model || typeof json.model.vocab !== 'object')
      throw new TokenizerError('tokenizer.json has no model.vocab');
    try {
      this.tokenizer = new Tokenizer(json, {});
    } catch (err) {
      throw new TokenizerError(`tokenizer.json could not be loaded: ${(err as Error).message}`);
    }
    const vocab = json.model.vocab;
    const added = json.added_tokens ?? [];
    this.vocabSize = Math.max(...Object.values(vocab), ...added.map((t) => t.id)) + 1;
    const idOf = (t: string) => vocab[t] ?? added.find((a) => a.content === t)?.id;
    // a BERT WordPiece tokenizer pads with [PAD] and ends with [SEP]; a CLIP-style BPE one says so in its padding block
    // or pads with its end token (<|endoftext|>); the end token is the special token the post-processor appends
    const padding = json.padding as { pad_id?: number } | null | undefined;
    const sample = this.tokenizer.encode('a').ids;
    const last = sample[sample.length - 1];
    const special = new Set(added.filter((a) => a.special).map((a) => a.id));
    const end = idOf('[SEP]') ?? (last !== undefined && special.has(last) ? last : undefined);
    if (end === undefined) throw new TokenizerError('tokenizer.json appends no end token ([SEP] or a special token) to a sentence');
    this.sepId = end;
    this.padId = padding?.pad_id ?? idOf('[PAD]') ?? idOf('<pad>') ?? idOf('<|endoftext|>') ?? 0;
  }

  static async load(file: string): Promise<TextTokenizer> {
    let json: TokenizerJson;
    try {
      json = JSON.parse(await readFile(file, 'utf8')) as TokenizerJson;
    } catch (err) {
      throw new TokenizerError(`${file}: ${(err as NodeJS.ErrnoException).code === 'ENOENT' ? 'not found' : 'not valid JSON'}`);
    }
    return new TextTokenizer(json);
  }

  async save(file: string): Promise<void> {
    await writeFile(file, JSON.stringify(this.json));
  }

  /** Token ids with special tokens; truncated to maxLength keeping the final [SEP]. */
  encodeIds(text: string, maxLength?: number): number[] {
    const ids = this.tokenizer.encode(text).ids;
    if (maxLength === undefined || ids.length <= maxLength) return ids;
    if (maxLength < 2) throw new TokenizerError('maxLength must be at least 2');
    const out = ids.slice(0, maxLength);
    if (ids[ids.length - 1] === this.sepId) out[maxLength - 1] = this.sepId;
    return out;
  }

  tokens(text: string): string[] {
    return this.tokenizer.encode(text).tokens;
  }

  /**
   * Token ids and attention mask, `[n, width]`. With `trim`, width is the longest row's length rather than
   * `maxLength`: the encoder masks padding and pools over real tokens only, so a short query then costs a short
   * sequence and yields the same embedding.
   */
  encodeBatch(texts: string[], maxLength: number, options: { trim?: boolean } = {}): EncodedBatch {
    const n = texts.length;
    const encoded = texts.map((t) => this.encodeIds(t, maxLength));
    const width = options.trim ? Math.max(1, ...encoded.map((ids) => ids.length)) : maxLength;
    const inputIds = new BigInt64Array(n * width).fill(BigInt(this.padId));
    const attentionMask = new BigInt64Array(n * width);
    encoded.forEach((ids, row) => {
      for (let j = 0; j < ids.length; j++) {
        inputIds[row * width + j] = BigInt(ids[j]!);
        attentionMask[row * width + j] = 1n;
      }
    });
    return { inputIds, attentionMask, dims: [n, width] };
  }

  decode(ids: number[], skipSpecialTokens = true): string {
    return this.tokenizer.decode(ids, { skip_special_tokens: skipSpecialTokens });
  }
}
