/**
 * The bundle a write starts from: its live version folder, the HNSW parameters it was built with, and (for an
 * --append) its items, vectors, reports, errors and thumbnails copied into a fresh partial build.
 */
import { existsSync } from 'node:fs';
import { readFile, writeFile, mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { IndexBundle, type StoredReport, type IndexManifest, VersionedDirError, currentVersion } from '../core/bundle/index.ts';
import type { MedClipModel } from '../core/model/index.ts';
import { thumbnailName } from '../core/image/index.ts';
import { DEFAULT_HNSW, type HnswParams } from './bundle-writer.ts';
import type { PartialCollection, PartialLines, BuildError } from './partial.ts';
import { IndexBuildError } from './errors.ts';

/** The live version folder of a bundle location, as a build error. */
export async function liveVersion(out: string): Promise<string | undefined> {
  try {
    return await currentVersion(out, 'manifest.json');
  } catch (err) {
    if (err instanceof VersionedDirError) throw new IndexBuildError(err.message);
    throw err;
  }
}

/** The HNSW parameters a bundle was built with (its first collection's), shards sized automatically again. */
export function bundleHnsw(m: IndexManifest): HnswParams | undefined {
  const c0 = Object.values(m.collections)[0];
  if (!c0) return undefined;
  return {
    M: c0.M,
    efConstruction: c0.efConstruction,
    efSearch: c0.efSearch,
    // automatic sizing again on every write (a fixed --shard-size is given again with --append)
    shardSize: DEFAULT_HNSW.shardSize,
    seed: DEFAULT_HNSW.seed,
  };
}

/** Copy the latest version's items, vectors, reports, errors and thumbnails into a fresh partial build (for --append). */
export async function seedFromBundle(
  dir: string,
  model: MedClipModel,
  images: PartialCollection,
  sentences: PartialCollection,
  reports: PartialLines<StoredReport>,
  errors: PartialLines<BuildError>,
): Promise<void> {
  const bundle = await IndexBundle.load(dir, { model });
  for (const [name, target] of [
    ['images', images],
    ['reports', sentences],
  ] as const) {
    const entries = [...bundle.entries(name)];
    await target.append(
      entries.map((e) => e.vector),
      entries.map((e) => e.meta),
    );
  }
  await reports.append([...bundle.reports.values()]);
  await errors.append(await bundle.buildErrors<BuildError>());
  if (bundle.manifest.thumbnails) {
    const thumbs = join(images.dir, 'thumbs');
    await mkdir(thumbs, { recursive: true });
    for (const { meta } of bundle.entries('images')) {
      const from = bundle.thumbnailFile(meta.id);
      if (from && existsSync(from)) await writeFile(join(thumbs, thumbnailName(meta.id)), await readFile(from));
    }
  }
}
