/** Run the `medclip` CLI as a child process (as a user would), returning exit code and output. */
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { REPO } from './paths.ts';

const run = promisify(execFile);
const BIN = join(REPO, 'bin/medclip.js');

export interface CliResult {
  /** Exit code; null when the process was ended by a signal (see `signal`). */
  code: number | null;
  signal?: string | null;
  stdout: string;
  stderr: string;
}

export function medclip(...args: string[]): Promise<CliResult> {
  return medclipWith({}, ...args);
}

/** With extra environment variables and a time limit (a hung process is killed and reported with its signal). */
export async function medclipWith(o: { env?: Record<string, string>; timeoutMs?: number }, ...args: string[]): Promise<CliResult> {
  try {
    const { stdout, stderr } = await run(process.execPath, [BIN, ...args], {
      cwd: REPO,
      maxBuffer: 64 * 1024 * 1024,
      env: { ...process.env, ...o.env },
      timeout: o.timeoutMs ?? 0,
      killSignal: 'SIGKILL',
    });
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as { code: number | string | null; signal?: string | null; stdout: string; stderr: string };
    return { code: typeof e.code === 'number' ? e.code : null, signal: e.signal, stdout: e.stdout, stderr: e.stderr };
  }
}
