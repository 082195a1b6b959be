/**
 * API latency and throughput on loopback (autocannon), beside the in-process time of the encoders and of the
 * raw HNSW search measured in the same run, at the sample index and at a 100k-vector index made of perturbed
 * real embeddings. The server runs in its own process (`medclip serve`), so the load generator does not share its
 * event loop. Each route is loaded twice: with 1 connection (latency: what one client sees) and with 4 connections
 * (throughput: the most the server answers on this machine, where latency includes queueing). The exact HTTP p50s
 * and what they are divided by are measured in the same rounds, so drift on this shared machine falls on both sides
 * of each ratio. Text: each request's work is its own, timed inside the server (its Server-Timing header: encoder +
 * search); the same work timed in process, the encoder and the search each in its own warm loop, is printed beside
 * it (`textWorkInProcessP50Ms`, a floor a server answering one request at a time does not reach), and so is a bare
 * node:http server's answer of the same bytes (the transport floor). Image: the floor is the bare decode of the file
 * plus the encoder, in process.
 *
 *   node --import tsx bench/api.ts [--model models/medclip-tiny] [--index indexes/sample] [--n 100000] [--seconds 5] [--repeats 3] [--json]
 */
import { readdirSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import autocannon from 'autocannon';
import { IndexBundle, readLiveManifest } from '../core/bundle/index.ts';
import { MedClipModel } from '../core/model/index.ts';

import { buildPerturbedIndex } from './perturbed-index.ts';
import { spawn } from 'node:child_process';
import http from 'node:http';
import { benchArgs, p50 } from './harness.ts';

const here = import.meta.dirname;
const { args, say } = benchArgs({
  model: { type: 'string', default: join(here, '../models/medclip-tiny') },
  index: { type: 'string', default: join(here, '../indexes/sample') },
  image: { type: 'string', default: join(here, '../../shared/data/samples/fullres') },
  n: { type: 'string', default: '100000' },
  seconds: { type: 'string', default: '5' },
  repeats: { type: 'string', default: '3' },
  workers: { type: 'string', default: '2' },
});
/** With --json, the human-readable lines go to stderr and one JSON line (the 100k index's figures) to stdout. */
/** The figures of the last index benchmarked (the 100k one), for --json. */
const figures: Record<string, number> = {};
const seconds = Number(args.seconds);
const repeats = Number(args.repeats);
const model = await MedClipModel.load(args.model!);
const fullres = args.image!.endsWith('.png') ? args.image! : join(args.image!, readdirSync(args.image!).find((f) => f.endsWith('.png'))!);
const bigPng = await readFile(fullres);
const textQuery = 'right lower lobe pneumonia';

function stats(times: number[]): string {
  const s = [...times].sort((a, b) => a - b);
  const q = (p: number) => s[Math.min(s.length - 1, Math.floor(p * s.length))]!;
  return `p50 ${q(0.5).toFixed(2)} ms, p99 ${q(0.99).toFixed(2)} ms`;
}

async function timeIt(n: number, f: () => Promise<unknown> | unknown): Promise<number[]> {
  const out: number[] = [];
  for (let w = 0; w < 5; w++) await f();
  for (let r = 0; r < n; r++) {
    const t = performance.now();
    await f();
    out.push(performance.now() - t);
  }
  return out;
}

async function benchIndex(indexDir: string, label: string): Promise<void> {
  const index = await IndexBundle.load(indexDir, { model });
  const [q] = await model.embedTexts([textQuery]);
  say(`\n== ${label}: ${index.count('images')} images, ${index.count('reports')} sentences`);
  // as a text query searches: with the shards' text anchors (or a wider beam without them)
  const searchTimes = await timeIt(500, () => index.search('images', q!, { k: 10, crossModal: true }));
  say(
    `text query search (images, k 10, with text anchors: ${index.manifest.collections.images?.shards.every((s) => s.anchors) ?? false}): ${stats(searchTimes)}`,
  );
  // the text encoder in process (the HTTP figure is divided by the work inside its own requests: Server-Timing)
  say(`text encoder: ${stats(await timeIt(200, () => model.embedTexts([textQuery])))}`);
  // the floor of an image request: the bare decode of the file (sharp, no resize) plus the image encoder on a tensor
  const sharp = (await import('sharp')).default;
  const decodeTimes = await timeIt(30, () => sharp(bigPng).raw().toBuffer());
  const tensor = new Float32Array(model.imageSpec.size * model.imageSpec.size);
  const encodeTimes = await timeIt(50, () => model.embedPixels(tensor, 1));
  figures.imageFloorP50Ms = p50(decodeTimes) + p50(encodeTimes);
  say(`image floor: bare decode ${p50(decodeTimes).toFixed(2)} ms + encoder ${p50(encodeTimes).toFixed(2)} ms`);
  const server = await spawnServer(indexDir);
  try {
    const cases = [
      {
        name: 'text -> images',
        path: '/v1/search/text',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ query: textQuery, target: 'images', k: 10 }),
      },
      {
        name: 'text -> reports',
        path: '/v1/search/text',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ query: textQuery, target: 'reports', k: 10 }),
      },
      {
        name: 'image -> images (1024 px PNG)',
        path: '/v1/search/image?target=images&k=10',
        headers: { 'content-type': 'image/png' },
        body: bigPng,
      },
    ];
    for (const c of cases.filter((x) => !x.name.includes('reports') || index.count('reports') > 0)) {
      // a short warm-up, then `repeats` runs per connection count: this shared 2-core machine varies from run to
      // run, so each figure is the median run's, with the range of requests/s beside it
      await autocannon({ url: server.url + c.path, method: 'POST', headers: c.headers, body: c.body, connections: 4, duration: 2 });
      const row: string[] = [];
      const key = c.name.startsWith('text -> images') ? 'text' : c.name.startsWith('image') ? 'image' : undefined;
      for (const connections of [1, 4]) {
        const runs: autocannon.Result[] = [];
        for (let i = 0; i < repeats; i++)
          runs.push(
            await autocannon({
              url: server.url + c.path,
              method: 'POST',
              headers: c.headers,
              body: c.body,
              connections,
              duration: seconds,
            }),
          );
        const rps = runs.map((r) => r.requests.average).sort((a, b) => a - b);
        const mid = p50;
        if (key) figures[`${key}Rps${connections}`] = mid(rps);
        const non2xx = runs.reduce((n, r) => n + r.non2xx, 0);
        // closed loop: a connection's mean time per request is connections / (requests per second)
        row.push(
          `${connections} conn: ${((1000 * connections) / mid(rps)).toFixed(2)} ms per request, p99 ${mid(runs.map((r) => r.latency.p99))} ms, ${mid(rps).toFixed(0)} req/s (${rps[0]!.toFixed(0)}-${rps.at(-1)!.toFixed(0)})${non2xx ? `, non-2xx ${non2xx}` : ''}`,
        );
      }
      const exact: number[] = [];
      if (key === 'text') {
        // exact p50 over one keep-alive connection, requests back to back, in 5 rounds alternating with blocks of a
        // bare node:http server answering the same bytes to the same client (the transport floor) and of the
        // in-process encoder and search, so drift falls on all alike. The work a request is divided by is that
        // request's own: its Server-Timing (encoder + search, timed inside the server).
        const answer = Buffer.from(
          await (await fetch(server.url + c.path, { method: 'POST', headers: c.headers, body: c.body })).arrayBuffer(),
        );
        const bare = await spawnBare(answer);
        const api = keepAliveClient(server.url + c.path, c.headers, c.body);
        const floor = keepAliveClient(bare.url + c.path, c.headers, c.body);
        const transport: number[] = [];
        const work: number[] = [];
        const parts: [number[], number[]] = [[], []];
        try {
          await timeIt(50, api.once);
          for (let round = 0; round < 5; round++) {
            parts[0].push(...(await timeIt(40, () => model.embedTexts([textQuery]))));
            parts[1].push(...(await timeIt(100, () => index.search('images', q!, { k: 10, crossModal: true }))));
            exact.push(...(await timeIt(600, api.once)));
            work.push(...api.serverWork.splice(0).slice(-600)); // the timed requests' own (timeIt warms up first)
            transport.push(...(await timeIt(600, floor.once)));
          }
        } finally {
          api.close();
          floor.close();
          bare.close();
        }
        if (work.length !== exact.length) throw new Error('the server sent no Server-Timing with some answers');
        figures.textP50Ms = p50(exact);
        figures.textWorkP50Ms = p50(work);
        figures.textTransportP50Ms = p50(transport);
        figures.textWorkInProcessP50Ms = p50(parts[0]) + p50(parts[1]);
        row.unshift(
          `transport floor (bare node:http, same answer): p50 ${figures.textTransportP50Ms.toFixed(2)} ms`,
          `work inside these requests (Server-Timing, encoder + search): p50 ${figures.textWorkP50Ms.toFixed(2)} ms; in process, the encoder and the search each in its own loop: ${figures.textWorkInProcessP50Ms.toFixed(2)} ms`,
        );
      } else if (key === 'image') {
        // exact p50 over one keep-alive connection, in rounds alternating with blocks of the floor it is compared
        // with (bare decode + encoder), so that drift falls on both sides of the ratio alike
        const parts: [number[], number[]] = [[], []];
        const api = keepAliveClient(server.url + c.path, c.headers, c.body);
        try {
          for (let round = 0; round < 5; round++) {
            parts[0].push(...(await timeIt(6, () => sharp(bigPng).raw().toBuffer())));
            parts[1].push(...(await timeIt(10, () => model.embedPixels(tensor, 1))));
            exact.push(...(await timeIt(60, api.once)));
          }
        } finally {
          api.close();
        }
        figures.imageP50Ms = p50(exact);
        figures.imageFloorP50Ms = p50(parts[0]) + p50(parts[1]);
        row.unshift(`floor in the same rounds: p50 ${figures.imageFloorP50Ms.toFixed(2)} ms`);
      } else {
        const api = keepAliveClient(server.url + c.path, c.headers, c.body);
        exact.push(...(await timeIt(1000, api.once).finally(api.close)));
      }
      row.unshift(`exact: ${stats(exact)}`);
      say(`HTTP ${c.name}: ${row.join(' | ')}`);
    }
  } finally {
    server.close();
  }
}

