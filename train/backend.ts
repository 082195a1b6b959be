/**
 * TensorFlow.js backend selection: the fastest one that loads, or the one asked for.
 * Order: tfjs-node-gpu (CUDA), tfjs-node (native CPU), wasm (SIMD), cpu (pure JS, for tests only).
 */
import * as tf from '@tensorflow/tfjs';
import { createRequire } from 'node:module';
import { MedclipError } from '../core/errors.ts';

export const BACKENDS = ['tensorflow-gpu', 'tensorflow', 'wasm', 'cpu'] as const;
export type BackendName = (typeof BACKENDS)[number];

const require = createRequire(import.meta.url);

export class BackendError extends MedclipError {
  constructor(message: string) {
    super(message, 'unavailable');
  }
}

async function tryLoad(name: BackendName): Promise<boolean> {
  try {
    if (name === 'tensorflow-gpu') {
      // Registers the 'tensorflow' backend on CUDA; it shares tfjs-core with us only when versions match.
      require('@tensorflow/tfjs-node-gpu');
      return tf.setBackend('tensorflow');
    }
    if (name === 'tensorflow') {
      require('@tensorflow/tfjs-node');
      return tf.setBackend('tensorflow');
    }
    if (name === 'wasm') {
      await import('@tensorflow/tfjs-backend-wasm');
      return tf.setBackend('wasm');
    }
    // the cpu backend ships with @tensorflow/tfjs
    return tf.setBackend('cpu');
  } catch {
    return false;
  }
}

/** Activate a backend; `preferred` forces one (error if it cannot load), otherwise the fastest available. */
export async function selectBackend(preferred?: string): Promise<BackendName> {
  if (preferred !== undefined && preferred !== 'auto') {
    if (!(BACKENDS as readonly string[]).includes(preferred))
      throw new BackendError(`unknown backend "${preferred}" (choose ${BACKENDS.join(', ')} or auto)`);
    if (!(await tryLoad(preferred as BackendName))) throw new BackendError(`backend "${preferred}" is not available on this machine`);
    await tf.ready();
    return preferred as BackendName;
  }
  for (const name of BACKENDS) {
    if (await tryLoad(name)) {
      await tf.ready();
      return name;
    }
  }
  throw new BackendError('no TensorFlow.js backend could be loaded');
}
