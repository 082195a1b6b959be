/**
 * Embedding fan-out to AWS Lambda (`--workers lambda:FUNCTION`): each batch is one synchronous Invoke of the
 * worker handler (`lambda-worker.ts`), many in flight. A failed invocation (function error, throttling,
 * network) is retried with backoff; when retries run out, the batch's items are reported as skipped with the
 * reason, never lost silently. Requests stay under Lambda's 6 MB payload limit.
 */
import { readFile } from 'node:fs/promises';
import { InvokeCommand, LambdaClient } from '@aws-sdk/client-lambda';
import type { Embedder, ImageBatchResult, ImageJob } from './embedder.ts';
import { skipReason } from '../core/model/index.ts';
import { DEFAULT_RETRY, withRetry, LAMBDA_PAYLOAD_LIMIT } from '../core/util/index.ts';
import { IndexBuildError } from './errors.ts';
import type { WorkerRequest, WorkerResponse } from './lambda-worker.ts';

export { LAMBDA_PAYLOAD_LIMIT } from '../core/util/index.ts';
/** Room for JSON framing and the ids. */
const PAYLOAD_BUDGET = LAMBDA_PAYLOAD_LIMIT - 256 * 1024;

export interface LambdaEmbedderOptions {
  client?: LambdaClient;
  retries?: number;
  /** Base delay of the exponential backoff, ms. */
  backoffMs?: number;
  log?: (line: string) => void;
}

const fromBase64 = (s: string) => {
  const b = Buffer.from(s, 'base64');
  return new Float32Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength));
};

export class LambdaEmbedder implements Embedder {
  private readonly client: LambdaClient;
  constructor(
    readonly functionName: string,
    private readonly options: LambdaEmbedderOptions = {},
  ) {
    this.client = options.client ?? new LambdaClient({});
  }

  private async invoke(request: WorkerRequest): Promise<WorkerResponse> {
    const policy = { retries: this.options.retries ?? 3, backoffMs: this.options.backoffMs ?? DEFAULT_RETRY.backoffMs };
    let lastError = '';
    try {
      return await withRetry(
        async () => {
          const out = await this.client.send(
            new InvokeCommand({
              FunctionName: this.functionName,
              InvocationType: 'RequestResponse',
              Payload: new TextEncoder().encode(JSON.stringify(request)),
            }),
          );
          const body = out.Payload ? new TextDecoder().decode(out.Payload) : '';
          if (out.FunctionError) {
            let message = out.FunctionError;
            try {
              message = `${out.FunctionError}: ${(JSON.parse(body) as { errorType?: string }).errorType ?? 'error'}`;
            } catch {
              // keep the bare FunctionError
            }
            throw new Error(message);
          }
          return JSON.parse(body) as WorkerResponse;
        },
        policy,
        (tryNumber, err) => {
          lastError = err.message?.split('\n')[0] ?? String(err);
          this.options.log?.(`lambda ${this.functionName}: attempt ${tryNumber} failed (${lastError})`);
        },
      );
    } catch {
      throw new IndexBuildError(`worker-failed: ${lastError} (after ${policy.retries + 1} attempts)`, 'unavailable');
    }
  }

  async embedImageFiles(jobs: ImageJob[]): Promise<ImageBatchResult> {
    const results: ImageBatchResult['results'] = new Array(jobs.length);
    // Read and split into requests under the payload limit.
    const groups: { index: number; id: string; data: string }[][] = [[]];
    let size = 0;
    for (let i = 0; i < jobs.length; i++) {
      let data: string;
      try {
        data = (await readFile(jobs[i]!.file)).toString('base64');
      } catch (err) {
        results[i] = { ok: false, reason: skipReason(err) };
        continue;
      }
      if (data.length > PAYLOAD_BUDGET) {
        results[i] = { ok: false, reason: 'too-large: over the Lambda request payload limit' };
        continue;
      }
      if (size + data.length > PAYLOAD_BUDGET) {
        groups.push([]);
        size = 0;
      }
      groups[groups.length - 1]!.push({ index: i, id: jobs[i]!.id, data });
      size += data.length;
    }
    await Promise.all(
      groups
        .filter((g) => g.length)
        .map(async (group) => {
          try {
            const r = await this.invoke({ kind: 'images', items: group.map(({ id, data }) => ({ id, data })) });
            if (!('results' in r) || r.results.length !== group.length) throw new Error('worker-failed: malformed response');
            r.results.forEach((res, k) => {
              results[group[k]!.index] = 'vector' in res ? { ok: true, vector: fromBase64(res.vector) } : { ok: false, reason: res.error };
            });
          } catch (err) {
            for (const g of group) results[g.index] = { ok: false, reason: (err as Error).message };
          }
        }),
    );
    return { results };
  }

  async embedTexts(texts: string[]): Promise<Float32Array[]> {
    const r = await this.invoke({ kind: 'texts', texts });
    if (!('vectors' in r) || r.vectors.length !== texts.length) throw new Error('worker-failed: malformed response');
    return r.vectors.map(fromBase64);
  }

  async close(): Promise<void> {
    this.client.destroy();
  }
}
