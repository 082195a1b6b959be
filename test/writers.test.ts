// Writers of one bundle, as separate processes (as users and cron jobs run them): concurrent appends and deletes
// all land with no id pointing at another image's vector; a writer killed -9 at any point of its publish leaves a
// bundle that loads and verifies; an interrupted write never blocks the next; a full disk names the file and changes nothing.
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { IndexBundle, withLock, LockTimeoutError } from '../core/bundle/index.ts';
import { MedClipModel } from '../core/model/index.ts';
import { buildIndex } from '../index-builder/build.ts';
import { DATA, IMAGES_CSV, liveDir, outputDir } from './helpers/paths.ts';
import { tinyModelBundle } from './helpers/tiny-model.ts';
import { medclipWith } from './helpers/cli.ts';

const dir = outputDir('writers');
let modelDir: string;
let model: MedClipModel;
const lines = readFileSync(IMAGES_CSV, 'utf8').trim().split('\n');
const valRows = lines.filter((l) => l.includes(',val,'));
const table = (name: string, rows: string[]) => {
  const file = join(dir, `${name}.csv`);
  writeFileSync(file, [lines[0], ...rows].join('\n') + '\n');
  return file;
};
const pathOf = (row: string) => row.split(',')[0]!;
/** `medclip index --append` of an image table into `out`, as its own process (as users and cron jobs run it). */
const appendCli = (file: string, out: string, o: { env?: Record<string, string>; timeoutMs?: number }) =>
  medclipWith(o, 'index', '--model', modelDir, '--images', file, '--root', DATA, '--out', out, '--append', '--threads', '1');

before(async () => {
  modelDir = await tinyModelBundle(dir);
  model = await MedClipModel.load(modelDir);
});

/** Every item's stored vector is the embedding of its own file: no id points at another image's vector. */
async function assertVectorsMatchIds(index: IndexBundle): Promise<number> {
  const entries = [...index.entries('images')];
  const vectors = await model.embedImages(entries.map((e) => readFileSync(join(DATA, e.meta.id))));
  entries.forEach((e, i) => {
    const cos = e.vector.reduce((s, x, d) => s + x * vectors[i]![d]!, 0);
    assert.ok(cos > 0.9999, `${e.meta.id}: stored vector is not its own (cosine ${cos})`);
  });
  return entries.length;
}

test('5 concurrent appends and 10 concurrent deletes, each its own process: every change lands, ids keep their vectors', async () => {
  const out = join(dir, 'shared');
  rmSync(out, { recursive: true, force: true });
  await buildIndex({ model: modelDir, images: table('base', valRows.slice(0, 10)), root: DATA, out });
  const appends = Array.from({ length: 5 }, (_, i) => table(`append-${i}`, valRows.slice(10 + i * 8, 18 + i * 8)));
  const results = await Promise.all(appends.map((t) => appendCli(t, out, { timeoutMs: 240_000 })));
  for (const r of results) assert.equal(r.code, 0, r.stderr);
  let index = await IndexBundle.load(out, { model });
  assert.equal(index.manifest.version, 6, 'one version per append');
  assert.equal(await assertVectorsMatchIds(index), 50);

  const victims = valRows.slice(0, 10).map(pathOf);
  const deletes = await Promise.all(
    victims.map((id) => medclipWith({ timeoutMs: 240_000 }, 'index', '--model', modelDir, '--out', out, '--delete', id)),
  );
  for (const r of deletes) assert.equal(r.code, 0, r.stderr);
  index = await IndexBundle.load(out, { model });
  assert.equal(index.manifest.version, 16, 'one version per delete');
  assert.equal(index.count('images'), 40);
  for (const id of victims) assert.equal(index.image(id), undefined, `${id} was deleted`);
  assert.equal(await assertVectorsMatchIds(index), 40);
  assert.deepEqual(readdirSync(out).sort(), ['CURRENT', 'v000015', 'v000016'], 'the live version and the previous one, nothing else');
  assert.ok(!existsSync(`${out}.lock`) && !existsSync(`${out}.partial`));
});

