/**
 * A folder published in versions, so that no reader (and no crash) ever finds it empty or half-written:
 *
 *   indexes/sample/
 *     CURRENT        one line naming the live version folder, replaced by rename(2)
 *     v000004/       the live version (complete: written under a staging name, then renamed in)
 *     v000003/       the previous version, kept until the next publish (a reader that read CURRENT just before
 *                    the switch still finds its files)
 *     .staging-*     a version being written; a killed writer's leftovers are removed by the next writer
 *     .readers/      leases of serving processes on the versions they still read (core/bundle/reader-leases.ts): a
 *                    leased version outlives the next publishes until its reader lets go
 *
 * Writers must hold the folder's lock (`core/bundle/lock.ts`); readers need none. A folder written before versions
 * existed (its files directly inside) still reads as one version, and is tidied away two publishes later.
 *
 *   const staged = await stageVersion(dir);            // write into `staged`
 *   await publishVersion(dir, staged, 'v000004');       // atomic switch, then prune to current + previous
 *   const live = await currentVersion(dir, 'manifest.json');
 */
import { randomBytes } from 'node:crypto';
import { accessSync, constants, existsSync, readFileSync } from 'node:fs';
import { mkdir, open, readdir, readFile, rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { MedclipError } from '../errors.ts';
import { fsErrorReason } from '../util/index.ts';
import { leasedVersions, ROOT_VERSION } from './reader-leases.ts';

export const CURRENT_FILE = 'CURRENT';
const STAGING_PREFIX = '.staging-';
const VERSION_NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$/;
/** The version folders this project's writers name (index versions, training checkpoints, S3 cache copies). */
const WRITTEN_VERSION = /^(v\d{6,}|step-\d+-[a-z0-9]+|fetch-[a-z0-9]+-\d+)$/;

export class VersionedDirError extends MedclipError {
  constructor(message: string) {
    super(message, 'data');
  }
}

/**
 * Crash drills: `MEDCLIP_FAULT_KILL_AT=<point>` kills this process with SIGKILL when a writer reaches that point
 * (staged, renamed, pointer, switched), so tests can prove a crash anywhere leaves a loadable previous version.
 */
export function faultPoint(point: string): void {
  if (process.env.MEDCLIP_FAULT_KILL_AT === point) process.kill(process.pid, 'SIGKILL');
}

/** `v000012`: version folder names sort by number. */
export function versionName(version: number): string {
  return `v${String(version).padStart(6, '0')}`;
}

/** The name CURRENT points at, or undefined when the folder has no CURRENT file. */
export async function currentName(dir: string): Promise<string | undefined> {
  let text: string;
  try {
    text = await readFile(join(dir, CURRENT_FILE), 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT' || (err as NodeJS.ErrnoException).code === 'ENOTDIR') return undefined;
    throw new VersionedDirError(`${join(dir, CURRENT_FILE)}: cannot read (${fsErrorReason(err)})`);
  }
  const name = text.trim();
  if (!VERSION_NAME.test(name)) throw new VersionedDirError(`${dir}: ${CURRENT_FILE} does not name a version folder`);
  return name;
}

/**
 * The folder holding the live version: `dir/<CURRENT>`, or `dir` itself for a folder written before versions
 * existed (recognised by `marker`, e.g. manifest.json, directly inside). Undefined when there is neither.
 */
export async function currentVersion(dir: string, marker: string): Promise<string | undefined> {
  const name = await currentName(dir);
  if (name) return join(dir, name);
  return hasMarker(dir, marker) ? dir : undefined;
}

/** Whether `dir` holds `marker`; a folder that cannot be read says so (a permission error is not "no bundle"). */
function hasMarker(dir: string, marker: string): boolean {
  try {
    accessSync(join(dir, marker), constants.R_OK);
    return true;
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') return false;
    throw new VersionedDirError(`${join(dir, marker)}: cannot read (${fsErrorReason(err)})`);
  }
}

/** `currentVersion` for synchronous callers. */
export function currentVersionSync(dir: string, marker: string): string | undefined {
  let text: string | undefined;
  try {
    text = readFileSync(join(dir, CURRENT_FILE), 'utf8');
  } catch {
    text = undefined;
  }
  if (text !== undefined) {
    const name = text.trim();
    if (!VERSION_NAME.test(name)) throw new VersionedDirError(`${dir}: ${CURRENT_FILE} does not name a version folder`);
    return join(dir, name);
  }
  return hasMarker(dir, marker) ? dir : undefined;
}

/** Remove what killed writers left (staging folders). Call with the folder's lock held. */
export async function removeStaleStaging(dir: string): Promise<string[]> {
  if (!existsSync(dir)) return [];
  const stale = (await readdir(dir)).filter((n) => n.startsWith(STAGING_PREFIX) || n.startsWith(`.${CURRENT_FILE}.`));
  for (const n of stale) await rm(join(dir, n), { recursive: true, force: true });
  return stale;
}

/** A fresh, empty staging folder inside `dir` for the next version. */
export async function stageVersion(dir: string): Promise<string> {
  await mkdir(dir, { recursive: true });
  const staged = join(dir, `${STAGING_PREFIX}${process.pid}-${randomBytes(4).toString('hex')}`);
  await mkdir(staged);
  return staged;
}

async function fsyncPath(path: string): Promise<void> {
  const fh = await open(path, 'r');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

/**
 * Make `staged` the live version named `name`: rename it in, then replace CURRENT by rename (readers see the old
 * version or the new one, never neither), then remove everything but the new and the previous version.
 */
export async function publishVersion(dir: string, staged: string, name: string): Promise<string> {
  if (!VERSION_NAME.test(name)) throw new VersionedDirError(`not a valid version name: ${name}`);
  const previous = await currentName(dir);
  if (previous === name) throw new VersionedDirError(`${dir}: version ${name} is already live`);
  const target = join(dir, name);
  faultPoint('staged');
  // A folder of this name that is not live is the leftover of a publish killed before its switch.
  await rm(target, { recursive: true, force: true });
  await rename(staged, target);
  faultPoint('renamed');
  const pointer = join(dir, `.${CURRENT_FILE}.${process.pid}-${randomBytes(4).toString('hex')}`);
  const fh = await open(pointer, 'w');
  try {
    await fh.writeFile(`${name}\n`);
    await fh.sync();
  } finally {
    await fh.close();
  }
  faultPoint('pointer');
  await rename(pointer, join(dir, CURRENT_FILE));
  await fsyncPath(dir);
  faultPoint('switched');
  await pruneVersions(dir, name, previous);
  return target;
}

/**
 * Remove every version but the live one, the one before it (a reader that read CURRENT just before the switch still
 * finds its files) and those a live reader holds a lease on (core/bundle/reader-leases.ts): a serving process that follows
 * the folder keeps its version until its last request on it has finished. A folder from before versions (files at
 * the top) is the previous version on its first versioned publish, and is removed on a later one unless leased.
 */
export async function pruneVersions(dir: string, live: string, previous: string | undefined): Promise<string[]> {
  const leased = await leasedVersions(dir);
  const keep = new Set([CURRENT_FILE, live, ...(previous ? [previous] : []), ...leased]);
  const removed: string[] = [];
  for (const entry of await readdir(dir)) {
    if (keep.has(entry) || entry.startsWith('.')) continue;
    if (!previous) continue; // the legacy files are the previous version: keep them this time
    if (leased.has(ROOT_VERSION) && !WRITTEN_VERSION.test(entry)) continue; // a reader still reads the legacy files
    await rm(join(dir, entry), { recursive: true, force: true });
    removed.push(entry);
  }
  return removed;
}
