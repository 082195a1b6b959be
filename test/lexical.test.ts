// Hybrid report search: BM25 over distinct sentence texts (core/bundle/lexical.ts), stored in the bundle and verified;
// identical sentences collapse into one hit with a count; the lexical half lifts words the labeler does not know.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { cpSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { LEXICAL_VERSION, LexicalIndex, IndexBundle, IndexError } from '../core/bundle/index.ts';
import { MedClipModel } from '../core/model/index.ts';
import { ReportSearch, RANK_WEIGHTS, queryFindings } from '../core/search/index.ts';
import { liveDir, outputDir, REPO } from './helpers/paths.ts';

const dir = outputDir('lexical');
let model: MedClipModel;
let index: IndexBundle;

before(async () => {
  model = await MedClipModel.load(join(REPO, 'models/medclip-tiny'));
  index = await IndexBundle.load(join(REPO, 'indexes/sample'), { model });
});
after(async () => model.close());

test('LexicalIndex: BM25 over distinct texts, stop words dropped, negations kept, scores relative to the best; round-trips', () => {
  const lex = LexicalIndex.build(['No pneumothorax.', 'No pneumothorax.', 'There is a small right pneumothorax.', 'The lungs are clear.']);
  assert.equal(lex.texts.length, 3, 'duplicates kept once');
  const hits = lex.search('no pneumothorax', 10);
  assert.deepEqual(
    hits.map((h) => h.text),
    ['No pneumothorax.', 'There is a small right pneumothorax.'],
  );
  assert.equal(hits[0]!.score, 1);
  assert.ok(hits[1]!.score < 1 && hits[1]!.score > 0);
  assert.deepEqual(lex.search('there is the', 10), [], 'stop words alone match nothing');
  const again = LexicalIndex.parse(lex.serialize())!;
  assert.deepEqual(again.search('clear lungs', 5), lex.search('clear lungs', 5));
  const stale = JSON.parse(lex.serialize()) as { version: number };
  stale.version = LEXICAL_VERSION + 1;
  assert.equal(LexicalIndex.parse(JSON.stringify(stale)), undefined, 'another version is rebuilt, not trusted');
});

test('the sample bundle stores its lexical index (verified on first use); a corrupted one is a data error, a missing one is rebuilt', async () => {
  const live = liveDir(join(REPO, 'indexes/sample'));
  const manifest = JSON.parse(readFileSync(join(live, 'manifest.json'), 'utf8')) as { lexical?: { file: string; version: number } };
  assert.deepEqual(manifest.lexical, { file: 'reports.lexical.json', version: LEXICAL_VERSION });
  const stored = index.lexical();
  const built = LexicalIndex.build(stored.texts);
  assert.deepEqual(stored.search('pleural effusion', 20), built.search('pleural effusion', 20), 'stored = built from the sentences');

  const copy = join(dir, 'copy');
  rmSync(copy, { recursive: true, force: true });
  cpSync(join(REPO, 'indexes/sample'), copy, { recursive: true });
  const file = join(liveDir(copy), 'reports.lexical.json');
  writeFileSync(file, readFileSync(file, 'utf8').replace('pneumothorax', 'pneumothoraX'));
  const corrupted = await IndexBundle.load(copy, { model });
  assert.throws(
    () => corrupted.lexical(),
    (e: unknown) => e instanceof IndexError && e.kind === 'data' && /reports.lexical.json does not match its sha256/.test(e.message),
  );
  // a bundle written before the lexical index existed: built from the stored sentences on first use
  const m = JSON.parse(readFileSync(join(liveDir(copy), 'manifest.json'), 'utf8')) as { lexical?: unknown };
  delete m.lexical;
  writeFileSync(join(liveDir(copy), 'manifest.json'), JSON.stringify(m));
  const older = await IndexBundle.load(copy, { model });
  assert.deepEqual(older.lexical().search('pleural effusion', 20), built.search('pleural effusion', 20));
});

test('identical sentences collapse into one hit that counts them; k hits are k distinct sentences', async () => {
  const [q] = await model.embedTexts(['no pneumothorax']);
  const hits = new ReportSearch(index).search(q!, { k: 10, findings: queryFindings('no pneumothorax'), text: 'no pneumothorax' });
  assert.equal(hits.length, 10);
  assert.equal(new Set(hits.map((h) => h.sentence)).size, 10, 'no sentence twice');
  const top = hits.find((h) => h.sentence === 'No pneumothorax.')!;
  // the count is every live report holding the exact sentence, read from the bundle itself
  let holding = 0;
  for (const r of index.reports.values()) if (Object.values(r.text).some((t) => /(^|\. )No pneumothorax\./.test(t))) holding++;
  assert.ok(holding > 10);
  assert.equal(top.sentenceReports, holding);
  assert.ok(top.same.length > 0 && !top.same.includes(top.report.id));
  for (const id of top.same) assert.ok(Object.values(index.report(id)!.text).join(' ').includes('No pneumothorax.'), id);
});

test('the lexical half: a device the labeler has no rule for ("sternotomy") is found by its word', async () => {
  const query = 'sternotomy wires';
  const [q] = await model.embedTexts([query]);
  const findings = queryFindings(query);
  const share = (weights: typeof RANK_WEIGHTS) =>
    new ReportSearch(index, weights).search(q!, { k: 5, findings, text: query }).filter((h) => /sternotomy/i.test(h.sentence)).length / 5;
  const dense = share({ ...RANK_WEIGHTS, lexical: 0 });
  const hybrid = share(RANK_WEIGHTS);
  assert.ok(hybrid >= 0.8, `hybrid: ${hybrid} of the top 5 mention sternotomy`);
  assert.ok(hybrid > dense, `dense only: ${dense}`);
});