test('a writer killed -9 at each point of its publish leaves the previous or the new version, complete and verified', async () => {
  const out = join(dir, 'killed');
  rmSync(out, { recursive: true, force: true });
  await buildIndex({ model: modelDir, images: table('k-base', valRows.slice(0, 6)), root: DATA, out });
  let expected = 6;
  let offset = 6;
  for (const point of ['staged', 'renamed', 'pointer', 'switched']) {
    const more = table(`k-${point}`, valRows.slice(offset, offset + 3));
    const r = await appendCli(more, out, { env: { MEDCLIP_FAULT_KILL_AT: point }, timeoutMs: 120_000 });
    assert.equal(r.signal, 'SIGKILL', `killed at ${point}: ${r.stderr}`);
    const index = await IndexBundle.load(out, { model }); // verifies every file's sha256
    const n = await assertVectorsMatchIds(index);
    if (point === 'switched') {
      assert.equal(n, expected + 3, 'killed after the switch: the new version is live');
      expected = n;
    } else assert.equal(n, expected, `killed at ${point}: the previous version is live`);
    offset += 3;
    // an operator's cleanup between drills (the stale-lock takeover is tested below)
    rmSync(`${out}.lock`, { recursive: true, force: true });
    rmSync(`${out}.partial`, { recursive: true, force: true });
  }
  // The last writer is killed holding the lock: the next one waits for the lock to go stale, takes it over,
  // removes the staging leftovers and publishes on top of the latest version.
  const last = table('k-last', valRows.slice(offset, offset + 3));
  const killed = await appendCli(last, out, { env: { MEDCLIP_FAULT_KILL_AT: 'staged' }, timeoutMs: 120_000 });
  assert.equal(killed.signal, 'SIGKILL');
  assert.ok(existsSync(`${out}.lock`), 'the killed writer left its lock');
  rmSync(`${out}.partial`, { recursive: true, force: true });
  const t0 = Date.now();
  const ok = await appendCli(last, out, { timeoutMs: 120_000 });
  assert.equal(ok.code, 0, ok.stderr);
  assert.match(ok.stderr, /waiting for pid \d+/);
  assert.ok(Date.now() - t0 < 60_000);
  const index = await IndexBundle.load(out, { model });
  assert.equal(await assertVectorsMatchIds(index), expected + 3);
  assert.ok(!readdirSync(out).some((n) => n.startsWith('.')), 'no staging folder is left behind');
});

test('a writer gives up after --lock-timeout naming the holder', async () => {
  const out = join(dir, 'busy');
  rmSync(out, { recursive: true, force: true });
  await buildIndex({ model: modelDir, images: table('busy', valRows.slice(0, 3)), root: DATA, out });
  await withLock(out, 'a long maintenance job', async () => {
    const r = await medclipWith(
      { timeoutMs: 60_000 },
      'index',
      '--model',
      modelDir,
      '--out',
      out,
      '--delete',
      pathOf(valRows[0]!),
      '--lock-timeout',
      '1',
    );
    assert.equal(r.code, 75, 'EX_TEMPFAIL: busy, try again later');
    assert.match(
      r.stderr,
      new RegExp(`^medclip: .*busy is being written by pid ${process.pid} on .* \\(a long maintenance job\\).*gave up after 1 s`, 'm'),
    );
    const out_ = r.stderr.trim().split('\n');
    assert.deepEqual(
      out_.map((l) => l.replace(/ .*/, '')),
      ['medclip:', 'medclip:'],
      'a waiting notice, then the error in one line',
    );
    await assert.rejects(
      withLock(out, 'second', async () => {}, { waitMs: 100 }),
      LockTimeoutError,
    );
  });
  assert.equal((await IndexBundle.load(out, { model })).count('images'), 3, 'nothing changed');
});

