/**
 * Embedding backends for the index builder. `LocalEmbedder` runs onnxruntime in this process (decoding on
 * sharp's thread pool); `ThreadEmbedder` spreads batches over worker threads, each with its own model
 * sessions. Bad images never fail a batch: they come back as errors with the item's id and a reason code.
 */
import { Worker } from 'node:worker_threads';
import { readFile } from 'node:fs/promises';
import { ImageError, imageToTensor } from '../core/image/index.ts';
import type { MedClipModel } from '../core/model.ts';

export interface ImageJob {
  id: string;
  file: string;
}

export interface ImageBatchResult {
  /** One per job, in order: the embedding, or why the image was skipped. */
  results: ({ ok: true; vector: Float32Array } | { ok: false; reason: string })[];
}

export interface Embedder {
  embedImageFiles(jobs: ImageJob[]): Promise<ImageBatchResult>;
  embedTexts(texts: string[]): Promise<Float32Array[]>;
  close(): Promise<void>;
}

/** Why an image could not be used, as a short code + message that names no content. */
export function skipReason(err: unknown): string {
  if (err instanceof ImageError) return `${err.code}: ${err.message}`;
  const code = (err as NodeJS.ErrnoException)?.code;
  if (code === 'ENOENT') return 'missing: file not found';
  if (code === 'EACCES') return 'unreadable: permission denied';
  if (code) return `unreadable: ${code}`;
  return `failed: ${(err as Error)?.name ?? 'error'}`;
}

export class LocalEmbedder implements Embedder {
  constructor(
    readonly model: MedClipModel,
    private readonly decodeConcurrency = 8,
  ) {}

  async embedImageFiles(jobs: ImageJob[]): Promise<ImageBatchResult> {
    const spec = this.model.imageSpec;
    const area = spec.size * spec.size;
    const decoded: (Float32Array | string)[] = new Array(jobs.length);
    let next = 0;
    const worker = async () => {
      while (next < jobs.length) {
        const i = next++;
        try {
          decoded[i] = (await imageToTensor(await readFile(jobs[i]!.file), spec)).data;
        } catch (err) {
          decoded[i] = skipReason(err);
        }
      }
    };
    await Promise.all(Array.from({ length: Math.min(this.decodeConcurrency, jobs.length) }, worker));
    const good = decoded.flatMap((d, i) => (typeof d === 'string' ? [] : [i]));
    const pixels = new Float32Array(good.length * area);
    good.forEach((i, row) => pixels.set(decoded[i] as Float32Array, row * area));
    const flat = good.length ? await this.model.embedPixels(pixels, good.length) : new Float32Array(0);
    const d = this.model.embedDim;
    const byIndex = new Map(good.map((i, row) => [i, flat.slice(row * d, (row + 1) * d)]));
    return {
      results: decoded.map((x, i) =>
        typeof x === 'string' ? { ok: false as const, reason: x } : { ok: true as const, vector: byIndex.get(i)! },
      ),
    };
  }

  embedTexts(texts: string[]): Promise<Float32Array[]> {
    return this.model.embedTexts(texts);
  }

  async close(): Promise<void> {}
}

type WorkerReply = { ok: true; images?: ImageBatchResult; texts?: Float32Array[] } | { ok: false; error: string };

/** One worker thread with its own model; requests are answered in order. */
class EmbedWorker {
  private queue: { resolve: (r: WorkerReply) => void; reject: (e: Error) => void }[] = [];
  private failure?: Error;

  constructor(private readonly worker: Worker) {
    worker.on('message', (m: WorkerReply) => this.queue.shift()?.resolve(m));
    const fail = (err: Error) => {
      this.failure = err;
      for (const q of this.queue.splice(0)) q.reject(err);
    };
    worker.on('error', fail);
    worker.on('exit', (code) => fail(new Error(`embedding worker exited (code ${code})`)));
  }

  request(msg: unknown): Promise<WorkerReply> {
    if (this.failure) return Promise.reject(this.failure);
    return new Promise((resolve, reject) => {
      this.queue.push({ resolve, reject });
      this.worker.postMessage(msg);
    });
  }

  async ready(): Promise<void> {
    const r = await this.request({ type: 'ping' });
    if (!r.ok) throw new Error(r.error);
  }

  terminate(): Promise<number> {
    return this.worker.terminate();
  }
}

export class ThreadEmbedder implements Embedder {
  private nextWorker = 0;
  private constructor(private readonly workers: EmbedWorker[]) {}

  static async start(modelDir: string, count: number): Promise<ThreadEmbedder> {
    const tsx = import.meta.resolve('tsx/esm/api');
    const entry = new URL('./embed-worker.ts', import.meta.url).href;
    const code = `import(${JSON.stringify(tsx)}).then((m) => { m.register(); return import(${JSON.stringify(entry)}); })`;
    const workers = Array.from({ length: count }, () => new EmbedWorker(new Worker(code, { eval: true, workerData: { modelDir } })));
    await Promise.all(workers.map((w) => w.ready()));
    return new ThreadEmbedder(workers);
  }

  private pick(): EmbedWorker {
    const w = this.workers[this.nextWorker % this.workers.length]!;
    this.nextWorker++;
    return w;
  }

  async embedImageFiles(jobs: ImageJob[]): Promise<ImageBatchResult> {
    const r = await this.pick().request({ type: 'images', jobs });
    if (!r.ok) throw new Error(`embedding worker: ${r.error}`);
    return r.images!;
  }

  async embedTexts(texts: string[]): Promise<Float32Array[]> {
    const r = await this.pick().request({ type: 'texts', texts });
    if (!r.ok) throw new Error(`embedding worker: ${r.error}`);
    return r.texts!;
  }

  async close(): Promise<void> {
    await Promise.all(this.workers.map((w) => w.terminate()));
  }
}
