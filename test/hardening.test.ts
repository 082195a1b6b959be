// The API as an attacker and an operator meet it: ids malformed on purpose, wrong methods, keys missing, request
// ids carrying patient names, a flood of custom classes, malformed Lambda events, a deploy without keys, SIGTERM
// with a request in flight, a busy port.
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { once } from 'node:events';
import { connect, createServer, type AddressInfo } from 'node:net';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { IndexBundle } from '../core/bundle/index.ts';
import { MedClipModel } from '../core/model/index.ts';
import { createApp, createServices } from '../api/app.ts';
import { startServer } from '../api/server.ts';
import { hashApiKey, resolveAuth } from '../api/auth.ts';
import { DATA, outputDir, REPO } from './helpers/paths.ts';
import { tinyIndexBundle } from './helpers/tiny-model.ts';
import { medclipWith } from './helpers/cli.ts';

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;
const dir = outputDir('hardening');
let modelDir: string;
let indexDir: string;
let model: MedClipModel;
let app: ReturnType<typeof createApp>;
let png: Buffer;
const logs: Record<string, unknown>[] = [];

before(async () => {
  const built = await tinyIndexBundle(dir, { images: 6, thumbnails: true });
  modelDir = built.modelDir;
  indexDir = built.indexDir;
  png = readFileSync(join(DATA, built.rows[0]!.split(',')[0]!));
  model = await MedClipModel.load(modelDir);
  app = createApp(await createServices(model, await IndexBundle.load(indexDir, { model })), {
    auth: { mode: 'off' },
    log: (e) => logs.push(e),
  });
});

test('ids with malformed percent-encoding are 400 problem+json; ids are decoded exactly once', async () => {
  for (const path of ['/v1/images/%E0%A4%A', '/v1/images/%ZZ', '/v1/reports/%', '/v1/reports/abc%2']) {
    const r = await app.request(path);
    assert.equal(r.status, 400, path);
    assert.equal(r.headers.get('content-type'), 'application/problem+json');
    assert.match(((await r.json()) as { detail: string }).detail, /percent-encoding/);
  }
  // "%25" is a literal percent sign: an id like "scan 50%.png" is looked up as such (404 here, not 500)
  const pct = await app.request(`/v1/images/${encodeURIComponent('scan 50%.png')}`);
  assert.equal(pct.status, 404);
  const report = await app.request('/v1/reports/%25');
  assert.equal(report.status, 404);
});

test('a wrong method is 405 with Allow; an unknown path stays 404', async () => {
  const cases: [string, string, string][] = [
    ['DELETE', '/v1/health', 'GET, HEAD'],
    ['GET', '/v1/search/text', 'POST'],
    ['PUT', '/v1/classify', 'POST'],
    ['POST', '/v1/images/abc', 'GET, HEAD'],
  ];
  for (const [method, path, allow] of cases) {
    const r = await app.request(path, { method });
    assert.equal(r.status, 405, `${method} ${path}`);
    assert.equal(r.headers.get('allow'), allow);
    assert.equal(r.headers.get('content-type'), 'application/problem+json');
  }
  assert.equal((await app.request('/v1/nothing-here')).status, 404);
});

test('401 carries WWW-Authenticate; API-key auth never runs without keys', async () => {
  const keyed = createApp(await createServices(model, await IndexBundle.load(indexDir, { model })), {
    auth: { mode: 'api-key', hashes: [hashApiKey('k-1')] },
  });
  for (const headers of [{}, { 'x-api-key': 'wrong' }] as Record<string, string>[]) {
    const r = await keyed.request('/v1/health', { headers });
    assert.equal(r.status, 401);
    assert.match(r.headers.get('www-authenticate') ?? '', /^Bearer realm="medclip-search"/);
  }
  assert.equal((await keyed.request('/v1/health', { headers: { authorization: 'Bearer k-1' } })).status, 200);
  assert.throws(() => createApp({} as never, { auth: { mode: 'api-key', hashes: [] } }), /at least one key hash/);
  assert.throws(() => resolveAuth('api-key', ''), /refusing to serve an open API/);
  assert.throws(() => resolveAuth(undefined, undefined), /no auth configured/);
  assert.throws(() => resolveAuth('none', undefined), /must be api-key, iam or off/);
  assert.equal(resolveAuth('iam', undefined).mode, 'off');
  assert.equal(resolveAuth(undefined, 'a'.repeat(64)).mode, 'api-key');
});