/**
 * One keep-alive connection for exact per-request latency: `once` sends the request and resolves when the whole
 * answer is in (timed by the caller with performance.now(); autocannon's latency histogram has whole-millisecond
 * buckets, too coarse for sub-ms routes).
 */
function keepAliveClient(
  url: string,
  headers: Record<string, string>,
  body: string | Buffer,
): { once: () => Promise<void>; close: () => void; serverWork: number[] } {
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  const target = new URL(url);
  // each answer's Server-Timing (embed + search inside the server, for that very request), when it has one
  const serverWork: number[] = [];
  const once = () =>
    new Promise<void>((resolve, reject) => {
      const req = http.request(
        { host: target.hostname, port: target.port, path: target.pathname + target.search, method: 'POST', headers, agent },
        (res) => {
          const timing = res.headers['server-timing'];
          if (timing) serverWork.push([...String(timing).matchAll(/dur=([\d.]+)/g)].reduce((sum, m) => sum + Number(m[1]), 0));
          res.on('data', () => {});
          res.on('end', () => (res.statusCode === 200 ? resolve() : reject(new Error(`HTTP ${res.statusCode}`))));
        },
      );
      req.on('error', reject);
      req.end(body);
    });
  return { once, close: () => agent.destroy(), serverWork };
}

/** A bare node:http server in a child process that reads the request and answers `answer` (the transport floor). */
async function spawnBare(answer: Buffer): Promise<{ url: string; close: () => void }> {
  const code = `const http = require('node:http'); const body = Buffer.from(process.argv[1], 'base64');
    const s = http.createServer((req, res) => { req.on('data', () => {}); req.on('end', () => { res.writeHead(200, { 'content-type': 'application/json' }); res.end(body); }); });
    s.listen(0, '127.0.0.1', () => console.error('on http://127.0.0.1:' + s.address().port));`;
  const child = spawn(process.execPath, ['-e', code, answer.toString('base64')], { stdio: ['ignore', 'ignore', 'pipe'] });
  const url = await new Promise<string>((resolve, reject) => {
    child.stderr.setEncoding('utf8');
    child.stderr.on('data', (d: string) => {
      const m = /on (http:\/\/[^ \n]+)/.exec(d);
      if (m) resolve(m[1]!);
    });
    child.on('exit', (c) => reject(new Error(`bare server exited (${c})`)));
  });
  return { url, close: () => child.kill() };
}

