/**
 * The resumable state of a build, beside the output (`<out>.partial/`): per collection an append-only
 * `vectors.f32` and `items.jsonl` (one metadata line per vector, written after its vector), plus
 * `errors.jsonl` and `reports.jsonl`. A build killed at any moment resumes from what is complete on disk:
 * a vector without its metadata line, or a torn last line, is dropped and embedded again.
 */
import { appendFile, mkdir, open, readFile, stat, truncate, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type { CollectionName, ItemMeta, StoredReport } from '../core/bundle/index.ts';
import { fsErrorReason } from '../core/util/index.ts';
import { IndexBuildError } from './errors.ts';

/** Run a write, turning a file-system failure into one line naming the file (ENOSPC carries no path). */
async function writing<T>(file: string, work: () => Promise<T>): Promise<T> {
  try {
    return await work();
  } catch (err) {
    throw new IndexBuildError(`cannot write ${file}: ${fsErrorReason(err)}; the work done so far is kept: rerun with --resume once fixed`);
  }
}

export interface BuildError {
  collection: CollectionName;
  id: string;
  reason: string;
}

/** The complete JSON lines of an append-only file; a torn last line (a crash mid-write) is cut off the file. */
async function readJsonlPrefix<T>(file: string): Promise<T[]> {
  const out: T[] = [];
  if (!existsSync(file)) return out;
  const text = await readFile(file, 'utf8');
  let good = 0;
  for (const line of text.split('\n')) {
    if (!line) break;
    try {
      out.push(JSON.parse(line) as T);
      good += Buffer.byteLength(line) + 1;
    } catch {
      break;
    }
  }
  if (good !== Buffer.byteLength(text)) await truncate(file, good);
  return out;
}

export class PartialCollection {
  private constructor(
    readonly dir: string,
    readonly name: CollectionName,
    readonly dim: number,
    readonly items: ItemMeta[],
  ) {}

  get vectorsFile(): string {
    return join(this.dir, `${this.name}.vectors.f32`);
  }
  get itemsFile(): string {
    return join(this.dir, `${this.name}.items.jsonl`);
  }

  /** Open (creating, or recovering after a crash) the partial state of one collection. */
  static async open(dir: string, name: CollectionName, dim: number): Promise<PartialCollection> {
    await mkdir(dir, { recursive: true });
    const itemsFile = join(dir, `${name}.items.jsonl`);
    const vectorsFile = join(dir, `${name}.vectors.f32`);
    const items = await readJsonlPrefix<ItemMeta>(itemsFile);
    const bytesPerVector = dim * 4;
    const have = existsSync(vectorsFile) ? (await stat(vectorsFile)).size : 0;
    if (have < items.length * bytesPerVector) {
      // metadata without its vector cannot happen (vectors are written first) unless files were edited
      throw new Error(`${dir}: ${name}.vectors.f32 is shorter than ${name}.items.jsonl; delete ${dir} and build again`);
    }
    if (have > items.length * bytesPerVector) await truncate(vectorsFile, items.length * bytesPerVector);
    return new PartialCollection(dir, name, dim, items);
  }

  /** Append vectors (row-major) and then their metadata lines. */
  async append(vectors: Float32Array[], metas: ItemMeta[]): Promise<void> {
    if (vectors.length === 0) return;
    const flat = new Float32Array(vectors.length * this.dim);
    vectors.forEach((v, i) => flat.set(v, i * this.dim));
    await writing(this.vectorsFile, async () => {
      const fh = await open(this.vectorsFile, 'a');
      try {
        await fh.write(new Uint8Array(flat.buffer));
        await fh.sync();
      } finally {
        await fh.close();
      }
    });
    await writing(this.itemsFile, () => appendFile(this.itemsFile, metas.map((m) => JSON.stringify(m) + '\n').join('')));
    this.items.push(...metas);
  }

  /** Keep the first `n` items (drops a tail whose owner was not completed). */
  async truncateTo(n: number): Promise<void> {
    if (n >= this.items.length) return;
    this.items.length = n;
    await truncate(this.vectorsFile, n * this.dim * 4);
    await writeFile(this.itemsFile, this.items.map((m) => JSON.stringify(m) + '\n').join(''));
  }

  /** All vectors, in item order. */
  async vectors(): Promise<Float32Array> {
    if (!existsSync(this.vectorsFile)) return new Float32Array(0);
    const buf = await readFile(this.vectorsFile);
    return new Float32Array(buf.buffer, buf.byteOffset, this.items.length * this.dim);
  }
}

/** Line-oriented side files of a partial build (errors, reports), with the ids already written. */
export class PartialLines<T extends { id: string }> {
  private constructor(
    readonly file: string,
    readonly lines: T[],
  ) {}

  static async open<T extends { id: string }>(file: string): Promise<PartialLines<T>> {
    const lines = await readJsonlPrefix<T>(file);
    return new PartialLines(file, lines);
  }

  async append(items: T[]): Promise<void> {
    if (!items.length) return;
    await writing(this.file, () => appendFile(this.file, items.map((m) => JSON.stringify(m) + '\n').join('')));
    this.lines.push(...items);
  }
}

export type { StoredReport };