test('request ids are made by the server: a client id is kept only if it is a UUID, and free text is never logged', async () => {
  logs.length = 0;
  const nosy = await app.request('/v1/health', { headers: { 'x-request-id': 'PatientJohnDoe_MRN12345' } });
  const made = nosy.headers.get('x-request-id')!;
  assert.match(made, /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
  assert.doesNotMatch(JSON.stringify(logs), /JohnDoe|MRN/);
  const uuid = '0f8fad5b-d9cb-469f-a165-70867728950e';
  const kept = await app.request('/v1/health', { headers: { 'x-request-id': uuid } });
  assert.equal(kept.headers.get('x-request-id'), uuid);
  assert.equal(logs.at(-1)!.requestId, uuid);
});

test('memory stays bounded: 1,000 classify requests with unique custom classes leave the heap within +20 MB', async () => {
  const body = (i: number) =>
    JSON.stringify({
      image: png.toString('base64'),
      classes: [
        { name: `a${i}`, prompts: [`custom finding number ${i} left`] },
        { name: `b${i}`, prompts: [`custom finding number ${i} right`] },
      ],
    });
  for (let i = 0; i < 20; i++)
    await app.request('/v1/classify', { method: 'POST', headers: { 'content-type': 'application/json' }, body: body(-i - 1) }); // warm
  gc();
  const start = process.memoryUsage().heapUsed;
  for (let i = 0; i < 1000; i++) {
    const r = await app.request('/v1/classify', { method: 'POST', headers: { 'content-type': 'application/json' }, body: body(i) });
    assert.equal(r.status, 200);
    await r.arrayBuffer();
  }
  gc();
  const grown = (process.memoryUsage().heapUsed - start) / 2 ** 20;
  assert.ok(grown < 20, `heap grew by ${grown.toFixed(1)} MB`);
});

/** A Function URL event (payload 2.0). */
const httpEvent = (over: Record<string, unknown> = {}) => ({
  version: '2.0',
  routeKey: '$default',
  rawPath: '/v1/health',
  rawQueryString: '',
  headers: { host: 'abc.lambda-url.eu-west-1.on.aws' },
  requestContext: {
    http: { method: 'GET', path: '/v1/health', protocol: 'HTTP/1.1', sourceIp: '203.0.113.7' },
    domainName: 'abc.lambda-url.eu-west-1.on.aws',
    requestId: 'r',
  },
  isBase64Encoded: false,
  ...over,
});

test('the Lambda entry answers every malformed event with 400 problem+json, never a throw or a 500', async () => {
  process.env.MEDCLIP_MODEL_DIR = modelDir;
  process.env.MEDCLIP_INDEX_DIR = indexDir;
  process.env.MEDCLIP_AUTH = 'iam';
  const { handler } = (await import('../api/lambda.ts')) as unknown as {
    handler: (e: unknown, c: unknown) => Promise<{ statusCode: number; headers: Record<string, string>; body: string }>;
  };
  const post = {
    requestContext: { http: { method: 'POST', path: '/v1/classify' } },
    rawPath: '/v1/classify',
    headers: { 'content-type': 'image/png' },
  };
  const bad: [string, unknown][] = [
    ['null', null],
    ['a string', 'GET /v1/health'],
    ['a number', 42],
    ['an array', [httpEvent()]],
    ['an empty object', {}],
    ['no requestContext', { rawPath: '/v1/health' }],
    ['a path without a slash', httpEvent({ rawPath: 'v1/health' })],
    ['a numeric header', httpEvent({ headers: { host: 'x', 'x-count': 3 } })],
    ['a header name with a space', httpEvent({ headers: { 'bad name': 'x' } })],
    ['a header value with a newline', httpEvent({ headers: { 'x-a': 'a\r\nset-cookie: x' } })],
    ['headers as a list', httpEvent({ headers: ['host'] })],
    ['a non-base64 body flagged base64', httpEvent({ ...post, isBase64Encoded: true, body: '%%% not base64 %%%' })],
    ['base64 of the wrong length', httpEvent({ ...post, isBase64Encoded: true, body: 'iVBORw0KGgo' })],
    ['a shard request without op', { kind: 'medclip-shard' }],
    ['a shard search without a vector', { kind: 'medclip-shard', op: 'search', k: 3 }],
    ['a shard search with a bad vector', { kind: 'medclip-shard', op: 'search', vector: '***', k: 3 }],
    ['a shard search with k = -1', { kind: 'medclip-shard', op: 'search', vector: 'AAAAAA==', k: -1 }],
    ['a shard request with an unknown op', { kind: 'medclip-shard', op: 'drop-table' }],
    ['a shard thumbnail with no id', { kind: 'medclip-shard', op: 'thumbnail' }],
  ];
  for (const [what, event] of bad) {
    const r = await handler(event, {});
    assert.equal(r.statusCode, 400, what);
    assert.equal(r.headers['content-type'], 'application/problem+json', what);
    assert.equal((JSON.parse(r.body) as { status: number }).status, 400, what);
  }
  const ok = await handler(httpEvent(), {});
  assert.equal(ok.statusCode, 200);
  const shard = (await handler({ kind: 'medclip-shard', op: 'count' }, {})) as unknown as { images: number };
  assert.equal(shard.images, 6);
});

test('the Lambda entry refuses to start with MEDCLIP_AUTH=api-key and no key hashes, and logs why', async () => {
  const script = `import { handler } from ${JSON.stringify(join(REPO, 'api/lambda.ts'))};
try { await handler(${JSON.stringify(httpEvent())}, {}); console.log('SERVED'); } catch (e) { console.log('REFUSED: ' + e.message); }`;
  const out = await new Promise<{ stdout: string; stderr: string }>((resolve, reject) =>
    execFile(
      process.execPath,
      ['--import', 'tsx', '--input-type=module', '-e', script],
      {
        cwd: REPO,
        env: {
          ...process.env,
          MEDCLIP_AUTH: 'api-key',
          MEDCLIP_API_KEY_SHA256: '',
          MEDCLIP_MODEL_DIR: modelDir,
          MEDCLIP_INDEX_DIR: indexDir,
        },
      },
      (err, stdout, stderr) => (err ? reject(err) : resolve({ stdout, stderr })),
    ),
  );
  assert.match(out.stdout, /^REFUSED: .*refusing to serve an open API/m);
  assert.match(out.stderr, /"event":"refusing-to-start"/);
});

test('synth fails with a clear message for auth=api-key without keys; with keys the template wires MEDCLIP_AUTH', async () => {
  const synth = (...ctx: string[]) =>
    new Promise<{ code: number; stderr: string }>((resolve) =>
      execFile(process.execPath, ['--import', 'tsx', 'infra/app.ts', ...ctx.flatMap((c) => ['-c', c])], { cwd: REPO }, (err, _o, stderr) =>
        resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stderr }),
      ),
    );
  const open = await synth('auth=api-key');
  assert.equal(open.code, 1);
  assert.match(open.stderr, /auth=api-key needs API keys: pass -c apiKeySha256=.* or -c apiKeySecret=/);
  assert.match((await synth('auth=api-key', 'apiKeySha256=nothex')).stderr, /sha256 hex digest/);
  const ok = await synth('auth=api-key', `apiKeySha256=${'b'.repeat(64)}`);
  assert.equal(ok.code, 0, ok.stderr);
  const template = readFileSync(join(REPO, 'cdk.out/MedclipSearch.template.json'), 'utf8');
  assert.match(template, /"MEDCLIP_AUTH": "api-key"/);
  assert.match(template, new RegExp(`"MEDCLIP_API_KEY_SHA256": "${'b'.repeat(64)}"`));
});

