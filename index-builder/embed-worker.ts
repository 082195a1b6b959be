/** Worker-thread side of `ThreadEmbedder`: one model (1 onnxruntime thread), answering requests in order. */
import { parentPort, workerData } from 'node:worker_threads';
import { MedClipModel } from '../core/model.ts';
import { LocalEmbedder } from './embedder.ts';

const port = parentPort;
if (port) {
  const { modelDir } = workerData as { modelDir: string };
  const model = await MedClipModel.load(modelDir, { threads: 1 });
  const embedder = new LocalEmbedder(model, 4);
  // Requests are handled one at a time, so replies keep the request order.
  let chain = Promise.resolve();
  port.on('message', (msg: { type: string; jobs?: { id: string; file: string }[]; texts?: string[] }) => {
    chain = chain.then(async () => {
      try {
        if (msg.type === 'ping') port.postMessage({ ok: true });
        else if (msg.type === 'images') port.postMessage({ ok: true, images: await embedder.embedImageFiles(msg.jobs ?? []) });
        else if (msg.type === 'texts') port.postMessage({ ok: true, texts: await embedder.embedTexts(msg.texts ?? []) });
        else port.postMessage({ ok: false, error: `unknown request ${msg.type}` });
      } catch (err) {
        port.postMessage({ ok: false, error: (err as Error).message });
      }
    });
  });
}
