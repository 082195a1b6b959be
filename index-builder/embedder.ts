/**
 * Embedding backends for the index builder. `LocalEmbedder` runs onnxruntime in this process (decoding on
 * sharp's thread pool); `ThreadEmbedder` spreads batches over worker threads, each with its own model
 * sessions. Bad images never fail a batch: they come back as errors with the item's id and a reason code.
 */
import type { Worker } from 'node:worker_threads';
import { startWorker } from '../core/worker-thread.ts';
import { DECODE_CONCURRENCY, embedImageSources } from '../core/embed-images.ts';
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

export { skipReason } from '../core/embed-images.ts';

export class LocalEmbedder implements Embedder {
  constructor(
    readonly model: MedClipModel,
    private readonly decodeConcurrency = DECODE_CONCURRENCY,
  ) {}

  async embedImageFiles(jobs: ImageJob[]): Promise<ImageBatchResult> {
    const out = await embedImageSources(
      this.model,
      jobs.map((j) => j.file),
      { concurrency: this.decodeConcurrency },
    );
    return { results: out.map((r) => (r.ok ? { ok: true as const, vector: r.vector } : { ok: false as const, reason: r.reason })) };
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
    const entry = { source: './embed-worker.ts', compiled: 'embed-worker.mjs' };
    const workers = Array.from({ length: count }, () => new EmbedWorker(startWorker(import.meta.url, entry, { workerData: { modelDir } })));
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
