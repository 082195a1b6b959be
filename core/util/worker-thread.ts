/**
 * Starting a worker thread on one of the project's modules, the same way wherever it runs: from the compiled
 * JavaScript in dist/ (the CLI as shipped: `dist/<name>.mjs` next to the caller, no TypeScript loader at run time),
 * or from the TypeScript sources (tests, benches, development), where the worker first registers tsx.
 *
 *   startWorker(import.meta.url, { source: '../embed-worker.ts', compiled: 'embed-worker.mjs' }, { workerData })
 */
import { Worker, type WorkerOptions } from 'node:worker_threads';

export function startWorker(callerUrl: string, entry: { source: string; compiled: string }, options: WorkerOptions): Worker {
  if (!callerUrl.endsWith('.ts')) return new Worker(new URL(`./${entry.compiled}`, callerUrl), options);
  const tsx = import.meta.resolve('tsx/esm/api');
  const url = new URL(entry.source, callerUrl).href;
  const code = `import(${JSON.stringify(tsx)}).then((m) => { m.register(); return import(${JSON.stringify(url)}); })`;
  return new Worker(code, { ...options, eval: true });
}

/**
 * The file a worker pool (piscina) loads for a task module: `dist/<compiled>` when running compiled, else the tsx
 * shim (core/util/ts-worker.mjs) with the TypeScript module to load in `workerData.tsEntry`.
 */
export function taskFile(
  callerUrl: string,
  entry: { source: string; compiled: string },
): { filename: string; workerData: Record<string, unknown> } {
  if (!callerUrl.endsWith('.ts')) return { filename: new URL(`./${entry.compiled}`, callerUrl).href, workerData: {} };
  return { filename: new URL('./ts-worker.mjs', import.meta.url).href, workerData: { tsEntry: new URL(entry.source, callerUrl).href } };
}
