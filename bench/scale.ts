/**
 * 1M vectors as Lambda-sized shards, served by a local fan-out: builds one bundle per shard (perturbed copies of the
 * sample's real image embeddings; shards built in parallel child processes, one per core), then measures, per shard,
 * the build's CPU seconds and peak memory and a fresh process's verified load time and peak memory (what a shard
 * Lambda needs), and text -> images p50 through the real fan-out code (`ShardFanout`, its Lambda client replaced by an
 * in-process one: serialisation and the top-k merge included, no network) against one shard alone. Prints the shard
 * size it recommends for a 10 GB Lambda.
 *
 *   node --import tsx bench/scale.ts [--n 1000000] [--shard-size 250000] [--json]
 */
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import pLimit from 'p-limit';
import type { LambdaClient } from '@aws-sdk/client-lambda';
import { IndexBundle, readLiveManifest } from '../core/bundle/index.ts';
import { MedClipModel } from '../core/model/index.ts';
import { ShardFanout, shardRequest, type ShardRequest } from '../core/search/index.ts';
import { buildPerturbedIndex } from './perturbed-index.ts';
import { benchArgs, p50 } from './harness.ts';

const here = import.meta.dirname;
const run = promisify(execFile);
const { args, say, result } = benchArgs({
  n: { type: 'string', default: '1000000' },
  'shard-size': { type: 'string', default: '250000' },
  out: { type: 'string', default: join(here, '../.bench-output/scale') },
  // internal: what a child process does
  'build-shard': { type: 'string' },
  'load-shard': { type: 'string' },
  baseline: { type: 'boolean', default: false },
});
const MODEL = join(here, '../models/medclip-tiny');
const SAMPLE = join(here, '../indexes/sample');
const n = Number(args.n);
const size = Number(args['shard-size']);
const shards = Math.ceil(n / size);
const shardDir = (s: number) => join(args.out!, `shard${s}`);
const shardCount = (s: number) => Math.min(size, n - s * size);
/**
 * CPU seconds and peak resident memory of this process. The peak is /proc/self/status's VmHWM: getrusage's maxRSS
 * starts a child at its parent's size at the fork, which would charge the parent's loaded shards to the child.
 */
const usage = () => {
  const u = process.resourceUsage();
  let peakKb = u.maxRSS;
  try {
    peakKb = Number(/VmHWM:\s+(\d+) kB/.exec(readFileSync('/proc/self/status', 'utf8'))?.[1] ?? peakKb);
  } catch {
    // not Linux: getrusage's figure
  }
  return { cpuS: Math.round((u.userCPUTime + u.systemCPUTime) / 1e4) / 100, peakRssMb: Math.round(peakKb / 1024) };
};

if (args['build-shard'] !== undefined) {
  const s = Number(args['build-shard']);
  const t0 = performance.now();
  const model = await MedClipModel.load(MODEL);
  await buildPerturbedIndex(model, SAMPLE, shardCount(s), shardDir(s), 0.03, { seed: 1000 + s, idPrefix: `s${s}-` });
  await model.close();
  console.log(JSON.stringify({ ...usage(), wallS: Math.round(performance.now() - t0) / 1000 }));
  process.exit(0);
}
if (args.baseline) {
  // the same modules loaded, no bundle: what a shard process costs before its vectors
  void IndexBundle;
  console.log(JSON.stringify(usage()));
  process.exit(0);
}
if (args['load-shard'] !== undefined) {
  const t0 = performance.now();
  const index = await IndexBundle.load(shardDir(Number(args['load-shard'])));
  const loadMs = Math.round(performance.now() - t0);
  await shardRequest(index, { kind: 'medclip-shard', op: 'count' });
  console.log(JSON.stringify({ loadMs, ...usage() }));
  process.exit(0);
}

const child = async (flag: string, s?: number) => {
  const { stdout } = await run(
    process.execPath,
    [
      '--import',
      'tsx',
      join(here, 'scale.ts'),
      flag,
      ...(s === undefined ? [] : [String(s)]),
      '--n',
      String(n),
      '--shard-size',
      String(size),
      '--out',
      args.out!,
    ],
    { maxBuffer: 1 << 20 },
  );
  return JSON.parse(stdout.trim().split('\n').pop()!) as Record<string, number>;
};

