/**
 * The live-index drill, long form (test/live-index.test.ts is the short one): `medclip serve` as its own process
 * under query loops while `medclip index --append` and `--delete` run as their own processes, as a nightly PACS
 * ingestion does beside a serving deployment. Counts 5xx answers, 404s on previews of images the server had just
 * listed (ids the drill deletes excepted), and how long each publish takes to be served; ends with a killed
 * --append followed by an ordinary --append, a --delete and another --append, which must all exit 0.
 *
 *   npm run bench:live [-- --publishes 12 --loops 2 --json]
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { currentName } from '../core/bundle/index.ts';
import { benchArgs } from './harness.ts';

const REPO = join(import.meta.dirname, '..');
const { args, result: report } = benchArgs({
  publishes: { type: 'string', default: '12' },
  loops: { type: 'string', default: '2' },
});
const out = join(REPO, '.bench-output/live');
rmSync(out, { recursive: true, force: true });
mkdirSync(out, { recursive: true });
const MODEL = join(REPO, 'models/medclip-tiny');
const corpus = join(REPO, 'samples/corpus');
const lines = readFileSync(join(corpus, 'images.csv'), 'utf8').trim().split('\n');
const [header, ...rows] = lines;
const table = (name: string, part: string[]) => {
  const file = join(out, `${name}.csv`);
  writeFileSync(file, [header, ...part].join('\n') + '\n');
  return file;
};
const idOf = (row: string) => row.split(',')[0]!;
const index = join(out, 'index');

/** `medclip ...` as its own process; resolves with its exit code and stderr. */
function medclip(
  argv: string[],
  env: Record<string, string> = {},
): Promise<{ code: number | null; signal: string | null; stderr: string }> {
  const child = spawn(process.execPath, [join(REPO, 'bin/medclip.js'), ...argv], { cwd: corpus, env: { ...process.env, ...env } });
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => (stderr += d));
  child.stdout.resume();
  return new Promise((resolve) => child.on('exit', (code, signal) => resolve({ code, signal, stderr })));
}
const must = async (what: string, run: Promise<{ code: number | null; stderr: string }>) => {
  const r = await run;
  if (r.code !== 0) throw new Error(`${what}: exit ${r.code}: ${r.stderr.slice(-400)}`);
  return r;
};

const base = rows.slice(0, 80);
const pool = rows.slice(80);
await must(
  'build',
  medclip([
    'index',
    '--model',
    MODEL,
    '--images',
    table('base', base),
    '--root',
    corpus,
    '--reports',
    join(corpus, 'reports.csv'),
    '--out',
    index,
    '--thumbnails',
  ]),
);

const server: ChildProcess = spawn(
  process.execPath,
  [join(REPO, 'bin/medclip.js'), 'serve', '--model', MODEL, '--index', index, '--port', '0'],
  {
    cwd: REPO,
    stdio: ['ignore', 'ignore', 'pipe'],
  },
);
let serverLog = '';
server.stderr!.on('data', (d: Buffer) => (serverLog += d));
while (!/on (http:\/\/\S+)/.test(serverLog)) await once(server.stderr!, 'data');
const url = /on (http:\/\/\S+)/.exec(serverLog)![1]!;

const deleted = new Set<string>();
const stats = { requests: 0, fiveXX: 0, previews: 0, missingPreviews: 0, statuses: {} as Record<string, number> };
const count = (status: number) => {
  stats.requests++;
  stats.statuses[status] = (stats.statuses[status] ?? 0) + 1;
  if (status >= 500) stats.fiveXX++;
};
let stop = false;
const problems = new Map<string, number>();
const filters = [{}, { mustNot: ['Edema'] }, { source: ['nih'] }, { view: ['PA'] }, { must: ['Pneumonia'] }, { mustNot: ['No Finding'] }];
const queries = ['right lower lobe pneumonia', 'normal chest', 'no pleural effusion', 'cardiomegaly'];
async function loop(seed: number): Promise<void> {
  for (let i = seed; !stop; i++) {
    const target = i % 3 === 0 ? 'reports' : 'images';
    const r = await fetch(`${url}/v1/search/text`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ query: queries[i % queries.length], target, k: 20, filter: filters[i % filters.length] }),
    });
    count(r.status);
    const body = (await r.json()) as { hits?: { id: string; thumbnail?: string }[]; detail?: string };
    if (r.status === 400)
      problems.set(
        `${body.detail} (${target}, ${JSON.stringify(filters[i % filters.length])})`,
        (problems.get(`${body.detail} (${target}, ${JSON.stringify(filters[i % filters.length])})`) ?? 0) + 1,
      );
    for (const h of body.hits ?? []) {
      if (!h.thumbnail) continue;
      const p = await fetch(`${url}${h.thumbnail}`);
      await p.arrayBuffer();
      count(p.status);
      stats.previews++;
      if (p.status === 404 && !deleted.has(h.id)) stats.missingPreviews++;
    }
    const health = await fetch(`${url}/v1/health`);
    await health.arrayBuffer();
    count(health.status);
  }
}
const version = async () => ((await (await fetch(`${url}/v1/health`)).json()) as { index: { version: number } }).index.version;
const loops = Array.from({ length: Number(args.loops) }, (_, i) => loop(i));