test('medclip serve: SIGTERM lets an in-flight request finish, then exits 0; npm start passes SIGTERM on', async () => {
  const child = spawn(process.execPath, ['bin/medclip.js', 'serve', '--model', modelDir, '--index', indexDir, '--port', '0'], {
    cwd: REPO,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let err = '';
  child.stderr.on('data', (d: Buffer) => (err += d));
  while (!/on (http:\/\/[^ ]+)/.test(err)) await once(child.stderr, 'data');
  const url = /on (http:\/\/[^ ]+)/.exec(err)![1]!;
  // a request in flight: a large body sent slowly, SIGTERM arrives mid-upload
  const body = JSON.stringify({ image: png.toString('base64') });
  const inflight = fetch(`${url}/v1/classify`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: new ReadableStream({
      async start(ctrl) {
        const enc = new TextEncoder().encode(body);
        ctrl.enqueue(enc.subarray(0, 100));
        await new Promise((r) => setTimeout(r, 300));
        child.kill('SIGTERM');
        await new Promise((r) => setTimeout(r, 300));
        ctrl.enqueue(enc.subarray(100));
        ctrl.close();
      },
    }),
    duplex: 'half',
  } as RequestInit);
  const r = await inflight;
  assert.equal(r.status, 200, 'the in-flight request finished');
  const [code] = (await once(child, 'exit')) as [number];
  assert.equal(code, 0);
  assert.match(err, /SIGTERM: finishing in-flight requests/);

  // npm start (the README's command): SIGTERM to npm reaches the server, and nothing of its own process tree is
  // left running (only this test's processes are looked at: a user's own `npm start` beside the tests is not ours)
  const npm = spawn('npm', ['start', '--', '--port', '0'], { cwd: REPO, stdio: ['ignore', 'pipe', 'pipe'] });
  let npmErr = '';
  npm.stderr.on('data', (d: Buffer) => (npmErr += d));
  while (!/on http:\/\//.test(npmErr)) await once(npm.stderr, 'data');
  const tree = descendants(npm.pid!);
  assert.ok(tree.length >= 1, 'npm start runs the server as its child');
  npm.kill('SIGTERM');
  await once(npm, 'exit');
  await new Promise((r) => setTimeout(r, 500));
  const left = tree.filter(alive);
  assert.deepEqual(left, [], 'no process of npm start outlives it');
});

/** `medclip serve --workers 2` on a free port, once it says all workers listen; its stderr kept as it comes. */
async function startTwoWorkers(): Promise<{ child: ChildProcess; stderr: { text: string } }> {
  const child = spawn(process.execPath, [join(REPO, 'bin/medclip.js'), 'serve', '--port', '0', '--workers', '2'], {
    cwd: REPO,
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  const stderr = { text: '' };
  child.stderr!.on('data', (d: Buffer) => (stderr.text += d));
  while (!/on http:\/\/\S+ .*2 worker processes/.test(stderr.text)) await once(child.stderr!, 'data');
  return { child, stderr };
}

test('serve --workers 2: two processes share the port, a dead worker is replaced, SIGTERM stops them all', async () => {
  const { child, stderr } = await startTwoWorkers();
  const err = () => stderr.text;
  const url = /on (http:\/\/\S+)/.exec(err())![1]!;
  assert.equal(err().match(/medclip-search on/g)?.length, 1, 'the start-up line once, for all workers');
  const workers = () => descendants(child.pid!).filter(alive);
  assert.equal(workers().length, 2);
  const health = async () => (await fetch(`${url}/v1/health`)).status;
  for (let i = 0; i < 6; i++) assert.equal(await health(), 200);
  // a worker killed outright: the other keeps answering, and a new one takes its place
  const [victim] = workers();
  process.kill(victim!, 'SIGKILL');
  const deadline = Date.now() + 20_000;
  while (!(workers().length === 2 && !workers().includes(victim!)) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 200));
  assert.equal(workers().length, 2, `replaced: ${err()}`);
  assert.match(err(), /"event":"worker-exit"/);
  for (let i = 0; i < 6; i++) assert.equal(await health(), 200);
  const tree = workers();
  child.kill('SIGTERM');
  const [code] = (await once(child, 'exit')) as [number];
  assert.equal(code, 0);
  await new Promise((r) => setTimeout(r, 300));
  assert.deepEqual(tree.filter(alive), [], 'no worker outlives the server');
});

test('serve --workers: workers that keep dying stop the server (exit 1) instead of a fork loop', async () => {
  const { child, stderr } = await startTwoWorkers();
  const exited = once(child, 'exit');
  let done = false;
  void exited.then(() => (done = true));
  const deadline = Date.now() + 60_000;
  while (!done && Date.now() < deadline) {
    for (const pid of descendants(child.pid!).filter(alive)) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // gone meanwhile
      }
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  const [code] = (await exited) as [number];
  assert.equal(code, 1);
  assert.match(stderr.text, /worker processes died within a minute; stopping the server/);
});

/** The pids below `root` in the process tree (Linux /proc), children before grandchildren. */
function descendants(root: number): number[] {
  const parent = new Map<number, number>();
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      // pid (comm) state ppid ...: comm may hold spaces and parentheses, so read after the last ')'
      const stat = readFileSync(`/proc/${name}/stat`, 'utf8');
      parent.set(Number(name), Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]));
    } catch {
      // gone meanwhile
    }
  }
  const out: number[] = [];
  const queue = [root];
  while (queue.length) {
    const p = queue.shift()!;
    for (const [pid, ppid] of parent)
      if (ppid === p) {
        out.push(pid);
        queue.push(pid);
      }
  }
  return out;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return !readFileSync(`/proc/${pid}/stat`, 'utf8').includes(') Z '); // a zombie is already gone
  } catch {
    return false;
  }
}

