// The archive does the work: image <-> report pairs (an image table's report_id, a PACS study's SR) stored in the
// bundle and kept consistent by every write, and text -> images ranked through the images' own reports, each such hit
// showing the sentence that made it relevant.
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { IndexBundle, type ImageMeta } from '../core/bundle/index.ts';
import { MedClipModel } from '../core/model/index.ts';
import { SearchService, type ImageHit } from '../core/search/index.ts';
import { readReports } from '../core/tables/index.ts';
import { OBSERVATIONS } from '../core/labeler/index.ts';
import { buildIndex } from '../index-builder/build.ts';
import { deleteFromBundle } from '../index-builder/rewrite.ts';
import { DATA, IMAGES_CSV, IU_REPORTS, outputDir, REPO } from './helpers/paths.ts';

const dir = outputDir('pairs');
const MODEL = join(REPO, 'models/medclip-tiny');
const out = join(dir, 'index');
let effusionReport: string;
let normalReport: string;
let rows: string[];

before(async () => {
  // val reports by their labels: one stating a pleural effusion, one normal
  const reports: { id: string; labels: (number | null)[] }[] = [];
  for await (const r of readReports(IU_REPORTS, { split: 'val' })) if (r.labels) reports.push({ id: r.id, labels: r.labels });
  const at = (name: string) => OBSERVATIONS.indexOf(name as never);
  effusionReport = reports.find((r) => r.labels[at('Pleural Effusion')] === 1 && r.labels[at('No Finding')] !== 1)!.id;
  normalReport = reports.find((r) => r.labels[at('No Finding')] === 1)!.id;
  // six val X-rays, unlabelled (as a PACS gives them): two paired with the effusion report, two with the normal one,
  // two without a report
  const lines = readFileSync(IMAGES_CSV, 'utf8').trim().split('\n');
  const header = lines[0]!.split(',');
  const keep = header.map((h, i) => (['path', 'source', 'view', 'split'].includes(h) ? i : -1)).filter((i) => i >= 0);
  rows = lines.filter((l) => l.includes(',val,')).slice(0, 6);
  const pairs = [effusionReport, effusionReport, normalReport, normalReport, '', ''];
  writeFileSync(
    join(dir, 'images.csv'),
    [
      [...keep.map((i) => header[i]), 'report_id'].join(','),
      ...rows.map((r, n) => [...keep.map((i) => r.split(',')[i]), pairs[n]].join(',')),
    ].join('\n') + '\n',
  );
  rmSync(out, { recursive: true, force: true });
  await buildIndex({ model: MODEL, images: join(dir, 'images.csv'), root: DATA, reports: IU_REPORTS, reportSplit: 'val', out });
});

test('a report_id naming no report: the image is indexed without the link, and the build says so', async () => {
  const said: string[] = [];
  const dangling = join(dir, 'dangling');
  rmSync(dangling, { recursive: true, force: true });
  const table = readFileSync(join(dir, 'images.csv'), 'utf8').trim().split('\n');
  table[5] = table[5]!.replace(/,$/, ',no-such-report'); // the fifth image had no report
  writeFileSync(join(dir, 'dangling.csv'), table.join('\n') + '\n');
  await buildIndex({
    model: MODEL,
    images: join(dir, 'dangling.csv'),
    root: DATA,
    reports: IU_REPORTS,
    reportSplit: 'val',
    out: dangling,
    log: (l) => said.push(l),
  });
  assert.ok(
    said.some((l) => /^1 image\(s\) name a report_id that is not in the bundle/.test(l)),
    said.join('\n'),
  );
  const bundle = await IndexBundle.load(dangling);
  assert.equal(bundle.count('images'), 6);
  assert.equal(bundle.image(id(4))!.reportId, undefined);
});

const id = (n: number) => rows[n]!.split(',')[0]!;

test('an image table names each image its report (report_id): the bundle stores the links', async () => {
  const bundle = await IndexBundle.load(out);
  assert.equal(bundle.image(id(0))!.reportId, effusionReport);
  assert.equal(bundle.image(id(3))!.reportId, normalReport);
  assert.equal(bundle.image(id(5))!.reportId, undefined);
  assert.deepEqual(
    bundle
      .imagesByReport()
      .get(effusionReport)!
      .map((m: ImageMeta) => m.id),
    [id(0), id(1)],
  );
});

test('text -> images through the reports: paired images whose report is relevant first, with the sentence as evidence', async () => {
  const model = await MedClipModel.load(MODEL);
  try {
    const service = await SearchService.create(model, await IndexBundle.load(out, { model }));
    const r = await service.searchText({ query: 'pleural effusion', target: 'images', k: 6 });
    const hits = r.hits as ImageHit[];
    assert.deepEqual(new Set(hits.slice(0, 2).map((h) => h.id)), new Set([id(0), id(1)]), 'the images of the effusion report first');
    for (const h of hits.slice(0, 2)) {
      assert.equal(h.evidence!.reportId, effusionReport);
      assert.match(h.evidence!.sentence.text, /effusion/i);
      assert.ok(h.relevance! >= 0.5);
      assert.equal(h.labelSource, 'report', 'unlabelled images show the labels of their report');
      assert.equal(h.labels['Pleural Effusion'], 1);
    }
    assert.ok(
      hits.slice(2).every((h) => !h.evidence),
      'the others by image similarity, without evidence',
    );
    // a filter reads the report's labels for images without their own
    const filtered = (
      await service.searchText({ query: 'pleural effusion', target: 'images', k: 6, filter: { must: ['Pleural Effusion'] } })
    ).hits as ImageHit[];
    assert.deepEqual(new Set(filtered.map((h) => h.id)), new Set([id(0), id(1)]));
    // ranking still does not depend on k
    const three = (await service.searchText({ query: 'pleural effusion', target: 'images', k: 3 })).hits;
    assert.deepEqual(three, hits.slice(0, 3));
  } finally {
    await model.close();
  }
});

test('deleting a report unlinks its images; they stay searchable by similarity', async () => {
  await deleteFromBundle(out, MODEL, [effusionReport]);
  const bundle = await IndexBundle.load(out);
  assert.equal(bundle.image(id(0))!.reportId, undefined, 'the link to a deleted report is dropped');
  assert.equal(bundle.image(id(3))!.reportId, normalReport, 'other links stay');
  assert.equal(bundle.count('images'), 6);
});