const lags: number[] = [];
const writes: { op: string; code: number | null; ms: number }[] = [];
const published = async () => {
  const live = Number((await currentName(index))!.slice(1));
  const t0 = performance.now();
  while ((await version()) !== live) {
    if (performance.now() - t0 > 10_000) throw new Error(`version ${live} not served within 10 s`);
    await new Promise((r) => setTimeout(r, 20));
  }
  lags.push(performance.now() - t0);
};
const write = async (op: string, argv: string[], env: Record<string, string> = {}) => {
  const t0 = performance.now();
  const r = await medclip(argv, env);
  writes.push({ op, code: r.code, ms: Math.round(performance.now() - t0) });
  return r;
};
try {
  let next = 0;
  for (let p = 0; p < Number(args.publishes); p++) {
    if (p % 2 === 0) {
      const part = pool.slice(next, next + 6);
      next += 6;
      await must(
        'append',
        write('append', [
          'index',
          '--model',
          MODEL,
          '--images',
          table(`append-${p}`, part),
          '--root',
          corpus,
          '--out',
          index,
          '--append',
          '--thumbnails',
        ]),
      );
    } else {
      const victim = idOf(pool[next - 3]!);
      deleted.add(victim); // a 404 is right once it is gone
      await must('delete', write('delete', ['index', '--model', MODEL, '--out', index, '--delete', victim]));
    }
    await published();
  }
  // a killed --append, then an ordinary --append, a --delete and another --append: all exit 0
  const killed = await write(
    'append killed -9',
    ['index', '--model', MODEL, '--images', table('killed', pool.slice(next, next + 6)), '--root', corpus, '--out', index, '--append'],
    {
      MEDCLIP_FAULT_KILL_AT: 'staged',
    },
  );
  if (killed.signal !== 'SIGKILL') throw new Error('the append was not killed');
  rmSync(`${index}.lock`, { recursive: true, force: true });
  await must(
    'append after kill',
    write('append', [
      'index',
      '--model',
      MODEL,
      '--images',
      table('after-kill', pool.slice(next + 6, next + 10)),
      '--out',
      index,
      '--append',
      '--thumbnails',
    ]),
  );
  await published();
  const victim = idOf(pool[next + 6]!);
  deleted.add(victim);
  await must('delete after kill', write('delete', ['index', '--model', MODEL, '--out', index, '--delete', victim]));
  await published();
  await must(
    'append after delete',
    write('append', [
      'index',
      '--model',
      MODEL,
      '--images',
      table('killed', pool.slice(next, next + 6)),
      '--out',
      index,
      '--append',
      '--thumbnails',
    ]),
  );
  await published();
} finally {
  stop = true;
  await Promise.all(loops);
  server.kill('SIGTERM');
  await once(server, 'exit');
}
const sorted = [...lags].sort((a, b) => a - b);
const result = {
  publishes: lags.length,
  requests: stats.requests,
  previews: stats.previews,
  fiveXX: stats.fiveXX,
  missingPreviews: stats.missingPreviews,
  statuses: stats.statuses,
  lagP50Ms: Math.round(sorted[Math.floor(sorted.length / 2)]!),
  lagMaxMs: Math.round(sorted.at(-1)!),
  writes,
  reloads: (serverLog.match(/"event":"index-reloaded"/g) ?? []).length,
  problems: Object.fromEntries(problems),
  reloadFailures: (serverLog.match(/"event":"index-reload-failed"/g) ?? []).length,
};
if (args.json) report(result);
else {
  console.log(`${result.publishes} publishes under ${args.loops} query loops: ${result.requests} requests, ${result.previews} previews`);
  console.log(`5xx: ${result.fiveXX}; 404 on previews of listed images: ${result.missingPreviews}`);
  console.log(`new version served after the publish exits: p50 ${result.lagP50Ms} ms, max ${result.lagMaxMs} ms`);
  console.log(`writes: ${writes.map((w) => `${w.op} ${w.code ?? 'killed'}`).join(', ')}`);
}
if (result.fiveXX || result.missingPreviews || writes.some((w) => w.code !== 0 && !w.op.includes('killed'))) process.exitCode = 1;