test('HTTP edge cases: an aborted upload is logged 499 (never 500); Node parse errors and form data to a JSON route are problem+json', async () => {
  const logged: string[] = [];
  const server = await startServer({
    model: modelDir,
    index: indexDir,
    port: 0,
    host: '127.0.0.1',
    log: (l) => logged.push(l),
    follow: false,
  });
  const port = Number(new URL(server.url).port);
  /** Raw bytes to the server; what came back before it closed. */
  const raw = (bytes: string, closeAfterMs?: number) =>
    new Promise<string>((resolve) => {
      const sock = connect(port, '127.0.0.1');
      let out = '';
      sock.on('data', (d) => (out += d));
      sock.on('close', () => resolve(out));
      sock.on('error', () => {});
      sock.write(bytes);
      if (closeAfterMs !== undefined) setTimeout(() => sock.destroy(), closeAfterMs);
    });
  try {
    // a client that closes while its upload is under way
    for (const [path, type] of [
      ['/v1/classify', 'image/png'],
      ['/v1/search/text', 'application/json'],
    ]) {
      await raw(`POST ${path} HTTP/1.1\r\nhost: x\r\ncontent-type: ${type}\r\ncontent-length: 100000\r\n\r\n${'x'.repeat(1000)}`, 200);
      await new Promise((r) => setTimeout(r, 200));
    }
    const access = logged.filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as { route?: string; status?: number; event?: string });
    for (const route of ['/v1/classify', '/v1/search/text'])
      assert.deepEqual(
        access.filter((e) => e.route === route).map((e) => e.status),
        [499],
        `${route}: ${JSON.stringify(access)}`,
      );
    assert.ok(!access.some((e) => (e.status ?? 0) >= 500), JSON.stringify(access));
    // what Node's parser refuses: a malformed request line, oversized headers
    for (const [bytes, status] of [
      ['GARBAGE\r\n\r\n', 400],
      [`GET /v1/health HTTP/1.1\r\nhost: x\r\nx-big: ${'a'.repeat(20_000)}\r\n\r\n`, 431],
    ] as const) {
      const answer = await raw(bytes);
      assert.match(answer, new RegExp(`^HTTP/1.1 ${status} `));
      assert.match(answer, /content-type: application\/problem\+json/);
      const body = JSON.parse(answer.slice(answer.indexOf('\r\n\r\n') + 4)) as { status: number; requestId: string };
      assert.equal(body.status, status);
      assert.match(body.requestId, /^[0-9a-f-]{36}$/);
    }
    // a form sent to a JSON route is told to send JSON
    const form = new FormData();
    form.append('query', 'pneumonia');
    const r = await fetch(`${server.url}/v1/search/text`, { method: 'POST', body: form });
    assert.equal(r.status, 415);
    assert.match(((await r.json()) as { detail: string }).detail, /JSON body: send it with content-type: application\/json/);
  } finally {
    await server.close();
  }
});

