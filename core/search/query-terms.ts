/**
 * Query understanding for text search: spelling correction against the words of the indexed reports and of the
 * built-in prompts ("pnuemonia" -> "pneumonia"), and a warning when no known term is recognised at all (a query in
 * another language, or noise), so the caller knows the hits are by embedding similarity only.
 *
 *   const speller = QuerySpeller.fromTexts([...reportTexts, ...promptTexts]);
 *   speller.analyse('pnuemonia in the rigth lung');   // { corrected: 'pneumonia in the right lung', warnings: [] }
 */
import { distance } from 'fastest-levenshtein';
import { FINDING_PROMPTS, BUILTIN_TEMPLATES, expandTemplate } from '../model/index.ts';
import type { IndexBundle } from '../bundle/index.ts';
import { OBSERVATIONS } from '../labeler/index.ts';

export interface QueryAnalysis {
  /** The query with misspelled words replaced, when anything changed. */
  corrected?: string;
  warnings: string[];
}

const WORD = /[a-z]+/g;
/** Words shorter than this are never corrected (too many near neighbours: "left"/"lift"). */
const MIN_CORRECTABLE = 5;

export class QuerySpeller {
  private readonly byLength = new Map<number, string[]>();

  private constructor(private readonly counts: Map<string, number>) {
    for (const w of counts.keys()) {
      if (!this.byLength.has(w.length)) this.byLength.set(w.length, []);
      this.byLength.get(w.length)!.push(w);
    }
  }

  /** A vocabulary from texts (reports, prompts); each word's count breaks ties between corrections. */
  static fromTexts(texts: Iterable<string>): QuerySpeller {
    const counts = new Map<string, number>();
    for (const t of texts) for (const w of t.toLowerCase().match(WORD) ?? []) counts.set(w, (counts.get(w) ?? 0) + 1);
    return new QuerySpeller(counts);
  }

  /** The vocabulary a query of this index may be corrected to: its reports, every prompt, the observation names. */
  static forIndex(index: IndexBundle): QuerySpeller {
    return QuerySpeller.fromTexts(vocabularyTexts(index));
  }

  get size(): number {
    return this.counts.size;
  }

  /**
   * The closest known word: two adjacent letters swapped ("rigth"), else within 1 edit (5-6 letters) or 2 edits
   * (7+ letters), the most frequent among equals.
   */
  correct(word: string): string | undefined {
    if (this.counts.has(word) || word.length < MIN_CORRECTABLE - 1) return undefined;
    let swapped: string | undefined;
    for (let i = 0; i + 1 < word.length; i++) {
      const s = word.slice(0, i) + word[i + 1] + word[i] + word.slice(i + 2);
      if (this.counts.has(s) && (!swapped || this.counts.get(s)! > this.counts.get(swapped)!)) swapped = s;
    }
    if (swapped) return swapped;
    if (word.length < MIN_CORRECTABLE) return undefined;
    const maxEdits = word.length >= 7 ? 2 : 1;
    let best: { w: string; d: number; n: number } | undefined;
    for (let len = word.length - maxEdits; len <= word.length + maxEdits; len++)
      for (const w of this.byLength.get(len) ?? []) {
        const d = distance(word, w);
        const n = this.counts.get(w)!;
        if (d <= maxEdits && (!best || d < best.d || (d === best.d && n > best.n))) best = { w, d, n };
      }
    return best?.w;
  }

  analyse(query: string): QueryAnalysis {
    const lower = query.toLowerCase();
    let recognised = 0;
    let changed = false;
    const corrected = lower.replace(WORD, (w) => {
      if (this.counts.has(w)) {
        recognised++;
        return w;
      }
      const fix = this.correct(w);
      if (!fix) return w;
      recognised++;
      changed = true;
      return fix;
    });
    const warnings =
      recognised === 0 ? ['no known term was recognised (is the query in English?): the hits are ranked by similarity only'] : [];
    return { ...(changed ? { corrected } : {}), warnings };
  }
}

function* vocabularyTexts(index: IndexBundle): Generator<string> {
  for (const r of index.reports.values()) yield* Object.values(r.text);
  for (const t of Object.values(BUILTIN_TEMPLATES)) yield* expandTemplate(t);
  for (const f of Object.values(FINDING_PROMPTS)) yield* [...f.positive, ...f.negative];
  yield* OBSERVATIONS;
}
