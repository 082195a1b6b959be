// Negation-aware report ranking: query polarity from the labeler, agreement with sentence labels, its effect
// through the API, and `medclip eval --task search` on the judged val queries.
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { IndexBundle } from '../core/bundle/index.ts';
import { MedClipModel } from '../core/model/index.ts';
import { agreeingFindings, findingAgreement, queryFindings } from '../core/search/index.ts';
import { extractModifiers } from '../core/labeler/index.ts';
import { createApp, createServices } from '../api/app.ts';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { IMAGES_CSV, IU_REPORTS, outputDir, REPO } from './helpers/paths.ts';
import { textToReports } from './helpers/api.ts';
import { tinyIndexBundle } from './helpers/tiny-model.ts';
import { medclip } from './helpers/cli.ts';

let app: ReturnType<typeof createApp>;
let modelDir: string;

before(async () => {
  modelDir = (await tinyIndexBundle(outputDir('search-rank'), { images: 4 })).modelDir;
  // ranking quality needs a trained encoder: the shipped model and sample index (297 real IU reports)
  const model = await MedClipModel.load(join(REPO, 'models/medclip-tiny'));
  app = createApp(await createServices(model, await IndexBundle.load(join(REPO, 'indexes/sample'), { model })), { auth: { mode: 'off' } });
});

/** `medclip eval --task search` over the IU val reports with this model, plus `extra` flags. */
const evalSearch = (model: string, ...extra: string[]) =>
  medclip('eval', '--model', model, '--task', 'search', '--reports', IU_REPORTS, '--report-split', 'val', ...extra);

test('query findings carry polarity; agreement orders affirmed > uncertain > negated, and the reverse for a negation', () => {
  assert.deepEqual(queryFindings('pneumothorax'), [{ name: 'Pneumothorax', polarity: 'positive' }]);
  assert.deepEqual(queryFindings('no pneumothorax'), [{ name: 'Pneumothorax', polarity: 'negative' }]);
  assert.deepEqual(queryFindings('possible pneumothorax'), [{ name: 'Pneumothorax', polarity: 'uncertain' }]);
  assert.deepEqual(queryFindings('normal chest'), [{ name: 'No Finding', polarity: 'positive' }]);
  assert.deepEqual(queryFindings('the weather today'), []);
  const pos = queryFindings('pneumothorax');
  const neg = queryFindings('no pneumothorax');
  const [affirmed, uncertain, negated, silent] = [
    { Pneumothorax: 1 as const },
    { Pneumothorax: -1 as const },
    { Pneumothorax: 0 as const },
    {},
  ];
  assert.ok(
    findingAgreement(pos, affirmed) > findingAgreement(pos, uncertain) && findingAgreement(pos, uncertain) > findingAgreement(pos, negated),
  );
  assert.ok(
    findingAgreement(neg, negated) > findingAgreement(neg, uncertain) && findingAgreement(neg, uncertain) > findingAgreement(neg, affirmed),
  );
  assert.equal(findingAgreement(pos, silent), 0);
  assert.deepEqual(agreeingFindings(neg, negated), ['Pneumothorax']);
  assert.deepEqual(agreeingFindings(pos, negated), []);
});

test('text -> reports: an affirmative query gets affirming sentences, a negated one negations', async () => {
  const ask = (query: string) =>
    textToReports<{
      query: { findings: { name: string; polarity: string }[] };
      hits: { sentence: { text: string }; matched: string[] }[];
    }>(app, query);
  const pos = await ask('pleural effusion');
  assert.deepEqual(pos.query.findings, [{ name: 'Pleural Effusion', polarity: 'positive' }]);
  for (const h of pos.hits)
    assert.deepEqual(h.matched, ['Pleural Effusion'], `affirming sentence expected: ${h.sentence.text.length} chars`);
  const neg = await ask('no pleural effusion');
  assert.deepEqual(neg.query.findings, [{ name: 'Pleural Effusion', polarity: 'negative' }]);
  for (const h of neg.hits) assert.deepEqual(h.matched, ['Pleural Effusion'], 'a sentence negating it');
});

