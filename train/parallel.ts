/** Replicas in-process or on worker threads, behind one interface. */
import type { Worker } from 'node:worker_threads';
import { startWorker } from '../core/util/index.ts';
import { Replica, type BatchArrays, type ReplicaInit, type StepResult } from './replica.ts';

export interface OptimizerState {
  step: number;
  m: Map<string, Float32Array>;
  v: Map<string, Float32Array>;
}

export interface ReplicaHandle {
  step(batch: BatchArrays): Promise<StepResult>;
  apply(grads: Float32Array, bnStats: Float32Array, lr: number): Promise<void>;
  state(): Promise<{ values: Map<string, Float32Array>; optimizer: OptimizerState }>;
  loadOptimizer(state: OptimizerState): Promise<void>;
  close(): Promise<void>;
}

class LocalReplica implements ReplicaHandle {
  constructor(readonly replica: Replica) {}
  async step(batch: BatchArrays) {
    return this.replica.step(batch);
  }
  async apply(grads: Float32Array, bnStats: Float32Array, lr: number) {
    this.replica.apply(grads, bnStats, lr);
  }
  async state() {
    return { values: this.replica.model.values(), optimizer: this.replica.optimizer.state() };
  }
  async loadOptimizer(state: OptimizerState) {
    this.replica.optimizer.load(state);
  }
  async close() {
    this.replica.dispose();
  }
}

class WorkerReplica implements ReplicaHandle {
  // biome-ignore lint/suspicious/noExplicitAny: worker messages are structured-clone values of several shapes
  private pending?: { resolve: (v: any) => void; reject: (e: Error) => void };
  private failure?: Error;

  private constructor(private readonly worker: Worker) {
    worker.on('message', (msg: { ok: boolean; error?: string }) => {
      const p = this.pending;
      this.pending = undefined;
      if (!p) return;
      if (msg.ok) p.resolve(msg);
      else p.reject(new Error(`training worker: ${msg.error}`));
    });
    const fail = (err: Error) => {
      this.failure = err;
      this.pending?.reject(err);
      this.pending = undefined;
    };
    worker.on('error', fail);
    worker.on('exit', (code) => fail(new Error(`training worker exited (code ${code})`)));
  }

  static async start(backend: string, init: ReplicaInit): Promise<WorkerReplica> {
    const worker = startWorker(import.meta.url, { source: './worker.ts', compiled: 'train-worker.mjs' }, { workerData: { backend, init } });
    const r = new WorkerReplica(worker);
    await r.wait();
    return r;
  }

  // biome-ignore lint/suspicious/noExplicitAny: worker messages are structured-clone values of several shapes
  private wait(): Promise<any> {
    if (this.failure) return Promise.reject(this.failure);
    return new Promise((resolve, reject) => (this.pending = { resolve, reject }));
  }

  // biome-ignore lint/suspicious/noExplicitAny: worker messages are structured-clone values of several shapes
  private request(msg: unknown, transfer: ArrayBuffer[] = []): Promise<any> {
    const p = this.wait();
    this.worker.postMessage(msg, transfer);
    return p;
  }

  async step(batch: BatchArrays) {
    return ((await this.request({ type: 'step', batch })) as { result: StepResult }).result;
  }
  async apply(grads: Float32Array, bnStats: Float32Array, lr: number) {
    await this.request({ type: 'apply', grads, bnStats, lr });
  }
  async state() {
    const r = await this.request({ type: 'state' });
    return { values: r.values as Map<string, Float32Array>, optimizer: r.optimizer as OptimizerState };
  }
  async loadOptimizer(state: OptimizerState) {
    await this.request({ type: 'loadOptimizer', ...state });
  }
  async close() {
    await this.worker.terminate();
  }
}

/** `count` replicas: 1 = in-process on the current backend, more = one worker thread each. */
export async function createReplicas(count: number, backend: string, init: ReplicaInit): Promise<ReplicaHandle[]> {
  if (count <= 1) return [new LocalReplica(new Replica(init))];
  return Promise.all(Array.from({ length: count }, () => WorkerReplica.start(backend, init)));
}
