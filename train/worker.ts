/** Worker-thread side of data-parallel training: one `Replica` on its own tfjs backend instance. */
import { parentPort, workerData } from 'node:worker_threads';
import { selectBackend } from './backend.ts';
import { Replica, type BatchArrays, type ReplicaInit } from './replica.ts';

export type WorkerRequest =
  | { type: 'step'; batch: BatchArrays }
  | { type: 'apply'; grads: Float32Array; bnStats: Float32Array; lr: number }
  | { type: 'state' }
  | { type: 'loadOptimizer'; step: number; m: Map<string, Float32Array>; v: Map<string, Float32Array> };

const port = parentPort;
if (port) {
  const { backend, init } = workerData as { backend: string; init: ReplicaInit };
  await selectBackend(backend);
  const replica = new Replica(init);
  port.on('message', (msg: WorkerRequest) => {
    try {
      if (msg.type === 'step') {
        const r = replica.step(msg.batch);
        port.postMessage({ ok: true, result: r }, [r.grads.buffer as ArrayBuffer, r.bnStats.buffer as ArrayBuffer]);
      } else if (msg.type === 'apply') {
        replica.apply(msg.grads, msg.bnStats, msg.lr);
        port.postMessage({ ok: true });
      } else if (msg.type === 'state') {
        port.postMessage({ ok: true, values: replica.model.values(), optimizer: replica.optimizer.state() });
      } else if (msg.type === 'loadOptimizer') {
        replica.optimizer.load(msg);
        port.postMessage({ ok: true });
      }
    } catch (err) {
      port.postMessage({ ok: false, error: (err as Error).message });
    }
  });
  port.postMessage({ ok: true, ready: true });
}