test('medclip eval --task search --json: P@10, negated purity, per kind, per query; --tune sweeps the weight', async () => {
  const r = await evalSearch(modelDir, '--json');
  assert.equal(r.code, 0, r.stderr);
  const out = JSON.parse(r.stdout) as {
    weights: { agreement: number };
    p10: number;
    negatedPurity: number;
    byKind: Record<string, { queries: number }>;
    queries: unknown[];
  };
  assert.ok(out.queries.length >= 40);
  for (const x of [out.p10, out.negatedPurity]) assert.ok(x >= 0 && x <= 1);
  assert.ok(['finding', 'paraphrase', 'negation', 'misspelling', 'device'].every((k) => out.byKind[k]!.queries > 0));
  const tuned = await evalSearch(modelDir, '--tune', '--json');
  const sweep = JSON.parse(tuned.stdout) as { weights: { agreement: number; reportAgreement: number; lexical: number } }[];
  assert.ok(sweep.length >= 25);
  const { agreement, reportAgreement, lexical } = sweep[0]!.weights;
  assert.deepEqual(
    { agreement, reportAgreement, lexical },
    { agreement: 0, reportAgreement: 0, lexical: 0 },
    'the sweep starts from dense only',
  );
  assert.equal((await medclip('eval', '--model', modelDir, '--task', 'search')).code, 1, 'needs --reports');
});

test('report hits of a finding query carry a calibrated relevance in [0, 1]; agreeing reports score higher than contradicting ones', async () => {
  const { reportRelevance } = await import('../core/search/index.ts');
  const f = (agreement: number) => ({ dense: 0.999, agreement, reportAgreement: agreement, lexical: 0.5 });
  assert.ok(reportRelevance(f(1)) > reportRelevance(f(-1)));
  const r = (await (
    await app.request('/v1/search/text', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ query: 'cardiomegaly', target: 'reports', k: 10 }),
    })
  ).json()) as { hits: { relevance?: number; score: number }[] };
  assert.equal(r.hits.length, 10);
  for (const h of r.hits) assert.ok(h.relevance! >= 0 && h.relevance! <= 1);
  const free = (await (
    await app.request('/v1/search/text', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ query: 'the weather today', target: 'reports', k: 3 }),
    })
  ).json()) as { hits: { relevance?: number }[] };
  assert.ok(
    free.hits.every((h) => h.relevance === undefined),
    'no relevance without a finding to judge by',
  );
});

test('image -> reports hubness: the shipped hub weight lowers the share of X-rays given a hub report, and keeps finding matches', async () => {
  // the shipped model over the val X-rays and val reports, as `medclip eval --task search --images --tune-hubs`
  const r = await evalSearch(join(REPO, 'models/medclip-tiny'), '--images', IMAGES_CSV, '--split', 'val', '--tune-hubs', '--json');
  assert.equal(r.code, 0, r.stderr);
  const runs = JSON.parse(r.stdout) as { weights: { hub: number }; hubShare: { queries: number; share: number; findingMatch: number } }[];
  const at = (hub: number) => runs.find((x) => x.weights.hub === hub)!.hubShare;
  const { RANK_WEIGHTS } = await import('../core/search/index.ts');
  const before = at(0);
  const after = at(RANK_WEIGHTS.hub);
  assert.ok(before.queries > 500);
  assert.ok(after.share < before.share - 0.2, `hub share ${before.share} -> ${after.share}`);
  assert.ok(after.findingMatch > before.findingMatch - 0.02, `finding match ${before.findingMatch} -> ${after.findingMatch}`);
});

