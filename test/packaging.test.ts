// Packaging guard: the Lambda asset is <= 250 MB unzipped, every native binary runs on Amazon Linux 2023
// (needs at most GLIBC 2.34 and GLIBCXX 3.4.29), and the bundled handlers answer in a clean process.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { packageLambda } from '../infra/package-lambda.ts';

// outside the repository, so module resolution cannot fall back to this checkout's node_modules
const out = join(mkdtempSync(join(tmpdir(), 'medclip-lambda-')), 'lambda');
const LIMIT = 250 * 1024 * 1024;
const MAX = { GLIBC: [2, 34], GLIBCXX: [3, 4, 29] } as const;

function nativeFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = join(dir, e.name);
    if (e.isDirectory()) return nativeFiles(p);
    return /\.node$|\.so(\.\d+)*$/.test(e.name) ? [p] : [];
  });
}

const newer = (v: number[], max: readonly number[]) => {
  for (let i = 0; i < Math.max(v.length, max.length); i++) if ((v[i] ?? 0) !== (max[i] ?? 0)) return (v[i] ?? 0) > (max[i] ?? 0);
  return false;
};

test('the API/worker Lambda asset: size, glibc requirements, and a cold start in a clean process', async () => {
  const { bytes } = await packageLambda(out);
  console.log(`Lambda asset: ${(bytes / 1048576).toFixed(1)} MB unzipped (limit 250 MB)`);
  assert.ok(bytes <= LIMIT, `${bytes} bytes`);
  const natives = nativeFiles(join(out, 'node_modules'));
  assert.ok(
    natives.some((f) => f.includes('onnxruntime')) &&
      natives.some((f) => f.includes('hnswlib')) &&
      natives.some((f) => f.includes('sharp')),
  );
  assert.ok(!natives.some((f) => /darwin|win32|arm64|providers_cuda/.test(f)), 'only linux-x64 CPU binaries');
  // the hnswlib addon loaded by default runs on every x86-64 Lambda host: no AVX instruction (no ymm register) in it;
  // the AVX2 build, when packaged, is loaded only where the CPU has AVX2 (core/bundle/hnswlib.ts, test/hnswlib.test.ts)
  const portable = join(out, 'node_modules/hnswlib-node/build/Release/addon.node');
  assert.ok(
    !/%ymm|%zmm/.test(execFileSync('objdump', ['-d', portable], { encoding: 'utf8', maxBuffer: 256 << 20 })),
    'portable hnswlib has AVX code',
  );
  for (const f of natives) {
    const symbols = execFileSync('objdump', ['-T', f], { encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 });
    for (const [lib, max] of Object.entries(MAX)) {
      for (const m of symbols.matchAll(new RegExp(`\\b${lib}_([0-9.]+)`, 'g'))) {
        const v = m[1]!.split('.').map(Number);
        assert.ok(!newer(v, max), `${f.slice(out.length + 1)} needs ${lib}_${m[1]} (Amazon Linux 2023 has ${max.join('.')})`);
      }
    }
  }
  const smoke = join(out, '..', 'smoke.mjs');
  writeFileSync(
    smoke,
    `
const { handler } = await import(${JSON.stringify(join(out, 'api.mjs'))});
const event = { version: '2.0', routeKey: '$default', rawPath: '/v1/health', rawQueryString: '', headers: { host: 'x.lambda-url.eu-west-1.on.aws' },
  requestContext: { http: { method: 'GET', path: '/v1/health', protocol: 'HTTP/1.1', sourceIp: '192.0.2.1', userAgent: 'test' }, accountId: '1', apiId: 'x', domainName: 'x', requestId: 'r', routeKey: '$default', stage: '$default', time: '', timeEpoch: 0 }, isBase64Encoded: false };
const r = await handler(event, {});
const docs = await handler({ ...event, rawPath: '/docs/swagger-ui.css', requestContext: { ...event.requestContext, http: { ...event.requestContext.http, path: '/docs/swagger-ui.css' } } }, {});
const pageEvent = (path) => ({ ...event, rawPath: path, requestContext: { ...event.requestContext, http: { ...event.requestContext.http, path } } });
const page = [await handler(pageEvent('/'), {}), await handler(pageEvent('/page/search.js'), {})].map((p) => p.statusCode);
const { handler: worker } = await import(${JSON.stringify(join(out, 'worker.mjs'))});
const w = await worker({ kind: 'texts', texts: ['no pneumothorax'] });
process.stdout.write(JSON.stringify({ status: r.statusCode, body: JSON.parse(r.body), vectors: w.vectors.length, docs: docs.statusCode, page }));
`,
  );
  // a clean environment and another working directory: nothing from this checkout's node_modules can leak in
  const result = JSON.parse(
    execFileSync(process.execPath, [smoke], { cwd: out, env: { PATH: process.env.PATH ?? '', MEDCLIP_AUTH: 'iam' }, encoding: 'utf8' })
      .split('\n')
      .filter((l) => l.startsWith('{"status"'))[0]!,
  );
  assert.equal(result.status, 200);
  assert.equal(result.body.model.name, 'medclip-tiny');
  assert.equal(result.vectors, 1);
  assert.equal(result.docs, 200, 'the API reference assets are in the package');
  assert.deepEqual(result.page, [200, 200], "the search page's files are in the package");
});
