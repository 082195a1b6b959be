/**
 * Query fan-out for image collections larger than one function: each shard is a Lambda serving its own index
 * bundle (an `IndexReader` over all of them); the API embeds the query once, invokes every shard in parallel (`@aws-sdk/client-lambda`) and merges
 * their top-k. Shards answer the internal event `{ kind: 'medclip-shard', op, ... }` (see `shardRequest`).
 */
import type { LambdaClient } from '@aws-sdk/client-lambda';
import {
  mergeFacets,
  type Hit,
  type ImageFacets,
  type ImageMeta,
  type IndexBundle,
  type SearchFilter,
  localReader,
  type IndexReader,
} from '../bundle/index.ts';
import { boundedCache, stringBytes, withRetry } from '../util/index.ts';
import { MedclipError } from '../errors.ts';

export type ShardRequest =
  | { kind: 'medclip-shard'; op: 'count' }
  | { kind: 'medclip-shard'; op: 'search'; vector: string; k: number; filter?: SearchFilter; crossModal?: boolean }
  | { kind: 'medclip-shard'; op: 'thumbnail'; id: string }
  | { kind: 'medclip-shard'; op: 'facets' };

/** A shard's side: answer an internal request from its local bundle. */
export async function shardRequest(index: IndexBundle, req: ShardRequest): Promise<unknown> {
  const local = localReader(index);
  if (req.op === 'count') return { images: local.count(), version: local.version() };
  if (req.op === 'facets') return local.facets();
  if (req.op === 'thumbnail') {
    const t = await local.preview(req.id);
    return { meta: (await local.get(req.id)) ?? null, jpeg: t ? Buffer.from(t).toString('base64') : null };
  }
  const b = Buffer.from(req.vector, 'base64');
  const vector = new Float32Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength));
  return { hits: await local.search(vector, req.k, req.filter, req.crossModal) };
}

export class ShardFanout implements IndexReader {
  private total = 0;
  private highest = 0;
  /** Which shard holds an id, learned from search results (for previews). */
  private readonly owner = boundedCache<string, number>('shard-owners', (_, id) => stringBytes(id) + 64);

  private constructor(
    private readonly functions: string[],
    private readonly client: LambdaClient,
    private readonly InvokeCommand: typeof import('@aws-sdk/client-lambda').InvokeCommand,
  ) {}

  /** The Lambda SDK is loaded here, not at module load: an API without shards never pays for it. */
  static async connect(functions: string[], client?: LambdaClient): Promise<ShardFanout> {
    const sdk = await import('@aws-sdk/client-lambda');
    const f = new ShardFanout(functions, client ?? new sdk.LambdaClient({}), sdk.InvokeCommand);
    const counts = await Promise.all(
      functions.map((_, i) => f.invoke<{ images: number; version?: number }>(i, { kind: 'medclip-shard', op: 'count' })),
    );
    f.setCounts(counts);
    return f;
  }

  private checkedAt = Date.now();

  private setCounts(counts: { images: number; version?: number }[]): void {
    this.total = counts.reduce((s, c) => s + c.images, 0);
    this.highest = Math.max(0, ...counts.map((c) => c.version ?? 0));
    this.versions = counts.map((c) => c.version);
    this.checkedAt = Date.now();
  }

  /** Whether the shards' counts are older than `ms` (0: never stale). */
  stale(ms: number): boolean {
    return ms > 0 && Date.now() - this.checkedAt >= ms;
  }

  /** Ask every shard its count and version again (each follows its own bundle); merged facets are asked anew. */
  async refresh(): Promise<void> {
    this.checkedAt = Date.now();
    const counts = await Promise.all(
      this.functions.map((_, i) => this.invoke<{ images: number; version?: number }>(i, { kind: 'medclip-shard', op: 'count' })),
    );
    if (counts.some((c, i) => c.version !== this.versions[i])) this.merged = undefined;
    this.setCounts(counts);
  }

  private versions: (number | undefined)[] = [];

  private async invoke<T>(shard: number, req: ShardRequest): Promise<T> {
    let last = '';
    try {
      return await withRetry(
        async () => {
          const out = await this.client.send(
            new this.InvokeCommand({ FunctionName: this.functions[shard], Payload: new TextEncoder().encode(JSON.stringify(req)) }),
          );
          if (out.FunctionError) throw new Error(out.FunctionError);
          return JSON.parse(new TextDecoder().decode(out.Payload)) as T;
        },
        // a query waits for its slowest shard: one quick retry, then a 503 the client can retry
        { retries: 1, backoffMs: 50 },
        (_, err) => {
          last = err.name === 'Error' ? err.message : err.name;
        },
      );
    } catch {
      throw new MedclipError(`index shard ${shard + 1} of ${this.functions.length} did not answer (${last}); retry shortly`, 'unavailable');
    }
  }

  count(): number {
    return this.total;
  }

  version(): number {
    return this.highest;
  }

  async search(vector: Float32Array, k: number, filter?: SearchFilter, crossModal?: boolean): Promise<Hit<ImageMeta>[]> {
    const payload = Buffer.from(vector.buffer, vector.byteOffset, vector.byteLength).toString('base64');
    const parts = await Promise.all(
      this.functions.map((_, i) =>
        this.invoke<{ hits: Hit<ImageMeta>[] }>(i, {
          kind: 'medclip-shard',
          op: 'search',
          vector: payload,
          k,
          filter,
          ...(crossModal ? { crossModal } : {}),
        }),
      ),
    );
    parts.forEach((p, i) => p.hits.forEach((h) => this.owner.set(h.meta.id, i)));
    return parts
      .flatMap((p) => p.hits)
      .sort((a, b) => b.score - a.score)
      .slice(0, k);
  }

  private async lookup(id: string): Promise<{ meta: ImageMeta | null; jpeg: string | null } | undefined> {
    const known = this.owner.get(id);
    const order = known === undefined ? this.functions.map((_, i) => i) : [known];
    for (const i of order) {
      const r = await this.invoke<{ meta: ImageMeta | null; jpeg: string | null }>(i, { kind: 'medclip-shard', op: 'thumbnail', id });
      if (r.meta) return r;
    }
    return undefined;
  }

  async get(id: string): Promise<ImageMeta | undefined> {
    return (await this.lookup(id))?.meta ?? undefined;
  }

  async preview(id: string): Promise<Uint8Array | undefined> {
    const r = await this.lookup(id);
    return r?.jpeg ? Buffer.from(r.jpeg, 'base64') : undefined;
  }

  private merged?: Promise<ImageFacets>;

  /** Every shard's facets, merged; asked once per set of shard versions (`refresh`), again after a failure. */
  facets(): Promise<ImageFacets> {
    if (!this.merged) {
      this.merged = Promise.all(this.functions.map((_, i) => this.invoke<ImageFacets>(i, { kind: 'medclip-shard', op: 'facets' }))).then(
        mergeFacets,
      );
      this.merged.catch(() => {
        this.merged = undefined;
      });
    }
    return this.merged;
  }
}