test('medclip serve on a busy port: one line, exit 1', async () => {
  const blocker = createServer().listen(0, '127.0.0.1');
  await once(blocker, 'listening');
  const port = (blocker.address() as AddressInfo).port;
  try {
    const r = await medclipWith({ timeoutMs: 60_000 }, 'serve', '--model', modelDir, '--index', indexDir, '--port', String(port));
    assert.equal(r.code, 1);
    assert.equal(r.stderr.trim(), `medclip: port ${port} on 127.0.0.1 is already in use (choose another with --port)`);
  } finally {
    blocker.close();
  }
});

test('the OpenAPI document passes @redocly/cli lint with no error and no warning; errors are declared problem+json', async () => {
  const doc = (await (await app.request('/openapi.json')).json()) as {
    paths: Record<
      string,
      Record<
        string,
        {
          operationId?: string;
          responses: Record<string, { content?: Record<string, unknown> }>;
          parameters?: { name: string; in: string }[];
        }
      >
    >;
  };
  const file = join(dir, 'openapi.json');
  writeFileSync(file, JSON.stringify(doc));
  const out = await new Promise<{ code: number; stdout: string }>((resolve) =>
    execFile(join(REPO, 'node_modules/.bin/redocly'), ['lint', '--format', 'json', file], { cwd: REPO }, (err, stdout) =>
      resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout }),
    ),
  );
  const report = JSON.parse(out.stdout) as {
    totals: { errors: number; warnings: number };
    problems: { ruleId: string; message: string }[];
  };
  assert.deepEqual(report.totals, { errors: 0, warnings: 0, ignored: 0 }, JSON.stringify(report.problems.slice(0, 5)));
  assert.equal(out.code, 0);
  for (const [path, ops] of Object.entries(doc.paths))
    for (const [method, op] of Object.entries(ops)) {
      assert.ok(op.operationId, `${method} ${path} has an operationId`);
      for (const [status, r] of Object.entries(op.responses))
        if (status.startsWith('4'))
          assert.deepEqual(Object.keys(r.content ?? {}), ['application/problem+json'], `${method} ${path} ${status}`);
    }
  const imageParams = doc.paths['/v1/search/image']!.post!.parameters!.map((p) => `${p.in}:${p.name}`).sort();
  assert.deepEqual(imageParams, ['query:filter', 'query:k', 'query:target']);
});

