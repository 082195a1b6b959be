/**
 * Checkpoints: one folder with `tensors.bin` (float32, concatenated) + `tensors.json` (name -> offset, shape)
 * for weights and optimizer moments, and `state.json` (step, RNG, config, metrics). `checkpoint-latest/` and
 * `checkpoint-best/` are versioned folders (core/bundle/versioned-dir.ts): each save is staged, then switched live by
 * replacing `CURRENT`, so a crash or a reader never finds a half-written or missing checkpoint, and the previous
 * checkpoint stays until the next save.
 */
import { mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { currentVersionSync, publishVersion, removeStaleStaging, stageVersion } from '../core/bundle/index.ts';

/** The live checkpoint folder inside `dir` (`checkpoint-latest`, `checkpoint-best`), or undefined if none was saved. */
export function checkpointFolder(dir: string): string | undefined {
  return currentVersionSync(dir, 'state.json');
}

/** Save a checkpoint into the versioned folder `dir`: `fill` writes the files into a staging folder. */
export async function publishCheckpoint(dir: string, step: number, fill: (staged: string) => Promise<void>): Promise<string> {
  await removeStaleStaging(dir);
  const staged = await stageVersion(dir);
  try {
    await fill(staged);
    // unique even when the same step is saved twice (a resumed run's first save)
    return await publishVersion(dir, staged, `step-${String(step).padStart(7, '0')}-${Date.now().toString(36)}`);
  } catch (err) {
    await rm(staged, { recursive: true, force: true }).catch(() => {});
    throw err;
  }
}

export interface TensorFile {
  tensors: Map<string, Float32Array>;
}

export async function writeTensors(dir: string, tensors: Map<string, Float32Array>): Promise<void> {
  const index: Record<string, { offset: number; length: number }> = {};
  let offset = 0;
  for (const [name, t] of tensors) {
    index[name] = { offset, length: t.length };
    offset += t.length;
  }
  const all = new Float32Array(offset);
  for (const [name, t] of tensors) all.set(t, index[name]!.offset);
  await writeFile(join(dir, 'tensors.bin'), new Uint8Array(all.buffer));
  await writeFile(join(dir, 'tensors.json'), JSON.stringify(index));
}

export async function readTensors(dir: string): Promise<Map<string, Float32Array>> {
  const index = JSON.parse(await readFile(join(dir, 'tensors.json'), 'utf8')) as Record<string, { offset: number; length: number }>;
  const buf = await readFile(join(dir, 'tensors.bin'));
  const all = new Float32Array(buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.byteLength));
  const out = new Map<string, Float32Array>();
  for (const [name, { offset, length }] of Object.entries(index)) {
    if (offset + length > all.length) throw new Error(`${dir}: tensors.bin is shorter than its index (${name})`);
    out.set(name, all.slice(offset, offset + length));
  }
  return out;
}

/**
 * Replace a whole folder (a model bundle, whose layout is a contract: files directly inside) with what `fill(tmp)`
 * writes. The swap is two renames; checkpoints and index bundles use versioned folders instead.
 */
export async function writeAtomically(dir: string, fill: (tmp: string) => Promise<void>): Promise<void> {
  const tmp = `${dir}.tmp-${process.pid}`;
  await rm(tmp, { recursive: true, force: true });
  await mkdir(tmp, { recursive: true });
  await fill(tmp);
  const old = `${dir}.old-${process.pid}`;
  if (existsSync(dir)) await rename(dir, old);
  await rename(tmp, dir);
  await rm(old, { recursive: true, force: true });
}