test('ranking does not depend on k: for every search kind, the first k hits are the first k of a request for 100', async () => {
  const images = ['samples/corpus/images/nih/00005567_002.png', 'samples/corpus/images/kermany/x/IM-0193-0001.jpg'].map((f) =>
    readFileSync(join(REPO, f)),
  );
  const filters = [undefined, { must: ['Pneumonia'] }, { source: ['nih'] }, { mustNot: ['No Finding'] }];
  const hits = async (request: { text?: string; image?: Buffer; target: string; k: number; filter?: object }) => {
    const r = request.text
      ? await app.request('/v1/search/text', {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ query: request.text, target: request.target, k: request.k, filter: request.filter }),
        })
      : await app.request(
          `/v1/search/image?target=${request.target}&k=${request.k}${request.filter ? `&filter=${encodeURIComponent(JSON.stringify(request.filter))}` : ''}`,
          { method: 'POST', headers: { 'content-type': 'image/png' }, body: new Uint8Array(request.image!) },
        );
    assert.equal(r.status, 200);
    return ((await r.json()) as { hits: unknown[] }).hits;
  };
  let compared = 0;
  for (const target of ['images', 'reports'])
    for (const filter of filters)
      for (const query of [
        ...['right lower lobe pneumonia', 'no pneumothorax', 'normal chest', 'pnuemonia'].map(
          (text) => ({ text }) as { text?: string; image?: Buffer },
        ),
        ...images.map((image) => ({ image }) as { text?: string; image?: Buffer }),
      ]) {
        const deepest = await hits({ ...query, target, k: 100, filter });
        for (const k of [1, 3, 10, 37]) {
          const first = await hits({ ...query, target, k, filter });
          assert.deepEqual(first, deepest.slice(0, k), `${target} ${JSON.stringify(filter)} ${query.text ?? 'image'} k=${k}`);
          compared++;
        }
      }
  assert.equal(compared, 2 * 4 * 6 * 4);
});

test('modifiers: read from the query, stated in the response, agreeing sentences first and contradicting ones last', async () => {
  const search = async (query: string, k = 20) =>
    (await (
      await app.request('/v1/search/text', {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ query, target: 'reports', k }),
      })
    ).json()) as {
      query: { modifiers?: Record<string, string[]> };
      hits: { sentence: { text: string }; modifiers?: string[]; relevance?: number }[];
    };
  const large = await search('large right pleural effusion');
  assert.deepEqual(large.query.modifiers, { side: ['right'], extent: ['large'] });
  const sides = large.hits.map((h) => extractModifiers(h.sentence.text).side ?? []);
  const firstLeft = sides.findIndex((s) => s.length === 1 && s[0] === 'left');
  const lastRight = sides.findLastIndex((s) => s.includes('right'));
  const firstSided = sides.find((s) => s.length > 0);
  assert.deepEqual(firstSided, ['right'], 'the first sentence that names a side names the right one');
  if (firstLeft >= 0) assert.ok(firstLeft > lastRight, 'left-sided sentences come after every right-sided one');
  for (const h of large.hits) for (const m of h.modifiers ?? []) assert.ok(['right', 'large'].includes(m), m);
  assert.ok(
    large.hits.slice(0, 3).every((h) => h.modifiers?.length),
    'the first hits name the modifiers they matched',
  );
  // the same finding without modifiers: no modifiers in the answer
  assert.equal((await search('pleural effusion', 5)).query.modifiers, undefined);
});

test('the shipped model on the judged val queries: P@10, negated purity, relevance AUC and calibration, modifier P@5', async () => {
  const r = await evalSearch(join(REPO, 'models/medclip-tiny'), '--json');
  assert.equal(r.code, 0, r.stderr);
  const out = JSON.parse(r.stdout) as {
    p10: number;
    negatedPurity: number;
    relevance: { auc: number; ece: number };
    modifiers: { p5: number; queries: unknown[] };
  };
  assert.ok(out.p10 >= 0.9, `P@10 ${out.p10}`);
  assert.ok(out.negatedPurity >= 0.97, `negated purity ${out.negatedPurity}`);
  assert.ok(out.relevance.auc >= 0.85, `relevance AUC ${out.relevance.auc}`);
  assert.ok(out.relevance.ece <= 0.1, `ECE ${out.relevance.ece}`);
  assert.ok(out.modifiers.queries.length >= 10 && out.modifiers.p5 >= 0.85, `modifier P@5 ${out.modifiers.p5}`);
});
