/**
 * Hybrid report search against dense-only, at 100k sentences, in one run. The archive is every IU report (real
 * text, real labels, real embeddings of the shipped text encoder), repeated with new ids and slightly perturbed
 * vectors until it holds `--n` sentences (a real archive repeats its sentences too: "No pneumothorax." thousands of
 * times). Queries: the judged val queries. Engines are alternated over rounds so drift hits both alike.
 *
 * In process (the HTTP layer adds the same ~1.4 ms to both, see bench/api):
 *   dense            encode the query + index.searchReports(q, { k })      (report search before hybrid ranking)
 *   hybrid           SearchService.searchText(...)                         (all the API does: spelling, labeler,
 *                                                                            encoder, HNSW + BM25, fusion, collapse)
 *   search only      the two searches alone, the query vectors given
 *
 *   node --import tsx bench/report-search.ts [--n 100000] [--rounds 5]
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { IndexBundle, type SentenceMeta, type StoredReport } from '../core/bundle/index.ts';
import { MedClipModel } from '../core/model/index.ts';
import { Rng } from '../core/util/index.ts';
import { ReportSearch, queryFindings, SearchService } from '../core/search/index.ts';
import { createApp } from '../api/app.ts';
import { serve } from '@hono/node-server';
import type { AddressInfo } from 'node:net';
import { DEFAULT_HNSW, writeBundle } from '../index-builder/bundle-writer.ts';
import { reportItems } from '../index-builder/corpus.ts';
import { readJudgedQueries } from '../eval/evaluate-search.ts';
import { benchArgs } from './harness.ts';

const here = import.meta.dirname;
const { args } = benchArgs({
  model: { type: 'string', default: join(here, '../models/medclip-tiny') },
  reports: { type: 'string', default: join(here, '../../shared/data/reports/iu_reports.csv') },
  queries: { type: 'string', default: join(here, '../samples/queries/search-val.json') },
  n: { type: 'string', default: '100000' },
  rounds: { type: 'string', default: '5' },
});
const target = Number(args.n);
const model = await MedClipModel.load(args.model!);

// every report once, with its sentences' real embeddings
const reports: StoredReport[] = [];
const sentences: { meta: SentenceMeta; text: string }[] = [];
for await (const item of reportItems(args.reports!)) {
  reports.push(item.report);
  for (const s of item.sentences) sentences.push({ meta: s.meta, text: s.text });
}
const distinct = [...new Set(sentences.map((s) => s.text))];
const t0 = performance.now();
const embedded = await model.embedTexts(distinct);
const byText = new Map(distinct.map((t, i) => [t, embedded[i]!]));
console.log(
  `${reports.length} reports, ${sentences.length} sentences (${distinct.length} distinct) embedded in ${((performance.now() - t0) / 1000).toFixed(1)} s`,
);

// copies with new ids until the archive holds `target` sentences; copies get perturbed vectors (sigma 0.01)
const d = model.embedDim;
const copies = Math.max(1, Math.ceil(target / sentences.length));
const rng = new Rng(7);
const gauss = () => Math.sqrt(-2 * Math.log(Math.max(rng.next(), 1e-12))) * Math.cos(2 * Math.PI * rng.next());
const total = Math.min(target, copies * sentences.length);
const vectors = new Float32Array(total * d);
const items: SentenceMeta[] = [];
const allReports: StoredReport[] = [];
for (let c = 0; c < copies && items.length < total; c++) {
  for (const r of reports) allReports.push(c === 0 ? r : { ...r, id: `${r.id}~${c}` });
  for (const s of sentences) {
    if (items.length >= total) break;
    const src = byText.get(s.text)!;
    const row = items.length;
    let norm = 0;
    for (let k = 0; k < d; k++) {
      const v = src[k]! + (c === 0 ? 0 : 0.01 * gauss());
      vectors[row * d + k] = v;
      norm += v * v;
    }
    norm = Math.sqrt(norm);
    for (let k = 0; k < d; k++) vectors[row * d + k]! /= norm;
    const reportId = c === 0 ? s.meta.reportId : `${s.meta.reportId}~${c}`;
    items.push({ ...s.meta, id: `${reportId}#${s.meta.index}`, reportId });
  }
}
const dir = await mkdtemp(join(tmpdir(), 'medclip-bench-reports-'));
try {
  const tb = performance.now();
  await writeBundle(join(dir, 'index'), {
    model: { name: model.name, sha256: model.manifestSha256, embedDim: d },
    collections: { reports: { dim: d, vectors, items } },
    reports: allReports,
    errors: [],
    version: 1,
    hnsw: DEFAULT_HNSW,
  });
  console.log(
    `bundle of ${items.length} sentences / ${allReports.length} reports written in ${((performance.now() - tb) / 1000).toFixed(1)} s`,
  );
  const index = await IndexBundle.load(join(dir, 'index'), { model });
  const search = new ReportSearch(index);
  const queries = await readJudgedQueries(args.queries!);
  const qv = await model.embedTexts(queries.map((q) => q.text));
  const qf = queries.map((q) => queryFindings(q.text));
  const tl = performance.now();
  index.lexical();
  console.log(`first use: lexical index read and verified in ${(performance.now() - tl).toFixed(0)} ms`);

  const service = await SearchService.create(model, index);
  const engines = {
    dense: async (i: number) => index.searchReports((await model.embedTexts([queries[i]!.text]))[0]!, { k: 10 }),
    hybrid: (i: number) => service.searchText({ query: queries[i]!.text, target: 'reports', k: 10 }),
    'dense search': async (i: number) => index.searchReports(qv[i]!, { k: 10 }),
    'hybrid search': async (i: number) => search.search(qv[i]!, { k: 10, findings: qf[i], text: queries[i]!.text, relevance: true }),
  };
  type Engine = keyof typeof engines;
  const times = Object.fromEntries(Object.keys(engines).map((k) => [k, [] as number[]])) as Record<Engine, number[]>;
  for (const f of Object.values(engines)) for (let i = 0; i < queries.length; i++) await f(i); // warm-up
  for (let round = 0; round < Number(args.rounds); round++)
    for (const [name, f] of Object.entries(engines) as [Engine, (i: number) => Promise<unknown>][])
      for (let i = 0; i < queries.length; i++) {
        const t = performance.now();
        await f(i);
        times[name].push(performance.now() - t);
      }
  const p = (xs: number[], q: number) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(q * xs.length))]!;
  console.log(`\n${queries.length} queries x ${args.rounds} rounds, k 10, ${items.length} sentences`);
  console.log('engine          p50 ms   p99 ms   p50 ratio');
  const row = (name: Engine, base: Engine) =>
    console.log(
      `${name.padEnd(15)} ${p(times[name], 0.5).toFixed(3).padStart(6)}   ${p(times[name], 0.99).toFixed(3).padStart(6)}   ${(p(times[name], 0.5) / p(times[base], 0.5)).toFixed(2)}x ${name === base ? '(baseline)' : `vs ${base}`}`,
    );
  row('dense', 'dense');
  row('hybrid', 'dense');
  row('dense search', 'dense search');
  row('hybrid search', 'dense search');

  // Over HTTP (the real app on loopback, one client), engines alternated: the API as served (hybrid), and the same
  // API with report search ranked dense-only (`reportRanking: 'dense'`, report search as it was before).
  const denseService = await SearchService.create(model, index, undefined, { reportRanking: 'dense' });
  const servers = await Promise.all(
    [service, denseService].map(async (s) => {
      const server = serve({ fetch: createApp(s, { auth: { mode: 'off' } }).fetch, port: 0, hostname: '127.0.0.1' });
      await new Promise((r) => server.once('listening', r));
      return { server, url: `http://127.0.0.1:${(server.address() as AddressInfo).port}` };
    }),
  );
  const http = { hybrid: [] as number[], dense: [] as number[] };
  const post = async (url: string, query: string) => {
    const r = await fetch(`${url}/v1/search/text`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ query, target: 'reports', k: 10 }),
    });
    await r.arrayBuffer();
  };
  for (const { url } of servers) for (const q of queries) await post(url, q.text); // warm-up
  for (let round = 0; round < Number(args.rounds); round++)
    for (const [name, { url }] of [
      ['hybrid', servers[0]!],
      ['dense', servers[1]!],
    ] as const)
      for (const q of queries) {
        const t = performance.now();
        await post(url, q.text);
        http[name].push(performance.now() - t);
      }
  for (const { server } of servers) server.close();
  console.log('\nover HTTP (POST /v1/search/text, reports, k 10)');
  console.log(
    `dense           ${p(http.dense, 0.5).toFixed(3).padStart(6)}   ${p(http.dense, 0.99).toFixed(3).padStart(6)}   1.00x (baseline)`,
  );
  console.log(
    `hybrid          ${p(http.hybrid, 0.5).toFixed(3).padStart(6)}   ${p(http.hybrid, 0.99).toFixed(3).padStart(6)}   ${(p(http.hybrid, 0.5) / p(http.dense, 0.5)).toFixed(2)}x vs dense`,
  );
} finally {
  if (process.env.KEEP_BENCH_INDEX) console.log(`kept ${dir}/index`);
  else await rm(dir, { recursive: true, force: true });
  await model.close();
}