test('a fault in the stored data is a 500 problem (named in the log, not the response); a bad request stays 400', async () => {
  const { IndexError } = await import('../core/bundle/index.ts');
  const index = await IndexBundle.load(indexDir, { model });
  const services = await createServices(model, index, {
    count: () => 1,
    search: async () => {
      throw new IndexError(`${indexDir}: images.meta.jsonl: line 3 is not valid JSON`);
    },
    version: () => 1,
    get: async () => undefined,
    preview: async () => undefined,
    facets: async () => index.facets(),
  });
  const seen: Record<string, unknown>[] = [];
  const broken = createApp(services, { auth: { mode: 'off' }, log: (e) => seen.push(e) });
  const r = await broken.request('/v1/search/text', {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ query: 'pneumonia', target: 'images' }),
  });
  assert.equal(r.status, 500);
  assert.equal(r.headers.get('content-type'), 'application/problem+json');
  const body = (await r.json()) as { title: string; detail: string };
  assert.equal(body.title, 'Stored data error');
  assert.doesNotMatch(body.detail, /meta\.jsonl/, 'internal paths stay in the log');
  assert.ok(seen.some((e) => e.error === 'IndexError' && e.kind === 'data'));
  const bad = await broken.request('/v1/search/text', {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ query: 'pneumonia', target: 'images', filter: { must: ['Pneumonitis'] } }),
  });
  assert.equal(bad.status, 400);
});
