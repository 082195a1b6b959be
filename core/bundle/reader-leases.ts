/**
 * Reader leases: a serving process says which version of a versioned folder (core/bundle/versioned-dir.ts) it still reads,
 * so a writer's publish never prunes a version from under it.
 *
 *   indexes/big/.readers/v000007~4121~9f3a1c2e    {"version":"v000007","pid":4121,"host":"api-1","since":"…"}
 *
 * One small file per reader and version. A lease is live while its process is (same host: the pid answers signal 0;
 * a process frozen between Lambda invocations keeps its lease) or, for a reader on another host sharing the folder,
 * while its file was touched within LEASE_TTL_MS (readers touch theirs every HEARTBEAT_MS). Writers ignore and
 * remove the leases of dead readers. A folder the reader cannot write (a read-only package) gets no lease: no
 * writer can prune it either.
 *
 *   const lease = await takeLease(location, 'v000007');   // before loading the version
 *   ...                                                    // serve from it
 *   await lease.release();                                 // once no request uses it
 *   const inUse = await leasedVersions(location);          // a writer, before pruning
 */
import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import { mkdir, readFile, readdir, rm, stat, utimes, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

export const READERS_DIR = '.readers';
/** The lease name of a folder written before versions (its files at the top); no version folder is named so. */
export const ROOT_VERSION = '@root';
export const HEARTBEAT_MS = 10_000;
export const LEASE_TTL_MS = 60_000;

export interface ReaderLease {
  readonly version: string;
  /** The lease file; undefined when the folder could not be written (nothing to release). */
  readonly file: string | undefined;
  release(): Promise<void>;
}

interface LeaseRecord {
  version: string;
  pid: number;
  host: string;
  since: string;
}

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Take a lease on `version` of the versioned folder `location` (heartbeat on an unref'd timer). */
export async function takeLease(location: string, version: string): Promise<ReaderLease> {
  const dir = join(location, READERS_DIR);
  const file = join(dir, `${version}~${process.pid}~${randomBytes(4).toString('hex')}`);
  const record: LeaseRecord = { version, pid: process.pid, host: hostname(), since: new Date().toISOString() };
  try {
    await mkdir(dir, { recursive: true });
    await writeFile(file, JSON.stringify(record));
  } catch {
    // read-only (a packaged bundle, a read-only mount): nobody can prune it either
    return { version, file: undefined, release: async () => {} };
  }
  let released = false;
  const beat = setInterval(() => {
    const now = new Date();
    // a file removed by someone who judged it stale is written again
    utimes(file, now, now).catch(() => (released ? undefined : writeFile(file, JSON.stringify(record)).catch(() => {})));
  }, HEARTBEAT_MS);
  beat.unref();
  return {
    version,
    file,
    release: async () => {
      released = true;
      clearInterval(beat);
      await rm(file, { force: true }).catch(() => {});
    },
  };
}

/**
 * The versions of `location` that live readers hold; the lease files of dead readers are removed on the way.
 * A lease file that cannot be read yet (being written) counts as live for its version.
 */
export async function leasedVersions(location: string, now = Date.now()): Promise<Set<string>> {
  const dir = join(location, READERS_DIR);
  const held = new Set<string>();
  let names: string[];
  try {
    names = await readdir(dir);
  } catch {
    return held;
  }
  const host = hostname();
  for (const name of names) {
    const file = join(dir, name);
    const version = name.split('~')[0]!;
    let record: LeaseRecord | undefined;
    let touched = now;
    try {
      [record, touched] = await Promise.all([
        readFile(file, 'utf8').then((t) => JSON.parse(t) as LeaseRecord),
        stat(file).then((s) => s.mtimeMs),
      ]);
    } catch {
      record = undefined;
    }
    const live = !record ? now - touched < LEASE_TTL_MS : record.host === host ? processAlive(record.pid) : now - touched < LEASE_TTL_MS;
    if (live) held.add(record?.version ?? version);
    else await rm(file, { force: true }).catch(() => {});
  }
  return held;
}
