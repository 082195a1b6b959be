/**
 * One writer at a time per bundle folder (index bundles, training runs). proper-lockfile makes `<dir>.lock` with
 * mkdir (atomic, also on network file systems) and refreshes its mtime while held, so the lock of a process that
 * was killed -9 goes stale after `staleMs` and the next writer takes it over. Who holds the lock is written into
 * the lock folder, so a writer that gives up waiting can say who it waited for.
 *
 *   await withLock('indexes/sample', 'medclip index --append', async () => { ...read latest, write, publish... });
 */
import { hostname } from 'node:os';
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import lockfile from 'proper-lockfile';
import { MedclipError } from '../errors.ts';

export class LockTimeoutError extends MedclipError {
  constructor(message: string) {
    super(message, 'unavailable');
  }
}

export interface LockOptions {
  /** How long to wait for another writer to finish (default 10 minutes). */
  waitMs?: number;
  /** A lock not refreshed for this long belongs to a dead process (proper-lockfile minimum 5 s; default 10 s). */
  staleMs?: number;
  /** Told once when the lock is busy and this writer starts waiting. */
  onWait?: (holder: string) => void;
}

export const DEFAULT_LOCK_WAIT_MS = 10 * 60_000;

interface Owner {
  pid: number;
  host: string;
  task: string;
  since: string;
}

export const lockPath = (dir: string): string => `${resolve(dir)}.lock`;
/** Beside the lock folder, not in it: proper-lockfile removes the lock with rmdir, which needs it empty. */
const ownerPath = (dir: string): string => `${lockPath(dir)}.owner.json`;

/** A description of the current holder, e.g. `pid 4242 on host-a (medclip index --append) since 2026-…`. */
export async function lockHolder(dir: string): Promise<string> {
  try {
    const o = JSON.parse(await readFile(ownerPath(dir), 'utf8')) as Owner;
    return `pid ${o.pid} on ${o.host} (${o.task}) since ${o.since}`;
  } catch {
    return 'another process (its details are not written yet)';
  }
}

/** Run `fn` holding the lock of `dir`; `assertHeld` throws if the lock was lost meanwhile (check before publishing). */
export async function withLock<T>(dir: string, task: string, fn: (assertHeld: () => void) => Promise<T>, o: LockOptions = {}): Promise<T> {
  const target = resolve(dir);
  await mkdir(dirname(target), { recursive: true });
  const waitMs = o.waitMs ?? DEFAULT_LOCK_WAIT_MS;
  const deadline = Date.now() + waitMs;
  let compromised: Error | undefined;
  let release: (() => Promise<void>) | undefined;
  let told = false;
  let pause = 50;
  while (!release) {
    try {
      release = await lockfile.lock(target, {
        realpath: false,
        lockfilePath: lockPath(target),
        stale: o.staleMs ?? 10_000,
        retries: 0,
        // Losing the lock (its folder removed, or refreshes failing) must not kill the process: the writer
        // checks `assertHeld` before it publishes and fails cleanly instead.
        onCompromised: (err) => {
          compromised = err;
        },
      });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ELOCKED') throw err;
      if (Date.now() >= deadline)
        throw new LockTimeoutError(
          `${dir} is being written by ${await lockHolder(target)}; gave up after ${Math.round(waitMs / 1000)} s (raise the wait with --lock-timeout)`,
        );
      if (!told) {
        o.onWait?.(await lockHolder(target));
        told = true;
      }
      await new Promise((r) => setTimeout(r, Math.min(pause, Math.max(1, deadline - Date.now()))));
      pause = Math.min(1000, pause * 2);
    }
  }
  try {
    const owner: Owner = { pid: process.pid, host: hostname(), task, since: new Date().toISOString() };
    await writeFile(ownerPath(target), JSON.stringify(owner));
    return await fn(() => {
      if (compromised) throw new LockTimeoutError(`${dir}: the write lock was lost (${compromised.message}); nothing was published`);
    });
  } finally {
    await rm(ownerPath(target), { force: true });
    await release().catch(() => {}); // a compromised lock is already gone
  }
}