test('an interrupted --append never blocks the next: the same command finishes it, other writes discard it with a notice', async () => {
  const out = join(dir, 'resume');
  rmSync(out, { recursive: true, force: true });
  rmSync(`${out}.partial`, { recursive: true, force: true });
  const rows = (from: number, n: number) => valRows.slice(from, from + n);
  const a = table('resume-a', rows(0, 4));
  const b = table('resume-b', rows(4, 4));
  const c = table('resume-c', rows(8, 3));
  const d = table('resume-d', rows(11, 3));
  await buildIndex({ model: modelDir, images: a, root: DATA, out });
  const kill = { env: { MEDCLIP_FAULT_KILL_AT: 'staged' }, timeoutMs: 120_000 };
  const dropLock = () => rmSync(`${out}.lock`, { recursive: true, force: true }); // a killed writer's lock (stale after 10 s)

  // killed after embedding everything: the same command again finishes it from the partial state
  assert.equal((await appendCli(b, out, kill)).signal, 'SIGKILL');
  dropLock();
  const again = await appendCli(b, out, { timeoutMs: 120_000 });
  assert.equal(again.code, 0, again.stderr);
  assert.match(again.stderr, /resuming an interrupted --append of .* from .*resume\.partial/);

  // killed again; an ordinary --append of other images discards the stale partial in one line and lands
  assert.equal((await appendCli(c, out, kill)).signal, 'SIGKILL');
  dropLock();
  const other = await appendCli(d, out, { timeoutMs: 120_000 });
  assert.equal(other.code, 0, other.stderr);
  assert.match(other.stderr, /discarding an interrupted --append of .*: it had a different --images; starting over/);

  // killed again; a --delete in between moves the bundle on; the next --append discards (the bundle moved) and lands
  assert.equal((await appendCli(c, out, kill)).signal, 'SIGKILL');
  dropLock();
  const victim = pathOf(rows(0, 1)[0]!);
  const del = await medclipWith({ timeoutMs: 120_000 }, 'index', '--model', modelDir, '--out', out, '--delete', victim);
  assert.equal(del.code, 0, del.stderr);
  const last = await appendCli(c, out, { timeoutMs: 120_000 });
  assert.equal(last.code, 0, last.stderr);
  assert.match(last.stderr, /discarding an interrupted --append .*the bundle moved from version \d+ to \d+ since/);
  assert.ok(!existsSync(`${out}.partial`));

  // nothing lost, nothing doubled: every row once but the deleted one, each with its own vector
  const index = await IndexBundle.load(out, { model });
  const ids = [...index.entries('images')].map((e) => e.meta.id).sort();
  const want = rows(0, 14)
    .map(pathOf)
    .filter((id) => id !== victim)
    .sort();
  assert.deepEqual(ids, want);
  assert.equal(await assertVectorsMatchIds(index), 13);

  // --resume still refuses to start anything new on a complete bundle
  await assert.rejects(buildIndex({ model: modelDir, images: a, root: DATA, out, resume: true }), /nothing to resume/);
});

test('a full disk: the error names the file being written, the CLI exits 1 in one line, the bundle is unchanged', async (t) => {
  const mnt = join(dir, 'tiny-disk');
  mkdirSync(mnt, { recursive: true });
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=400k', 'tmpfs', mnt], { stdio: 'ignore' });
  } catch {
    if (process.env.CI) throw new Error('CI runs as root and must be able to mount a small tmpfs for this drill');
    t.skip('mounting a tmpfs needs root');
    return;
  }
  try {
    const out = join(mnt, 'bundle');
    await buildIndex({ model: modelDir, images: table('disk-a', valRows.slice(0, 4)), root: DATA, out });
    // thumbnails of 60 images do not fit in 400 kB
    const r = await medclipWith(
      { timeoutMs: 120_000 },
      'index',
      '--model',
      modelDir,
      '--images',
      table('disk-b', valRows.slice(4, 64)),
      '--root',
      DATA,
      '--out',
      out,
      '--append',
      '--thumbnails',
    );
    assert.equal(r.code, 1, `exits 1, not hangs or crashes: ${r.stderr}`);
    const errLines = r.stderr
      .trim()
      .split('\n')
      .filter((l) => l.startsWith('medclip:'));
    assert.equal(errLines.length, 1, r.stderr);
    assert.match(errLines[0]!, /cannot write .*tiny-disk\/bundle.*: no space left on device/);
    const index = await IndexBundle.load(out, { model });
    assert.equal(index.count('images'), 4, 'the live bundle is unchanged');
    assert.ok(!readdirSync(out).some((n) => n.startsWith('.staging')), 'no half-written version is left');
  } finally {
    execFileSync('umount', [mnt]);
  }
});

