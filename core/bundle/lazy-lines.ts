/**
 * JSON-lines metadata, parsed on demand (a 100k-line file would otherwise be half a cold start).
 */
import { IndexError } from './manifest.ts';

export function parseJsonl<T>(text: string, file: string): T[] {
  const out: T[] = [];
  let line = 0;
  for (const raw of text.split('\n')) {
    line++;
    if (!raw.trim()) continue;
    try {
      out.push(JSON.parse(raw) as T);
    } catch {
      throw new IndexError(`${file}: line ${line} is not valid JSON`);
    }
  }
  return out;
}

/**
 * JSON lines parsed on demand: at 100k items, parsing every metadata line up front was half of a cold start, while
 * an unfiltered query needs only its k hits. The bytes stay a Buffer (no 40 MB UTF-8 decode up front); a line is
 * decoded when first read. Content was verified by sha256 at load.
 */
export class LazyLines<T> {
  private readonly starts: number[] = [];
  private readonly cache: (T | undefined)[];

  constructor(
    private readonly bytes: Buffer,
    private readonly file: string,
  ) {
    let pos = 0;
    while (pos < bytes.length) {
      const end = bytes.indexOf(0x0a, pos);
      const stop = end < 0 ? bytes.length : end;
      if (stop > pos) this.starts.push(pos);
      pos = stop + 1;
    }
    this.cache = new Array<T | undefined>(this.starts.length);
  }

  /** Whether any line may hold `text` (a byte search, no parsing): false means no line does. */
  mayContain(text: string): boolean {
    return this.bytes.includes(text);
  }

  get length(): number {
    return this.starts.length;
  }

  get(i: number): T | undefined {
    if (i < 0 || i >= this.starts.length) return undefined;
    let v = this.cache[i];
    if (v === undefined) {
      const start = this.starts[i]!;
      const end = this.bytes.indexOf(0x0a, start);
      try {
        v = JSON.parse(this.bytes.toString('utf8', start, end < 0 ? this.bytes.length : end)) as T;
      } catch {
        throw new IndexError(`${this.file}: line ${i + 1} is not valid JSON`);
      }
      this.cache[i] = v;
    }
    return v;
  }

  *[Symbol.iterator](): IterableIterator<T> {
    for (let i = 0; i < this.starts.length; i++) yield this.get(i)!;
  }
}