/** `medclip serve` on a free loopback port, in a child process; resolves once it prints its URL. */
async function spawnServer(indexDir: string, workers = 1): Promise<{ url: string; close: () => void }> {
  const child = spawn(
    process.execPath,
    [join(here, '../bin/medclip.js'), 'serve', '--model', args.model!, '--index', indexDir, '--port', '0', '--workers', String(workers)],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  let err = '';
  const url = await new Promise<string>((resolve, reject) => {
    child.stderr.setEncoding('utf8');
    child.stderr.on('data', (d: string) => {
      if (err.length > 4096) return; // the access log after start-up is drained, not kept
      err += d;
      const m = /on (http:\/\/[^ ]+)/.exec(err);
      if (m) resolve(m[1]!);
    });
    child.on('exit', (code) => reject(new Error(`server exited (${code}): ${err.slice(0, 300)}`)));
  });
  return { url, close: () => child.kill() };
}

/** text -> images requests/s with 1 and with 4 connections against `medclip serve --workers W` (median of the repeats). */
async function textThroughput(indexDir: string, workers: number): Promise<{ rps1: number; rps4: number }> {
  const server = await spawnServer(indexDir, workers);
  try {
    const request = {
      url: `${server.url}/v1/search/text`,
      method: 'POST' as const,
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ query: textQuery, target: 'images', k: 10 }),
    };
    await autocannon({ ...request, connections: 4, duration: 2 });
    const rps = async (connections: number) => {
      const runs: number[] = [];
      for (let i = 0; i < repeats; i++) runs.push((await autocannon({ ...request, connections, duration: seconds })).requests.average);
      return p50(runs);
    };
    return { rps1: await rps(1), rps4: await rps(4) };
  } finally {
    server.close();
  }
}

