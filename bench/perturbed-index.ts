/** A large index bundle made of perturbed copies of a real index's image embeddings (for scale benchmarks). */
import { rm } from 'node:fs/promises';
import { IndexBundle, type ImageMeta } from '../core/bundle/index.ts';
import type { MedClipModel } from '../core/model/index.ts';
import { Rng } from '../core/util/index.ts';
import { writeBundle, textAnchors, DEFAULT_HNSW } from '../index-builder/bundle-writer.ts';

export async function buildPerturbedIndex(
  model: MedClipModel,
  sampleIndex: string,
  n: number,
  out: string,
  sigma = 0.03,
  /** Another seed and id prefix make another set (e.g. the shards of bench/scale). */
  o: { seed?: number; idPrefix?: string; shardSize?: number } = {},
): Promise<void> {
  // the sample's images through the bundle reader (verified), not its files
  const sample = [...(await IndexBundle.load(sampleIndex, { model })).entries('images')];
  const metas = sample.map((e) => e.meta as ImageMeta);
  const real = sample.map((e) => e.vector);
  const rng = new Rng(o.seed ?? 11);
  const gauss = () => Math.sqrt(-2 * Math.log(Math.max(rng.next(), 1e-12))) * Math.cos(2 * Math.PI * rng.next());
  const d = model.embedDim;
  const flat = new Float32Array(n * d);
  const items: ImageMeta[] = [];
  for (let i = 0; i < n; i++) {
    const src = real[i % real.length]!;
    let norm = 0;
    for (let k = 0; k < d; k++) {
      const v = src[k]! + sigma * gauss();
      flat[i * d + k] = v;
      norm += v * v;
    }
    norm = Math.sqrt(norm);
    for (let k = 0; k < d; k++) flat[i * d + k]! /= norm;
    const m = metas[i % metas.length]!;
    items.push({ ...m, id: `${o.idPrefix ?? ''}${m.id}#${i}` });
  }
  await rm(out, { recursive: true, force: true });
  await writeBundle(out, {
    model: { name: model.name, sha256: model.manifestSha256, embedDim: d },
    collections: { images: { dim: d, vectors: flat, items } },
    errors: [],
    version: 1,
    hnsw: { ...DEFAULT_HNSW, ...(o.shardSize ? { shardSize: o.shardSize } : {}) },
    anchors: await textAnchors(model),
  });
}
