// Versioned folders (core/bundle/versioned-dir.ts) as training checkpoints use them: a save killed -9 at each point of its
// publish leaves the previous checkpoint readable; a folder from before versions is read, then tidied away.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdirSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { currentVersion, publishVersion, stageVersion, VersionedDirError } from '../core/bundle/index.ts';
import { checkpointFolder, publishCheckpoint, readTensors, writeTensors } from '../train/checkpoint.ts';
import { outputDir, REPO } from './helpers/paths.ts';

const dir = outputDir('versioned-dir');

/** Save checkpoint `step` (weights = [step, step, step]) in a child process, optionally killed at a fault point. */
function saveInChild(ckpt: string, step: number, faultAt?: string): Promise<{ signal: string | null }> {
  const script = `import { publishCheckpoint, writeTensors } from ${JSON.stringify(join(REPO, 'train/checkpoint.ts'))};
import { mkdir } from 'node:fs/promises';
await publishCheckpoint(${JSON.stringify(ckpt)}, ${step}, async (tmp) => {
  await mkdir(tmp + '/weights');
  await writeTensors(tmp + '/weights', new Map([['w', new Float32Array([${step}, ${step}, ${step}])]]));
  await (await import('node:fs/promises')).writeFile(tmp + '/state.json', JSON.stringify({ step: ${step} }));
});`;
  return new Promise((resolve) =>
    execFile(
      process.execPath,
      ['--import', 'tsx', '--input-type=module', '-e', script],
      { cwd: REPO, env: { ...process.env, ...(faultAt ? { MEDCLIP_FAULT_KILL_AT: faultAt } : {}) } },
      (err) => resolve({ signal: (err as { signal?: string } | null)?.signal ?? null }),
    ),
  );
}

const weightOf = async (ckpt: string) => (await readTensors(join(checkpointFolder(ckpt)!, 'weights'))).get('w')![0];

test('a checkpoint save killed -9 before, during or after its switch leaves a whole checkpoint: the previous or the new', async () => {
  const ckpt = join(dir, 'checkpoint-latest');
  rmSync(ckpt, { recursive: true, force: true });
  assert.equal((await saveInChild(ckpt, 1)).signal, null);
  assert.equal(await weightOf(ckpt), 1);
  let step = 1;
  for (const point of ['staged', 'renamed', 'pointer', 'switched']) {
    const r = await saveInChild(ckpt, step + 1, point);
    assert.equal(r.signal, 'SIGKILL', point);
    const w = await weightOf(ckpt);
    if (point === 'switched') {
      assert.equal(w, step + 1, 'killed after the switch: the new checkpoint');
      step++;
    } else assert.equal(w, step, `killed at ${point}: the previous checkpoint`);
  }
  // the next save cleans what the killed ones left, and keeps the live and the previous checkpoint only
  await publishCheckpoint(ckpt, 9, async (tmp) => {
    mkdirSync(join(tmp, 'weights'));
    await writeTensors(join(tmp, 'weights'), new Map([['w', new Float32Array([9, 9, 9])]]));
    writeFileSync(join(tmp, 'state.json'), '{"step":9}');
  });
  assert.equal(await weightOf(ckpt), 9);
  const entries = readdirSync(ckpt).sort();
  assert.equal(entries.length, 3, `CURRENT + live + previous: ${entries}`);
  assert.ok(entries.includes('CURRENT') && !entries.some((e) => e.startsWith('.')));
});

test('a folder from before versions reads as one version, stays through the first publish, and goes at the second', async () => {
  const legacy = join(dir, 'legacy');
  rmSync(legacy, { recursive: true, force: true });
  mkdirSync(legacy, { recursive: true });
  writeFileSync(join(legacy, 'manifest.json'), '{"v":0}');
  assert.equal(await currentVersion(legacy, 'manifest.json'), legacy);
  for (const v of ['v000001', 'v000002']) {
    const staged = await stageVersion(legacy);
    writeFileSync(join(staged, 'manifest.json'), JSON.stringify({ v }));
    await publishVersion(legacy, staged, v);
  }
  assert.deepEqual(readdirSync(legacy).sort(), ['CURRENT', 'v000001', 'v000002']);
  assert.equal(await currentVersion(legacy, 'manifest.json'), join(legacy, 'v000002'));
  writeFileSync(join(legacy, 'CURRENT'), '../../etc\n');
  await assert.rejects(
    currentVersion(legacy, 'manifest.json'),
    (e: unknown) => e instanceof VersionedDirError && /does not name a version folder/.test(e.message),
  );
  assert.equal(await currentVersion(join(dir, 'nothing-here'), 'manifest.json'), undefined);
});
