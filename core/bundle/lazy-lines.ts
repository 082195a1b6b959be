/**
 * JSON-lines metadata, parsed on demand (a 100k-line file would otherwise be half a cold start).
 */
import { closeSync, openSync, readFileSync, readSync } from 'node:fs';
import { readWhole } from '../util/index.ts';
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

/** The line index of JSON lines written as `lines` (each ends with a newline): count + 1 u32 LE byte offsets. */
export function lineIndex(lines: string[]): Uint8Array {
  const out = new Uint32Array(lines.length + 1);
  let at = 0;
  lines.forEach((line, i) => {
    out[i] = at;
    at += Buffer.byteLength(line) + 1;
  });
  if (at > 0xffffffff) throw new RangeError('metadata file beyond 4 GiB: no line index');
  out[lines.length] = at;
  return new Uint8Array(out.buffer);
}

/** A line index read back, checked against the metadata file's size and the manifest's count. */
export function parseLineIndex(bytes: Uint8Array, fileSize: number, count: number, file: string): Uint32Array {
  if (bytes.byteLength !== 4 * (count + 1))
    throw new IndexError(`${file}: line index holds ${bytes.byteLength / 4 - 1} lines, the manifest ${count}`);
  const starts = new Uint32Array(count + 1);
  new Uint8Array(starts.buffer).set(bytes);
  if (starts[0] !== 0 || starts[count] !== fileSize) throw new IndexError(`${file}: line index does not span its metadata`);
  for (let i = 0; i < count; i++)
    if (starts[i + 1]! <= starts[i]!) throw new IndexError(`${file}: line index is not increasing at line ${i + 1}`);
  return starts;
}

/**
 * JSON lines parsed on demand: at 100k items, parsing every metadata line up front was half of a cold start, while
 * an unfiltered query needs only its k hits. The bytes stay a Buffer (no 40 MB UTF-8 decode up front); a line is
 * decoded when first read. Content was verified by sha256 at load.
 *
 * With a line index (`{ path, starts }`: `parseLineIndex`) the file is not read at load at all: a line is read by its offsets until the
 * whole file, asked for in the background at the first read, has arrived (or is needed whole: iteration, `mayContain`).
 */
export class LazyLines<T> {
  /** Line starts (indexed: count + 1 offsets, the last the file's end). */
  private readonly starts: ArrayLike<number>;
  private readonly count: number;
  private readonly cache: (T | undefined)[];
  private bytes?: Buffer;
  /** Indexed: the metadata file, and whether its whole read was asked for. */
  private readonly path?: string;
  private wholeAsked = false;

  constructor(
    source: Buffer | { path: string; starts: Uint32Array },
    private readonly file: string,
  ) {
    if (Buffer.isBuffer(source)) {
      const bytes = source;
      const starts: number[] = [];
      let pos = 0;
      while (pos < bytes.length) {
        const end = bytes.indexOf(0x0a, pos);
        const stop = end < 0 ? bytes.length : end;
        if (stop > pos) starts.push(pos);
        pos = stop + 1;
      }
      this.bytes = bytes;
      this.starts = starts;
      this.count = starts.length;
    } else {
      this.path = source.path;
      this.starts = source.starts;
      this.count = source.starts.length - 1;
    }
    this.cache = new Array<T | undefined>(this.count);
  }

  /** The whole file (read now, on this thread, when an indexed file has not arrived yet). */
  private whole(): Buffer {
    if (!this.bytes) {
      let bytes: Buffer;
      try {
        bytes = readFileSync(this.path!);
      } catch (err) {
        throw new IndexError(`${this.file}: cannot read (${(err as NodeJS.ErrnoException).code ?? 'error'})`);
      }
      this.take(bytes);
    }
    return this.bytes!;
  }

  private take(bytes: Buffer): void {
    if (!this.fits(bytes)) throw new IndexError(`${this.file}: changed since it was verified`);
    this.bytes ??= bytes;
  }

  /** Whether a whole read of an indexed file is the file the index describes (its size). */
  private fits(bytes: Buffer): boolean {
    return bytes.length === this.starts[this.count];
  }

  /** Whether any line may hold `text` (a byte search, no parsing): false means no line does. */
  mayContain(text: string): boolean {
    return this.whole().includes(text);
  }

  get length(): number {
    return this.count;
  }

  get(i: number): T | undefined {
    if (i < 0 || i >= this.count) return undefined;
    let v = this.cache[i];
    if (v === undefined) {
      let text: string;
      const start = this.starts[i]!;
      if (this.bytes) {
        const end = this.bytes.indexOf(0x0a, start);
        text = this.bytes.toString('utf8', start, end < 0 ? this.bytes.length : end);
      } else text = this.readLine(start, this.starts[i + 1]! - 1);
      try {
        v = JSON.parse(text) as T;
      } catch {
        throw new IndexError(`${this.file}: line ${i + 1} is not valid JSON`);
      }
      this.cache[i] = v;
    }
    return v;
  }

  /** One line of an indexed file by its offsets; the first asks for the whole file in the background. */
  private readLine(start: number, end: number): string {
    if (!this.wholeAsked) {
      this.wholeAsked = true;
      // after the request that asked (not competing with it); a failure leaves lines read one by one
      setImmediate(() =>
        readWhole(this.path!).then(
          (bytes) => {
            if (this.fits(bytes)) this.bytes ??= bytes;
          },
          () => {},
        ),
      );
    }
    const buf = Buffer.allocUnsafe(end - start);
    let fd: number | undefined;
    try {
      fd = openSync(this.path!, 'r');
      if (readSync(fd, buf, 0, buf.length, start) !== buf.length) throw new Error('short read');
    } catch (err) {
      throw new IndexError(`${this.file}: cannot read (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
    } finally {
      if (fd !== undefined) closeSync(fd);
    }
    return buf.toString('utf8');
  }

  *[Symbol.iterator](): IterableIterator<T> {
    this.whole();
    for (let i = 0; i < this.count; i++) yield this.get(i)!;
  }
}
