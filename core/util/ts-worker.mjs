// Worker-thread entry for running a TypeScript task module from the sources (tests, benches, development): registers
// tsx, then re-exports the module named in workerData.tsEntry. Compiled runs load dist/*.mjs directly instead.
import { workerData } from 'node:worker_threads';
import { register } from 'tsx/esm/api';

register();
const mod = await import(workerData.tsEntry);
export default mod.default;