test('a fresh build into an existing bundle needs --force and publishes a new version', async () => {
  const out = join(dir, 'forced');
  rmSync(out, { recursive: true, force: true });
  await buildIndex({ model: modelDir, images: table('f-a', valRows.slice(0, 3)), root: DATA, out });
  await assert.rejects(
    buildIndex({ model: modelDir, images: table('f-b', valRows.slice(3, 5)), root: DATA, out }),
    /already exists: use --append .*--force/,
  );
  const s = await buildIndex({ model: modelDir, images: table('f-b', valRows.slice(3, 5)), root: DATA, out, force: true });
  assert.equal(s.version, 2);
  const index = await IndexBundle.load(out, { model });
  assert.equal(index.count('images'), 2);
  assert.ok(existsSync(join(out, 'v000001', 'manifest.json')), 'the previous version stays until the next publish');
  assert.equal(liveDir(out), join(out, 'v000002'));
  const notBundle = join(dir, 'not-a-bundle');
  mkdirSync(notBundle, { recursive: true });
  writeFileSync(join(notBundle, 'notes.txt'), 'mine');
  await assert.rejects(
    buildIndex({ model: modelDir, images: table('f-b', valRows.slice(3, 5)), root: DATA, out: notBundle, force: true }),
    /exists and is not an index bundle/,
  );
  assert.ok(existsSync(join(notBundle, 'notes.txt')));
});

test('a bad label cell after the progress bar started: one line naming the row, exit 1, no hang', async () => {
  const bad = valRows[40]!.split(',');
  bad[5] = 'maybe'; // a label column
  const file = table('bad-cell', [...valRows.slice(0, 40), bad.join(',')]);
  const out = join(dir, 'bad-cell');
  rmSync(out, { recursive: true, force: true });
  rmSync(`${out}.partial`, { recursive: true, force: true });
  const r = await medclipWith(
    { timeoutMs: 90_000 },
    'index',
    '--model',
    modelDir,
    '--images',
    file,
    '--root',
    DATA,
    '--out',
    out,
    '--batch',
    '8',
  );
  assert.equal(r.signal ?? null, null, 'the process exited by itself');
  assert.equal(r.code, 1);
  const last = r.stderr.trim().split('\n').at(-1)!;
  assert.match(last, /^medclip: .*bad-cell\.csv, row 42: /);
  assert.doesNotMatch(r.stderr, /^\s+at /m, 'no stack trace');
  assert.ok(!existsSync(join(out, 'CURRENT')), 'no bundle was published');
});

