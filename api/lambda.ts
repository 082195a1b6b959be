/**
 * AWS Lambda entry (Function URL and API Gateway v2 events, binary bodies both ways, via Hono's adapter).
 * The model and index load once per container, on the first request; later requests reuse them.
 * Configuration: MEDCLIP_MODEL_URI / MEDCLIP_INDEX_URI (s3://bucket/prefix: fetched into /tmp once, sha256-verified,
 * ETag-cached) or MEDCLIP_MODEL_DIR / MEDCLIP_INDEX_DIR (default: the bundles shipped in the package),
 * MEDCLIP_AUTH (api-key | iam | off) with MEDCLIP_API_KEY_SHA256 (comma-separated sha256 of accepted keys): api-key
 * without hashes, or nothing configured at all, refuses to start (fail closed; `iam` = the Function URL checks callers),
 * MEDCLIP_CORS_ORIGINS, MEDCLIP_SHARD_FUNCTIONS (query fan-out: comma-separated shard function names),
 * MEDCLIP_INDEX_RELOAD_SECONDS (default 30): a warm function checks for a new index version (S3: the manifest's ETag;
 * a folder: its CURRENT) on a request at most this often, and answers later requests from it (core/search/live-search.ts).
 */
import { handle } from 'hono/aws-lambda';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { IndexBundle, IndexError, currentVersion } from '../core/bundle/index.ts';
import { LiveSearch, ShardFanout, queryFindings, type ServiceSource, shardRequest } from '../core/search/index.ts';
import { MedClipModel } from '../core/model/index.ts';
import { createApp, createServices } from './app.ts';
import { resolveAuth } from './auth.ts';
import { readEnv, type MedclipEnv, warmSimdKernel } from '../core/util/index.ts';
import { checkEvent, problemResult } from './lambda-events.ts';

// Source checkout: api/lambda.ts -> repository root; packaged Lambda: api.mjs sits beside models/ and indexes/.
const here = fileURLToPath(new URL('.', import.meta.url));
const root = existsSync(join(here, 'models')) ? here : join(here, '..');
type LambdaHandler = ReturnType<typeof handle>;
interface Ready {
  http: LambdaHandler;
  live: LiveSearch;
  fanout?: ShardFanout;
  reloadMs: number;
}
let ready: Promise<Ready> | undefined;

async function bundleDir(uri: string | undefined, dir: string | undefined, fallback: string, cacheDir: string): Promise<string> {
  if (uri) {
    // The S3 SDK loads only when a bundle comes from S3.
    const { fetchBundle } = await import('../core/bundle/index.ts');
    return fetchBundle({ uri, cacheDir });
  }
  return dir ?? join(root, fallback);
}

/** The index version to serve now: S3's (fetched into the cache when its manifest changed), or a folder's CURRENT. */
function indexLocator(env: MedclipEnv): () => Promise<string> {
  const location = env.MEDCLIP_INDEX_DIR ?? join(root, 'indexes/sample');
  return env.MEDCLIP_INDEX_URI
    ? () => bundleDir(env.MEDCLIP_INDEX_URI, undefined, '', env.MEDCLIP_CACHE_DIR)
    : async () => {
        const dir = await currentVersion(location, 'manifest.json');
        if (!dir) throw new IndexError(`${location}: no manifest.json (not an index bundle)`);
        return dir;
      };
}