// 1. build (or reuse) the shards, one child process per core
const model = await MedClipModel.load(MODEL);
const limit = pLimit(availableParallelism());
const t0 = performance.now();
const built = await Promise.all(
  Array.from({ length: shards }, (_, s) =>
    limit(async () => {
      const m = await readLiveManifest(shardDir(s));
      if (m?.model.sha256 === model.manifestSha256 && m.collections.images?.count === shardCount(s)) return undefined;
      const r = await child('--build-shard', s);
      say(`built shard ${s}: ${shardCount(s)} vectors, ${r.cpuS} CPU-s, peak ${r.peakRssMb} MB, ${r.wallS} s`);
      return r;
    }),
  ),
);
const buildWallS = Math.round(performance.now() - t0) / 1000;
if (built.every((b) => b === undefined)) say(`reusing ${shards} shards in ${args.out}`);

// 2. each shard loaded (verified) by a fresh process, as a shard Lambda's cold start would
const loads: Record<string, number>[] = [];
for (let s = 0; s < shards; s++) loads.push(await child('--load-shard', s));
say(`shard load (fresh process, every file verified): ${loads.map((l) => `${l.loadMs} ms / ${l.peakRssMb} MB`).join(', ')}`);

// 3. text -> images across the shards through ShardFanout, against one shard alone
const bundles = await Promise.all(Array.from({ length: shards }, (_, s) => IndexBundle.load(shardDir(s))));
const local = {
  send: async (cmd: { input: { FunctionName: string; Payload: Uint8Array } }) => {
    const req = JSON.parse(new TextDecoder().decode(cmd.input.Payload)) as ShardRequest;
    const out = await shardRequest(bundles[Number(cmd.input.FunctionName)]!, req);
    return { Payload: new TextEncoder().encode(JSON.stringify(out)) };
  },
} as unknown as LambdaClient;
const fanout = await ShardFanout.connect(
  bundles.map((_, s) => String(s)),
  local,
);
const queries = await model.embedTexts([
  'right lower lobe pneumonia',
  'large left pleural effusion',
  'cardiomegaly',
  'no acute cardiopulmonary abnormality',
  'small right apical pneumothorax',
  'pulmonary edema',
  'bibasilar atelectasis',
  'consolidation in the left upper lobe',
]);
const time = async (f: (q: Float32Array) => Promise<unknown> | unknown) => {
  const ts: number[] = [];
  for (let r = 0; r < 40; r++)
    for (const q of queries) {
      const t = performance.now();
      await f(q);
      ts.push(performance.now() - t);
    }
  return p50(ts.slice(queries.length)); // the first round warms up
};
const oneShardP50 = await time((q) => bundles[0]!.search('images', q, { k: 10 }));
const fanoutP50 = await time((q) => fanout.search(q, 10));
await model.close();

// 4. the shard size for a 10 GB Lambda: memory grows with the vectors (measured per shard, less the same process
// without a bundle), keep half of the memory free
const base = (await child('--baseline')).peakRssMb!;
const mbPerVector = (Math.max(...loads.map((l) => l.peakRssMb!)) - base) / size;
const byMemory = Math.floor((5 * 1024) / mbPerVector / 50_000) * 50_000;
// and a cold start that stays near a second: the verified load time grows with the vectors too
const msPerVector = Math.max(...loads.map((l) => l.loadMs!)) / size;
const byColdStart = Math.floor(1000 / msPerVector / 50_000) * 50_000;
const fits = Math.min(byMemory, byColdStart);
const out = {
  vectors: n,
  shards,
  shardSize: size,
  buildCpuS: built.map((b) => b?.cpuS ?? null),
  buildPeakRssMb: built.map((b) => b?.peakRssMb ?? null),
  buildWallS: built.some((b) => b) ? buildWallS : null,
  loadMs: loads.map((l) => l.loadMs),
  loadPeakRssMb: loads.map((l) => l.peakRssMb),
  baselineRssMb: base,
  kbPerVector: Math.round(mbPerVector * 1024 * 100) / 100,
  oneShardP50Ms: Math.round(oneShardP50 * 1000) / 1000,
  fanoutP50Ms: Math.round(fanoutP50 * 1000) / 1000,
  shardSizeByMemory: byMemory,
  shardSizeByColdStart: byColdStart,
  recommendedShardSize: fits,
};
say(
  `text -> images p50: one shard ${out.oneShardP50Ms} ms, all ${shards} through the fan-out ${out.fanoutP50Ms} ms; ` +
    `memory ${(mbPerVector * 1024).toFixed(2)} KB per vector loaded (a process without a bundle: ${base} MB) -> a 10 GB Lambda (half kept free) holds ~${byMemory.toLocaleString()} vectors, a 1 s verified load ~${byColdStart.toLocaleString()}: shards of ${fits.toLocaleString()}`,
);
result(out);
