/**
 * Embedding backends for the index builder. `LocalEmbedder` runs onnxruntime in this process (decoding on
 * sharp's thread pool); `ThreadEmbedder` spreads batches over worker threads, each with its own model
 * sessions. Bad images never fail a batch: they come back as errors with the item's id and a reason code.
 */
import { Piscina } from 'piscina';
import { taskFile } from '../core/util/index.ts';
import { DECODE_CONCURRENCY, embedImageSources, type MedClipModel } from '../core/model/index.ts';

export interface ImageJob {
  id: string;
  file: string;
}

/** What `ThreadEmbedder` sends its worker threads (index-builder/embed-worker.ts). */
export type EmbedTask = { type: 'ping' } | { type: 'images'; jobs: ImageJob[] } | { type: 'texts'; texts: string[] };

export interface ImageBatchResult {
  /** One per job, in order: the embedding, or why the image was skipped. */
  results: ({ ok: true; vector: Float32Array } | { ok: false; reason: string })[];
}

export interface Embedder {
  embedImageFiles(jobs: ImageJob[]): Promise<ImageBatchResult>;
  embedTexts(texts: string[]): Promise<Float32Array[]>;
  close(): Promise<void>;
}

export { skipReason } from '../core/model/index.ts';

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

/**
 * Batches spread over worker threads by a piscina pool, each worker with its own model (one onnxruntime thread):
 * piscina queues the batches, hands each to a free worker and reports a worker that dies as the batch's error.
 */
export class ThreadEmbedder implements Embedder {
  private constructor(private readonly pool: Piscina) {}

  static async start(modelDir: string, count: number): Promise<ThreadEmbedder> {
    const { filename, workerData } = taskFile(import.meta.url, { source: './embed-worker.ts', compiled: 'embed-worker.mjs' });
    const pool = new Piscina({
      filename,
      workerData: { ...workerData, modelDir },
      minThreads: count,
      maxThreads: count,
      idleTimeout: Infinity,
    });
    // every worker loads its model before the first batch: a model that cannot load fails the start, not a batch
    try {
      await Promise.all(Array.from({ length: count }, () => pool.run({ type: 'ping' } satisfies EmbedTask)));
    } catch (err) {
      await pool.destroy();
      throw new Error(`embedding worker: ${(err as Error).message}`);
    }
    return new ThreadEmbedder(pool);
  }

  async embedImageFiles(jobs: ImageJob[]): Promise<ImageBatchResult> {
    return this.run({ type: 'images', jobs }) as Promise<ImageBatchResult>;
  }

  async embedTexts(texts: string[]): Promise<Float32Array[]> {
    return this.run({ type: 'texts', texts }) as Promise<Float32Array[]>;
  }

  private async run(task: EmbedTask): Promise<unknown> {
    try {
      return await this.pool.run(task);
    } catch (err) {
      throw new Error(`embedding worker: ${(err as Error).message}`);
    }
  }

  async close(): Promise<void> {
    await this.pool.destroy();
  }
}
