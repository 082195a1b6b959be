// Text -> image queries find their exact nearest images: HNSW's greedy descent stops early for a query from the other
// modality (the text embedding lies outside the images' cone), so image shards carry text anchors (core/anchors.ts)
// whose exact lists join the query's HNSW hits. Checked against an exact scan on 20k vectors made from the sample's
// real image embeddings (convex mixtures of three, plus noise), with report-like queries the anchors were not made of.
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { anchorTexts, ANCHOR_COUNT } from '../core/anchors.ts';
import { IndexBundle, type ImageMeta } from '../core/index.ts';
import { MedClipModel } from '../core/model.ts';
import { Rng } from '../core/random.ts';
import { DEFAULT_HNSW, textAnchors, writeBundle } from '../index-builder/bundle-writer.ts';
import { outputDir, REPO } from './helpers/paths.ts';

const dir = outputDir('text-anchors');
let model: MedClipModel;
const QUERIES = [
  'pneumonia',
  'large right pleural effusion',
  'cardiomegaly with pulmonary vascular congestion',
  'no acute cardiopulmonary abnormality',
  'small left apical pneumothorax',
  'bibasilar atelectasis',
  'right lower lobe consolidation',
  'interstitial edema',
  'the heart is normal in size and the lungs are clear',
  'degenerative changes of the thoracic spine',
  'low lung volumes with crowding of the bronchovascular markings',
  'there is a calcified granuloma in the left upper lobe',
];

before(async () => {
  model = await MedClipModel.load(join(REPO, 'models/medclip-tiny'));
  const sample = [...(await IndexBundle.load(join(REPO, 'indexes/sample'), { model })).entries('images')];
  const d = model.embedDim;
  const n = 20_000;
  const rng = new Rng(5);
  const gauss = () => Math.sqrt(-2 * Math.log(Math.max(rng.next(), 1e-12))) * Math.cos(2 * Math.PI * rng.next());
  const vectors = new Float32Array(n * d);
  const items: ImageMeta[] = [];
  for (let i = 0; i < n; i++) {
    const [a, b, c] = [0, 1, 2].map(() => sample[rng.int(sample.length)]!.vector);
    const wa = rng.next();
    const wb = rng.next() * (1 - wa);
    let norm = 0;
    for (let k = 0; k < d; k++) {
      const v = wa * a![k]! + wb * b![k]! + (1 - wa - wb) * c![k]! + 0.01 * gauss();
      vectors[i * d + k] = v;
      norm += v * v;
    }
    for (let k = 0; k < d; k++) vectors[i * d + k]! /= Math.sqrt(norm);
    items.push({ id: `mix-${i}`, path: `mix-${i}`, labels: {} });
  }
  const content = {
    model: { name: model.name, sha256: model.manifestSha256, embedDim: d },
    collections: { images: { dim: d, vectors, items } },
    errors: [],
    version: 1,
    hnsw: DEFAULT_HNSW,
  };
  for (const name of ['anchored', 'plain']) rmSync(join(dir, name), { recursive: true, force: true });
  await writeBundle(join(dir, 'anchored'), { ...content, anchors: await textAnchors(model) });
  await writeBundle(join(dir, 'plain'), content);
});

after(() => model?.close());

test('the anchors: findings-mode prompts first, then seeded template prompts, always the same', () => {
  const texts = anchorTexts();
  assert.equal(texts.length, ANCHOR_COUNT);
  assert.equal(new Set(texts).size, texts.length);
  assert.deepEqual(anchorTexts(), texts);
  assert.ok(texts.includes('no acute cardiopulmonary abnormality'));
});

test('text -> image queries with anchors match an exact scan; without them (a wider beam only) they do not', async (t) => {
  const anchored = await IndexBundle.load(join(dir, 'anchored'), { model });
  const plain = await IndexBundle.load(join(dir, 'plain'), { model });
  assert.ok(anchored.manifest.collections.images!.shards.every((s) => s.anchors));
  assert.ok(plain.manifest.collections.images!.shards.every((s) => !s.anchors));
  const vectors = await model.embedTexts(QUERIES);
  const recall = (bundle: IndexBundle, filter?: { mustNot: string[] }) => {
    let hit = 0;
    for (const q of vectors) {
      const exact = new Set(bundle.search('images', q, { k: 10, filter: { mustNot: [] }, plan: 'exact' }).map((h) => h.meta.id));
      hit += bundle.search('images', q, { k: 10, crossModal: true, filter }).filter((h) => exact.has(h.meta.id)).length;
    }
    return hit / (10 * vectors.length);
  };
  const withAnchors = recall(anchored);
  const without = recall(plain);
  t.diagnostic(
    `recall@10 against an exact scan, 20k vectors, ${vectors.length} text queries: with anchors ${withAnchors}, without ${without}`,
  );
  assert.ok(withAnchors >= 0.99, `recall@10 with anchors ${withAnchors}`);
  assert.ok(without < withAnchors, `without anchors ${without}`);
  // image queries (the images' own distribution) need no anchors: HNSW alone
  const imageQuery = [...anchored.entries('images')][123]!.vector;
  assert.equal(anchored.search('images', imageQuery, { k: 1 })[0]!.meta.id, 'mix-123');
});
