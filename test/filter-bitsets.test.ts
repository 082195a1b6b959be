// Filter bitsets (core/bundle/filter-bitsets.ts) answer every filter exactly as reading the metadata does, deleted items
// excluded; bundles store them per shard and the planner uses them.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { readFileSync } from 'node:fs';
import { FilterBitsets, buildBitsets, IndexBundle, filterPredicate, type ImageMeta, type SearchFilter } from '../core/bundle/index.ts';
import { MedClipModel } from '../core/model/index.ts';
import { liveDir, REPO } from './helpers/paths.ts';

test('bitsets give the same allow-lists as the metadata for findings, views (any case), sources and their mixes', async () => {
  const model = await MedClipModel.load(join(REPO, 'models/medclip-tiny'));
  try {
    const index = await IndexBundle.load(join(REPO, 'indexes/sample'), { model });
    // the sample's 200 real images, every 7th marked deleted
    const items = [...index.entries('images')].map((e, i) => ({ ...(e.meta as ImageMeta), ...(i % 7 === 3 ? { deleted: true } : {}) }));
    const bits = FilterBitsets.parse(JSON.stringify(buildBitsets(items)));
    const filters: (SearchFilter | undefined)[] = [
      undefined,
      { must: ['Pneumonia'] },
      { mustNot: ['Pneumonia'] },
      { must: ['Pleural Effusion', 'Edema'] },
      { must: ['Fracture'] },
      { mustNot: ['No Finding', 'Pneumonia'] },
      { view: ['pa'] },
      { view: ['AP', 'ap(pediatric)'] },
      { source: ['NIH'] },
      { source: ['kermany'], must: ['No Finding'] },
      { view: ['lateral'] },
      { must: ['Pneumonia'], mustNot: ['Edema'], source: ['nih'], view: ['AP'] },
    ];
    for (const f of filters) {
      const pass = filterPredicate(f);
      const expected = items.map((m) => (!m.deleted && pass(m) ? 1 : 0));
      assert.deepEqual([...bits.allowed(f)], expected, JSON.stringify(f));
    }
    assert.ok(bits.allowed({ must: ['Pneumonia'] }).some((x) => x === 1));
  } finally {
    await model.close();
  }
});

test('the sample bundle stores bitsets per shard (sha256 in the manifest) and filtered search uses them', async () => {
  const manifest = JSON.parse(readFileSync(join(liveDir(join(REPO, 'indexes/sample')), 'manifest.json'), 'utf8'));
  for (const c of ['images', 'reports'])
    for (const s of manifest.collections[c].shards) {
      assert.ok(s.filters, `${c} shard has filters`);
      assert.match(manifest.sha256[s.filters], /^[0-9a-f]{64}$/);
    }
});
