/** Worker-thread task of `ThreadEmbedder` (run by piscina): each worker loads its own model once (1 onnxruntime thread). */
import { workerData } from 'node:worker_threads';
import { MedClipModel } from '../core/model/index.ts';
import { LocalEmbedder, type EmbedTask, type ImageBatchResult } from './embedder.ts';

let embedder: Promise<LocalEmbedder> | undefined;

export default async function run(task: EmbedTask): Promise<ImageBatchResult | Float32Array[] | true> {
  embedder ??= MedClipModel.load((workerData as { modelDir: string }).modelDir, { threads: 1 }).then((m) => new LocalEmbedder(m, 4));
  const e = await embedder;
  if (task.type === 'ping') return true;
  if (task.type === 'images') return e.embedImageFiles(task.jobs);
  return e.embedTexts(task.texts);
}
