// The one image embedding pipeline (core/model/embed-images.ts) and the one retry policy (core/util/retry.ts).
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { embedImageSources, MedClipModel } from '../core/model/index.ts';
import { withRetry } from '../core/util/index.ts';
import { NIH_PNG, outputDir, REPO } from './helpers/paths.ts';

const dir = outputDir('embed-pipeline');
const model = await MedClipModel.load(join(REPO, 'models/medclip-tiny'));
after(() => model.close());

test('each source is settled on its own, in order: files and bytes embed as the API embeds them, bad ones say why', async () => {
  const kermany = join(REPO, 'samples/corpus/images/kermany/x/IM-0193-0001.jpg');
  const notImage = join(dir, 'notes.png');
  writeFileSync(notImage, 'not pixels');
  const out = await embedImageSources(model, [NIH_PNG, join(dir, 'missing.png'), readFileSync(kermany), notImage], { concurrency: 2 });
  assert.deepEqual(
    out.map((r) => r.ok),
    [true, false, true, false],
  );
  assert.match((out[1] as { reason: string }).reason, /^missing: file not found$/);
  assert.match((out[3] as { reason: string }).reason, /^unsupported: /);
  const [a, b] = await model.embedImages([readFileSync(NIH_PNG), readFileSync(kermany)]);
  assert.deepEqual((out[0] as { vector: Float32Array }).vector, a);
  assert.deepEqual((out[2] as { vector: Float32Array }).vector, b);
  // the API's single-image path throws the image's own error
  await assert.rejects(model.embedImages([readFileSync(NIH_PNG), Buffer.from('nope')]), /not a PNG, JPEG or DICOM/);
});

test('withRetry: retries with doubling waits, reports each failure, rethrows the last error; a success stops it', async () => {
  const seen: number[] = [];
  const t0 = performance.now();
  let calls = 0;
  await assert.rejects(
    withRetry(
      async () => {
        calls++;
        throw new Error(`try ${calls}`);
      },
      { retries: 2, backoffMs: 20 },
      (n) => seen.push(n),
    ),
    /try 3/,
  );
  assert.equal(calls, 3);
  assert.deepEqual(seen, [1, 2, 3]);
  assert.ok(performance.now() - t0 >= 55, 'waited 20 + 40 ms');
  let n = 0;
  assert.equal(await withRetry(async () => (++n < 2 ? Promise.reject(new Error('once')) : 'ok'), { backoffMs: 1 }), 'ok');
  assert.equal(n, 2);
});