async function init(): Promise<Ready> {
  // Auth first: a deployment that asked for API keys but has none refuses to start, before loading anything.
  let auth: ReturnType<typeof resolveAuth>;
  let env: MedclipEnv;
  try {
    env = readEnv();
    auth = resolveAuth(env.MEDCLIP_AUTH, env.MEDCLIP_API_KEY_SHA256);
  } catch (err) {
    console.error(JSON.stringify({ event: 'refusing-to-start', reason: (err as Error).message }));
    throw err;
  }
  // Cold-start breakdown, logged once per container: runtime + module load (time since the process started),
  // bundle fetch, model sessions and index load, class prompt embeddings.
  const t0 = performance.now();
  // One-time work of the first request, done here while the loads below wait on I/O: the fetch classes (Request,
  // Headers: ~20 ms of Node's undici; Hono's adapter makes a Request for every event), the labeler's patterns (~10 ms,
  // on a fixed phrase) and the SIMD kernel's functions (compiled at their first call).
  setImmediate(() => {
    void globalThis.Request;
    queryFindings('no acute cardiopulmonary process; small left pleural effusion');
    warmSimdKernel();
  });
  const locate = indexLocator(env);
  const [modelDir, indexDir] = await Promise.all([
    bundleDir(env.MEDCLIP_MODEL_URI, env.MEDCLIP_MODEL_DIR, 'models/medclip-tiny', env.MEDCLIP_CACHE_DIR),
    locate(),
  ]);
  const t1 = performance.now();
  // Model sessions and index load at once (a large index is hashed on a worker thread meanwhile).
  let modelMs = 0;
  // The model loads once the first index version has asked for its reads: reading and hashing it would queue behind
  // them on the thread pool anyway, and making its text session keeps this thread busy for ~40 ms, which would hold up
  // the index's requests (measured: ~10% off the cold start). The image session is made at the first image request.
  let reading!: () => void;
  const indexReading = new Promise<void>((resolve) => {
    reading = resolve;
  });
  const modelLoad = indexReading
    .then(() => MedClipModel.load(modelDir, { threads: env.MEDCLIP_THREADS, lazyImageEncoder: true }))
    .then((m) => {
      modelMs = performance.now() - t1;
      return m;
    });
  // A large collection lives in shard Lambdas (MEDCLIP_SHARD_FUNCTIONS): image queries fan out to them.
  const shardFunctions = env.MEDCLIP_SHARD_FUNCTIONS;
  const fanout = shardFunctions.length ? await ShardFanout.connect(shardFunctions) : undefined;
  let loadedMs = 0;
  let first = true;
  const opening = LiveSearch.open({
    location: indexDir,
    // the first call is the folder just located; later ones look again
    locate: async () => {
      if (!first) return locate();
      first = false;
      return indexDir;
    },
    open: async (dir) => {
      const [model, index] = await Promise.all([modelLoad, IndexBundle.load(dir, { model: modelLoad, onReading: reading })]);
      loadedMs ||= performance.now() - t1;
      return createServices(model, index, fanout, { viewerUrl: env.MEDCLIP_VIEWER_URL });
    },
    log: (e) => console.log(JSON.stringify(e)),
  });
  // The app (routes, schemas: ~5 ms) is made while the index's reads run; it asks for a service only per request.
  let opened: LiveSearch | undefined;
  const source: ServiceSource = { acquire: () => opened!.acquire(), current: () => opened!.current() };
  await Promise.race([
    indexReading,
    opening.then(
      () => {},
      () => {},
    ),
  ]);
  const app = createApp(source, {
    auth,
    corsOrigins: env.MEDCLIP_CORS_ORIGINS,
    log: (e) => console.log(JSON.stringify(e)),
  });
  const live = await opening;
  opened = live;
  const index = live.current().index;
  const t2 = t1 + loadedMs;
  const t3 = performance.now();
  const ms = (x: number) => Math.round(x);
  // modelMs is part of loadMs (model and index load in parallel).
  console.log(
    JSON.stringify({
      event: 'cold-start',
      runtimeMs: ms(t0),
      fetchMs: ms(t1 - t0),
      loadMs: ms(t2 - t1),
      modelMs: ms(modelMs),
      promptsMs: ms(t3 - t2),
      vectors: index.count('images') + index.count('reports'),
    }),
  );
  return { http: handle(app), live, fanout, reloadMs: env.MEDCLIP_INDEX_RELOAD_SECONDS * 1000 };
}

/** A warm function looks for a new index version (and its shards' counts) at most every MEDCLIP_INDEX_RELOAD_SECONDS. */
async function followIndex(r: Ready): Promise<void> {
  await r.live.refreshIfDue(r.reloadMs);
  if (r.fanout?.stale(r.reloadMs)) await r.fanout.refresh().catch(() => {});
}

/**
 * HTTP events (Function URL, API Gateway v2) go to the app; `{ kind: 'medclip-shard' }` events are shard queries.
 * A malformed event of either kind is answered 400 problem+json before anything else runs.
 */
export const handler = async (event: unknown, context: Parameters<LambdaHandler>[1]) => {
  const checked = checkEvent(event);
  if (checked.kind === 'invalid') return problemResult(400, 'Invalid event', checked.detail);
  ready ??= init().catch((err) => {
    ready = undefined; // retry the load on the next request
    throw err;
  });
  const r = await ready;
  await followIndex(r);
  if (checked.kind === 'shard') {
    const h = r.live.acquire();
    try {
      return await shardRequest(h.service.index, checked.request);
    } finally {
      h.release();
    }
  }
  try {
    return await r.http(checked.event as Parameters<LambdaHandler>[0], context);
  } catch (err) {
    // The app answers its own errors; a throw here is the adapter refusing the event's shape.
    console.log(JSON.stringify({ event: 'malformed-http-event', error: (err as Error).name }));
    return problemResult(400, 'Invalid event', 'the event could not be read as an HTTP request');
  }
};
