/**
 * The lexical half of hybrid report search: BM25 over the distinct sentence texts of an index's reports, with
 * MiniSearch (BM25+ scoring, an inverted index that serialises to JSON, no native code; well kept and small). A
 * bundle stores it as `reports.lexical.json` (written by the index builder, verified like every bundle file), so a
 * query never rebuilds it; a bundle written before it existed builds it on first use from the stored sentences.
 *
 * Identical sentences ("Lungs are clear." in hundreds of reports) are one document: BM25 statistics are then over
 * distinct wordings, and a hit's document is a sentence text the caller maps back to its reports.
 */
import MiniSearch from 'minisearch';

/** Bump when tokenising or scoring changes: a stored index of another version is rebuilt, not trusted. */
export const LEXICAL_VERSION = 1;

/**
 * Words that say nothing about a finding. Negations ("no", "not", "without") are kept: they are how a report says
 * a finding is absent, and "no pneumothorax" should match "No pneumothorax." better than "Pneumothorax.".
 */
const STOP_WORDS = new Set(
  'a an and are as at be been by for from has have in is it its of on or that the there these this to was were which with xxxx'.split(' '),
);

/** One token per word, lower case, stop words dropped (also applied to queries). */
function processTerm(term: string): string | null {
  const t = term.toLowerCase();
  return t.length < 2 || STOP_WORDS.has(t) ? null : t;
}

const OPTIONS = { fields: ['text'], idField: 'id', processTerm };

/** MiniSearch's default tokenizer (space and punctuation), then `processTerm`. */
const SPACE_OR_PUNCTUATION = /[\n\r\p{Z}\p{P}]+/u;
function terms(text: string): string[] {
  return text.split(SPACE_OR_PUNCTUATION).flatMap((t) => processTerm(t) ?? []);
}

/** Query words in more than this share of the distinct texts are not searched (but at least MIN_DF_CAP texts is). */
export const MAX_DF_SHARE = 0.05;
const MIN_DF_CAP = 20;

interface Stored {
  version: number;
  texts: string[];
  index: unknown;
}

export class LexicalIndex {
  private constructor(
    private readonly search_: MiniSearch<{ id: number; text: string }>,
    /** The distinct sentence texts; a hit's `id` is a position here. */
    readonly texts: string[],
  ) {}

  /** An index of these texts (duplicates are kept once). */
  static build(texts: Iterable<string>): LexicalIndex {
    const distinct = [...new Set(texts)];
    const ms = new MiniSearch<{ id: number; text: string }>(OPTIONS);
    ms.addAll(distinct.map((text, id) => ({ id, text })));
    return new LexicalIndex(ms, distinct);
  }

  /** A stored index, or undefined when it was written by another version (the caller rebuilds it). */
  static parse(json: string): LexicalIndex | undefined {
    const stored = JSON.parse(json) as Stored;
    if (stored.version !== LEXICAL_VERSION || !Array.isArray(stored.texts)) return undefined;
    const ms = MiniSearch.loadJS<{ id: number; text: string }>(stored.index as Parameters<typeof MiniSearch.loadJS>[0], OPTIONS);
    return new LexicalIndex(ms, stored.texts);
  }

  serialize(): string {
    return JSON.stringify({ version: LEXICAL_VERSION, texts: this.texts, index: this.search_.toJSON() } satisfies Stored);
  }

  private df?: Map<string, number>;

  /** In how many texts each term occurs (counted on first use, with the index's own tokenizer). */
  private documentFrequency(): Map<string, number> {
    if (!this.df) {
      const df = new Map<string, number>();
      for (const text of this.texts) for (const term of new Set(terms(text))) df.set(term, (df.get(term) ?? 0) + 1);
      this.df = df;
    }
    return this.df;
  }

  /**
   * The best `limit` texts for a query by BM25, each with its score divided by the best one's (so 1 for the top
   * hit, comparable across queries when fused with cosine scores). Every query word is optional (OR). Words in more
   * than MAX_DF_SHARE of the texts are left out: they tell little (BM25 gives them a low weight anyway) and cost
   * the most, since every text holding them is scored ("effusion" is in ~10% of an archive's wordings).
   */
  search(query: string, limit: number): { text: string; score: number }[] {
    const df = this.documentFrequency();
    const max = Math.max(MIN_DF_CAP, MAX_DF_SHARE * this.texts.length);
    const kept = terms(query).filter((t) => (df.get(t) ?? 0) <= max);
    if (kept.length === 0) return [];
    const hits = this.search_.search(kept.join(' '), { combineWith: 'OR' }).slice(0, limit);
    const top = hits[0]?.score ?? 1;
    return hits.map((h) => ({ text: this.texts[h.id as number]!, score: h.score / top }));
  }
}