test('a format-1 bundle is refused with how to upgrade it; --upgrade stores each sentence text and the labeler version', async () => {
  const { createHash } = await import('node:crypto');
  const out = join(dir, 'v1');
  rmSync(out, { recursive: true, force: true });
  await buildIndex({ model: modelDir, reports: join(DATA, 'reports/iu_reports.csv'), reportSplit: 'val', out });
  const live = liveDir(out);
  const v2Texts = readFileSync(join(live, 'reports.meta.jsonl'), 'utf8')
    .trim()
    .split('\n')
    .map((l) => (JSON.parse(l) as { text: string }).text);
  // make it what an older build wrote: format 1, no sentence text, no versions
  const meta = readFileSync(join(live, 'reports.meta.jsonl'), 'utf8')
    .trim()
    .split('\n')
    .map((l) => {
      const { text: _t, ...m } = JSON.parse(l) as Record<string, unknown>;
      return JSON.stringify(m);
    });
  const metaText = `${meta.join('\n')}\n`;
  writeFileSync(join(live, 'reports.meta.jsonl'), metaText);
  const manifest = JSON.parse(readFileSync(join(live, 'manifest.json'), 'utf8')) as Record<string, unknown> & {
    sha256: Record<string, string>;
  };
  manifest.format = 'medclip-index/1';
  forgetLineIndexes(manifest);
  delete manifest.labeler;
  delete manifest.prompts;
  manifest.sha256['reports.meta.jsonl'] = createHash('sha256').update(metaText).digest('hex');
  writeFileSync(join(live, 'manifest.json'), JSON.stringify(manifest));
  await assert.rejects(
    IndexBundle.load(out, { model }),
    /index format medclip-index\/1 stores no sentence text; upgrade it in place with `medclip index --upgrade/,
  );
  const r = await medclipWith({ timeoutMs: 120_000 }, 'index', '--model', modelDir, '--out', out, '--upgrade', '--json');
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual(JSON.parse(r.stdout), { version: 2, sentences: v2Texts.length, alreadyCurrent: false });
  const upgraded = await IndexBundle.load(out, { model });
  assert.equal(upgraded.manifest.format, 'medclip-index/2');
  assert.ok(upgraded.manifest.labeler?.version && upgraded.manifest.prompts?.version);
  assert.deepEqual(
    [...upgraded.entries('reports')].map((e) => (e.meta as { text?: string }).text),
    v2Texts,
    'the same sentences as a fresh build',
  );
  const again = await medclipWith({ timeoutMs: 120_000 }, 'index', '--model', modelDir, '--out', out, '--upgrade');
  assert.match(again.stdout, /already in the current format/);
});

test('--upgrade relabels a bundle written by another labeler version from its stored texts, and records the current one', async () => {
  const { createHash } = await import('node:crypto');
  const { LABELER_VERSION } = await import('../core/labeler/index.ts');
  const out = join(dir, 'old-labeler');
  rmSync(out, { recursive: true, force: true });
  await buildIndex({ model: modelDir, reports: join(DATA, 'reports/iu_reports.csv'), reportSplit: 'val', out });
  const live = liveDir(out);
  const fresh = ['reports.meta.jsonl', 'reports.jsonl', 'texts.meta.jsonl'].map((f) => readFileSync(join(live, f), 'utf8'));
  // what an older labeler wrote: every sentence and report labelled Fracture, and its version in the manifest
  const rewriteLines = (file: string, f: (row: Record<string, unknown> & { labels: Record<string, number> }) => void) => {
    const text = `${readFileSync(join(live, file), 'utf8')
      .trim()
      .split('\n')
      .map((l) => {
        const row = JSON.parse(l);
        f(row);
        return JSON.stringify(row);
      })
      .join('\n')}\n`;
    writeFileSync(join(live, file), text);
    return createHash('sha256').update(text).digest('hex');
  };
  const manifest = JSON.parse(readFileSync(join(live, 'manifest.json'), 'utf8')) as Record<string, unknown> & {
    sha256: Record<string, string>;
    labeler: { version: string };
  };
  const markFracture = (r: { labels: Record<string, number> }) => {
    r.labels.Fracture = 1;
  };
  manifest.sha256['reports.meta.jsonl'] = rewriteLines('reports.meta.jsonl', markFracture);
  manifest.sha256['reports.jsonl'] = rewriteLines('reports.jsonl', markFracture);
  manifest.labeler.version = 'older';
  forgetLineIndexes(manifest);
  writeFileSync(join(live, 'manifest.json'), JSON.stringify(manifest));
  const r = await medclipWith({ timeoutMs: 120_000 }, 'index', '--model', modelDir, '--out', out, '--upgrade', '--json');
  assert.equal(r.code, 0, r.stderr);
  assert.equal(JSON.parse(r.stdout).alreadyCurrent, false);
  const upgraded = await IndexBundle.load(out, { model });
  assert.equal(upgraded.manifest.labeler?.version, LABELER_VERSION);
  assert.deepEqual(
    ['reports.meta.jsonl', 'reports.jsonl', 'texts.meta.jsonl'].map((f) => readFileSync(join(liveDir(out), f), 'utf8')),
    fresh,
    'sentence, report and distinct-text labels as a fresh build writes them',
  );
});

/** What a bundle written before line indexes holds: no `metaIndex` (its metadata is then edited by hand above). */
function forgetLineIndexes(manifest: Record<string, unknown> & { sha256: Record<string, string> }): void {
  const collections = manifest.collections as Record<string, { shards: { metaIndex?: string }[] }>;
  for (const c of Object.values(collections))
    for (const shard of c.shards) {
      if (shard.metaIndex) delete manifest.sha256[shard.metaIndex];
      delete shard.metaIndex;
    }
}
