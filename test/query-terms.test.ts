// Query understanding: spelling correction against the index's own words and the prompts, a warning when nothing
// is recognised; through the API, a misspelled query searches as its correction.
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { IndexBundle } from '../core/bundle/index.ts';
import { MedClipModel } from '../core/model/index.ts';
import { QuerySpeller } from '../core/search/index.ts';
import { createApp, createServices } from '../api/app.ts';
import { outputDir } from './helpers/paths.ts';
import { textToReports } from './helpers/api.ts';
import { tinyIndexBundle } from './helpers/tiny-model.ts';

let app: ReturnType<typeof createApp>;

before(async () => {
  const { modelDir, indexDir } = await tinyIndexBundle(outputDir('query-terms'), { images: 4 });
  const model = await MedClipModel.load(modelDir);
  app = createApp(await createServices(model, await IndexBundle.load(indexDir, { model })), { auth: { mode: 'off' } });
});

test('the speller fixes typos and swapped letters, leaves known and short words alone, never invents far words', () => {
  const s = QuerySpeller.fromTexts([
    'Right lower lobe pneumonia.',
    'Small left pleural effusion.',
    'Cardiomegaly is stable.',
    'The lungs are clear.',
  ]);
  assert.deepEqual(s.analyse('pnuemonia'), { corrected: 'pneumonia', warnings: [] });
  assert.deepEqual(s.analyse('rigth lower lobe pneumonai'), { corrected: 'right lower lobe pneumonia', warnings: [] });
  assert.deepEqual(s.analyse('pleural efusion'), { corrected: 'pleural effusion', warnings: [] });
  assert.deepEqual(s.analyse('small left pleural effusion'), { warnings: [] }, 'nothing to correct');
  assert.equal(s.correct('lest'), undefined, 'four letters, not a swap of a known word: left alone');
  assert.equal(s.correct('bronchiectasis'), undefined, 'no known word near enough');
  assert.equal(s.analyse('肺炎').warnings.length, 1);
  assert.equal(s.analyse('zzzz qqqq').warnings.length, 1);
});

test('POST /v1/search/text: a misspelled query searches as its correction and says so; an unknown language is flagged', async () => {
  const ask = (query: string) =>
    textToReports<{
      query: { findings: { name: string; polarity: string }[]; corrected?: string; warnings?: string[] };
      hits: { id: string; score: number }[];
    }>(app, query);
  const typo = await ask('pnuemonia');
  const right = await ask('pneumonia');
  assert.equal(typo.query.corrected, 'pneumonia');
  assert.deepEqual(typo.query.findings, [{ name: 'Pneumonia', polarity: 'positive' }]);
  assert.deepEqual(
    typo.hits.map((h) => h.id),
    right.hits.map((h) => h.id),
  );
  assert.equal(right.query.corrected, undefined);
  const foreign = await ask('肺炎');
  assert.match(foreign.query.warnings![0]!, /no known term/);
  assert.equal(foreign.hits.length, 5, 'results still come back');
});
