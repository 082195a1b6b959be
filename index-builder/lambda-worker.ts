/**
 * The embedding worker as an AWS Lambda handler (deployed by infra; invoked by `medclip index --workers
 * lambda:FUNCTION`). The model loads once per container from MEDCLIP_MODEL_DIR (default: the shipped model).
 * Request: { kind: 'images', items: [{ id, data: base64 }] } or { kind: 'texts', texts: [...] }.
 * Response: per item { id, vector: base64 float32 } or { id, error }, so one bad image never fails a batch.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { fetchBundle } from '../core/bundle/index.ts';
import { MedClipModel, embedImageSources } from '../core/model/index.ts';
import { readEnv } from '../core/util/index.ts';

export type WorkerRequest = { kind: 'images'; items: { id: string; data: string }[] } | { kind: 'texts'; texts: string[] };
export type WorkerResponse = { results: ({ id: string; vector: string } | { id: string; error: string })[] } | { vectors: string[] };

const here = fileURLToPath(new URL('.', import.meta.url));
const DEFAULT_MODEL = join(existsSync(join(here, 'models')) ? here : join(here, '..'), 'models', 'medclip-tiny');
let modelPromise: Promise<MedClipModel> | undefined;

function model(): Promise<MedClipModel> {
  modelPromise ??= (async () => {
    const env = readEnv();
    const uri = env.MEDCLIP_MODEL_URI;
    const dir = uri ? await fetchBundle({ uri, cacheDir: env.MEDCLIP_CACHE_DIR }) : (env.MEDCLIP_MODEL_DIR ?? DEFAULT_MODEL);
    return MedClipModel.load(dir, { threads: env.MEDCLIP_THREADS });
  })();
  return modelPromise;
}

const toBase64 = (v: Float32Array) => Buffer.from(v.buffer, v.byteOffset, v.byteLength).toString('base64');

export async function handler(event: WorkerRequest): Promise<WorkerResponse> {
  const m = await model();
  if (event?.kind === 'texts') {
    if (!Array.isArray(event.texts) || event.texts.some((t) => typeof t !== 'string')) throw new Error('texts must be an array of strings');
    return { vectors: (await m.embedTexts(event.texts)).map(toBase64) };
  }
  if (event?.kind !== 'images' || !Array.isArray(event.items))
    throw new Error('request must be { kind: "images", items } or { kind: "texts", texts }');
  const out = await embedImageSources(
    m,
    event.items.map((item) => Buffer.from(item.data, 'base64')),
  );
  return {
    results: event.items.map((item, i) => {
      const r = out[i]!;
      return r.ok ? { id: item.id, vector: toBase64(r.vector) } : { id: item.id, error: r.reason };
    }),
  };
}
