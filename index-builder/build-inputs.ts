/**
 * What an interrupted build or --append recorded (`<out>.partial/build.json`): the inputs it was started with, so
 * that the same command continues it and any other write discards it, naming what differs.
 */
import { readFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import type { HnswParams } from './bundle-writer.ts';

/** What a partial build was started with; a run with the same inputs continues it, any other starts over. */
export interface BuildInputs {
  mode: 'build' | 'append';
  modelSha256: string;
  images: string | null;
  imageDir: string | null;
  root: string | null;
  split: string | null;
  reports: string | null;
  reportSplit: string | null;
  idColumn: string | null;
  textColumns: string[] | null;
  /** The server and filters of a --dicomweb build (never credentials). */
  dicomweb: { url: string; since: string | null; studies: string[] | null; allModalities: boolean } | null;
  hnsw: HnswParams;
  thumbnails: boolean;
  /** The version an append builds on: if the bundle moved on since, resuming would undo that change. */
  baseVersion: number | null;
}

export interface BuildState {
  startedAt: string;
  inputs: BuildInputs;
}

export const abs = (p: string | undefined) => (p ? resolve(p) : null);

export const flagName: Record<keyof BuildInputs, string> = {
  mode: '--append',
  modelSha256: '--model',
  images: '--images',
  imageDir: '--image-dir',
  root: '--root',
  split: '--split',
  reports: '--reports',
  reportSplit: '--report-split',
  idColumn: '--id-column',
  textColumns: '--text-columns',
  dicomweb: '--dicomweb (server or filters)',
  hnsw: 'HNSW parameters',
  thumbnails: '--thumbnails',
  baseVersion: 'bundle version',
};

/** The flags whose values differ between two runs' inputs. */
export function differingInputs(a: BuildInputs, b: BuildInputs): string[] {
  return (Object.keys(flagName) as (keyof BuildInputs)[])
    .filter((k) => JSON.stringify(a[k] ?? null) !== JSON.stringify(b[k] ?? null))
    .map((k) => flagName[k]);
}

/** What an interrupted build recorded; undefined when its state file cannot be read (it is then discarded). */
export async function readBuildState(file: string): Promise<BuildState | undefined> {
  try {
    const state = JSON.parse(await readFile(file, 'utf8')) as BuildState;
    return state && typeof state === 'object' && state.inputs ? state : undefined;
  } catch {
    return undefined;
  }
}
