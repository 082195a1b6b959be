/**
 * A verified-at-write marker: once every file of a version folder has been checked against the manifest's sha256
 * (by the writer that made them, the S3 fetch that downloaded them, or a first load), `.verified.json` in the folder
 * records each file's size, modification time and inode, and the manifest's. A later load whose files all still match
 * skips hashing them (at 100k vectors, ~70 MB read and hashed on every cold start). Any change to a file (a partial
 * copy, a tool rewriting it, a replaced manifest) changes its stat and the load hashes everything again. It guards
 * against corruption and accidents, not against someone who can write the bundle folder (who could rewrite the
 * manifest's hashes too). A folder that cannot be written gets no marker and is hashed on every load.
 */
import { readFile, stat, writeFile, rename } from 'node:fs/promises';
import { join } from 'node:path';

export const VERIFIED_MARKER = '.verified.json';
const MARKER_VERSION = 1;

export type Signature = [size: number, mtimeMs: number, ino: number];

export async function signature(path: string): Promise<Signature | undefined> {
  try {
    const s = await stat(path);
    return [s.size, s.mtimeMs, s.ino];
  } catch {
    return undefined;
  }
}

/** Whether `dir` holds a marker matching the manifest and every named file as they are now. */
export async function markerMatches(dir: string, names: string[]): Promise<boolean> {
  let marker: { version: number; files: Record<string, Signature> };
  try {
    marker = JSON.parse(await readFile(join(dir, VERIFIED_MARKER), 'utf8'));
  } catch {
    return false;
  }
  if (marker?.version !== MARKER_VERSION || typeof marker.files !== 'object') return false;
  for (const name of ['manifest.json', ...names]) {
    const now = await signature(join(dir, name));
    const then = marker.files[name];
    if (!now || !Array.isArray(then) || now.some((v, i) => v !== then[i])) return false;
  }
  return true;
}

/**
 * Record that the manifest and the files of `dir` were verified (best effort, atomic). `before` holds each file's
 * signature taken before it was hashed: a file that changed since is not vouched for (no marker is written).
 */
export async function writeMarker(dir: string, before: Record<string, Signature>): Promise<void> {
  try {
    const files: Record<string, Signature> = {};
    for (const [name, then] of Object.entries(before)) {
      const now = await signature(join(dir, name));
      if (!now || now.some((v, i) => v !== then[i])) return;
      files[name] = now;
    }
    if (!files['manifest.json']) return;
    const tmp = join(dir, `${VERIFIED_MARKER}.${process.pid}.tmp`);
    await writeFile(tmp, JSON.stringify({ version: MARKER_VERSION, files }));
    await rename(tmp, join(dir, VERIFIED_MARKER));
  } catch {
    // a read-only folder (a deployment package): no marker, every load hashes
  }
}

/** A writer that hashed the bytes it wrote (the bundle writer, the S3 fetch) vouches for its folder as it is now. */
export async function vouchFor(dir: string, names: string[]): Promise<void> {
  const now: Record<string, Signature> = {};
  for (const name of ['manifest.json', ...names]) {
    const s = await signature(join(dir, name));
    if (!s) return;
    now[name] = s;
  }
  await writeMarker(dir, now);
}
