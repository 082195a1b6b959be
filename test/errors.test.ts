// One error model: every project error has a kind, and the CLI and the API map kinds the same way everywhere.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { EXIT_CODE, HTTP_STATUS, MedclipError } from '../core/errors.ts';
import { IndexError, LockTimeoutError, BundleFetchError } from '../core/bundle/index.ts';
import { ImageError } from '../core/image/index.ts';
import { TableError } from '../core/tables/index.ts';
import { ModelError } from '../core/model/index.ts';
import { IndexBuildError } from '../index-builder/errors.ts';
import { TrainError } from '../train/trainer.ts';
import { CliError } from '../cli/errors.ts';
import { HttpProblem } from '../api/problem.ts';

test('every error class is a MedclipError with the kind of failure it reports, and keeps its own name', () => {
  const cases: [MedclipError, string, string][] = [
    [new IndexError('bundle corrupt'), 'IndexError', 'data'],
    [new IndexError('bad k', 'input'), 'IndexError', 'input'],
    [new ImageError('truncated', 'x'), 'ImageError', 'input'],
    [new LockTimeoutError('busy'), 'LockTimeoutError', 'unavailable'],
    [new TableError('bad cell', 'a.csv', 3), 'TableError', 'input'],
    [new ModelError('no manifest'), 'ModelError', 'data'],
    [new BundleFetchError('sha mismatch'), 'BundleFetchError', 'data'],
    [new IndexBuildError('exists'), 'IndexBuildError', 'input'],
    [new TrainError('NaN'), 'TrainError', 'data'],
    [new CliError('flag'), 'CliError', 'input'],
    [new HttpProblem(503, 'x', 'y'), 'HttpProblem', 'unavailable'],
  ];
  for (const [e, name, kind] of cases) {
    assert.ok(e instanceof MedclipError && e instanceof Error);
    assert.equal(e.name, name);
    assert.equal(e.kind, kind, name);
  }
  assert.deepEqual(EXIT_CODE, { input: 1, 'not-found': 1, data: 1, unavailable: 75, internal: 70 });
  assert.deepEqual(HTTP_STATUS, { input: 400, 'not-found': 404, data: 500, unavailable: 503, internal: 500 });
});

test('environment variables are validated in one schema: a bad value names the variable, never its value', async () => {
  const { readEnv } = await import('../core/util/index.ts');
  const env = readEnv({ MEDCLIP_THREADS: '2', MEDCLIP_SHARD_FUNCTIONS: ' a, b ,', MEDCLIP_CORS_ORIGINS: '' });
  assert.equal(env.MEDCLIP_THREADS, 2);
  assert.deepEqual(env.MEDCLIP_SHARD_FUNCTIONS, ['a', 'b']);
  assert.deepEqual(env.MEDCLIP_CORS_ORIGINS, []);
  assert.equal(env.MEDCLIP_CACHE_DIR, '/tmp/medclip');
  assert.throws(
    () => readEnv({ MEDCLIP_THREADS: 'lots' }),
    (e: unknown) => e instanceof MedclipError && /MEDCLIP_THREADS/.test(e.message),
  );
  assert.throws(
    () => readEnv({ MEDCLIP_MODEL_URI: 'http://x/secret-path' }),
    (e: unknown) => e instanceof MedclipError && /MEDCLIP_MODEL_URI must be s3/.test(e.message) && !/secret-path/.test(e.message),
  );
  assert.throws(() => readEnv({ MEDCLIP_AUTH: 'none' }), /MEDCLIP_AUTH/);
});