say(`in-process text encoder: ${stats(await timeIt(200, () => model.embedTexts([textQuery])))}`);
say(
  `in-process image path (decode + resize + encode, ${fullres.split('/').pop()}, ${bigPng.length} bytes): ${stats(await timeIt(50, () => model.embedImages([bigPng])))}`,
);
await benchIndex(args.index!, 'sample index');

// 100k index: perturbed copies of the sample's real image embeddings.
const n = Number(args.n);
const bigDir = join(here, '../.bench-output/index-100k');
const existing = await readLiveManifest(bigDir);
if (existing?.model.sha256 === model.manifestSha256 && existing.collections.images?.count === n)
  say(`\nreusing the ${n}-vector index in ${bigDir}`);
else {
  const t0 = performance.now();
  await buildPerturbedIndex(model, args.index!, n, bigDir);
  say(`\nbuilt a ${n}-vector index in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
}
await benchIndex(bigDir, `${n}-vector index`);
// both cores: the same index served by `--workers W` processes sharing the port
const workers = Number(args.workers);
const scaled = await textThroughput(bigDir, workers);
say(
  `\ntext -> images with --workers ${workers}: ${scaled.rps1.toFixed(0)} req/s at 1 connection, ${scaled.rps4.toFixed(0)} at 4 = ${(scaled.rps4 / scaled.rps1).toFixed(2)}x (one worker: ${figures.textRps1?.toFixed(0)} and ${figures.textRps4?.toFixed(0)} = ${(figures.textRps4! / figures.textRps1!).toFixed(2)}x)`,
);
const ratio = (a: string, b: string) => Math.round((figures[a]! / figures[b]!) * 100) / 100;
say(
  `\nratios (100k): text HTTP p50 / its work ${ratio('textP50Ms', 'textWorkP50Ms')}x (less the transport floor ${(
    (figures.textP50Ms! - figures.textTransportP50Ms!) / figures.textWorkP50Ms!
  ).toFixed(2)}x; against the in-process work ${ratio('textP50Ms', 'textWorkInProcessP50Ms')}x), image HTTP p50 / floor ${ratio(
    'imageP50Ms',
    'imageFloorP50Ms',
  )}x, image req/s 4 conn / 1 ${ratio('imageRps4', 'imageRps1')}x`,
);
if (args.json)
  console.log(
    JSON.stringify({
      textP50Ms: figures.textP50Ms,
      textWorkP50Ms: figures.textWorkP50Ms,
      textTransportP50Ms: figures.textTransportP50Ms,
      textWorkInProcessP50Ms: figures.textWorkInProcessP50Ms,
      textRps1: figures.textRps1,
      textRps4: figures.textRps4,
      workers: { n: workers, textRps1: scaled.rps1, textRps4: scaled.rps4, scaling: scaled.rps4 / scaled.rps1 },
      imageP50Ms: figures.imageP50Ms,
      imageFloorP50Ms: figures.imageFloorP50Ms,
      imageRps1: figures.imageRps1,
      imageRps4: figures.imageRps4,
    }),
  );
await model.close();
