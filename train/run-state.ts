/**
 * What a run keeps on disk besides its weights: the run state (step, schedule, RNG, best metric) and the
 * checkpoint folders, written so that a resumed run continues exactly where the interrupted one stopped.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { publishCheckpoint, writeTensors } from './checkpoint.ts';
import type { OptimizerState } from './parallel.ts';
import type { ResolvedTrainOptions } from './options.ts';
import type { ValMetrics } from './validate.ts';

export interface RunState {
  step: number;
  rng: number;
  best?: ValMetrics;
  history: ValMetrics[];
  options: Record<string, unknown>;
}

export const CHECKPOINT_LATEST = 'checkpoint-latest';

export const CHECKPOINT_BEST = 'checkpoint-best';

export async function saveCheckpoint(
  dir: string,
  values: Map<string, Float32Array>,
  optimizer: OptimizerState | undefined,
  state: RunState,
): Promise<void> {
  await publishCheckpoint(dir, state.step, async (tmp) => {
    await mkdir(join(tmp, 'weights'));
    await writeTensors(join(tmp, 'weights'), values);
    if (optimizer) {
      const s = optimizer;
      const moments = new Map<string, Float32Array>();
      for (const n of s.m.keys()) {
        moments.set(`${n}/m`, s.m.get(n)!);
        moments.set(`${n}/v`, s.v.get(n)!);
      }
      await mkdir(join(tmp, 'optimizer'));
      await writeTensors(join(tmp, 'optimizer'), moments);
    }
    await writeFile(join(tmp, 'state.json'), JSON.stringify(state, null, 2));
  });
}

export function publicOptions(o: ResolvedTrainOptions): Record<string, unknown> {
  const { log, onStep, config, dicomweb, ...rest } = o;
  void log;
  void onStep;
  // credentials never reach the run folder
  return { ...rest, config: config.name, ...(dicomweb?.url ? { dicomweb: dicomweb.url } : {}) };
}
