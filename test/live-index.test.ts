// A serving process through publishes, as a deployment that indexes its PACS every night while it serves: the server
// follows each new version within seconds, a request finishes on the version it started on, no version in use is
// pruned (reader leases), and a query loop through appends and deletes sees no 5xx and no missing preview.
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { mkdir, utimes, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { IndexBundle, LEASE_TTL_MS, leasedVersions, READERS_DIR, takeLease, currentName } from '../core/bundle/index.ts';
import { LiveSearch, SearchService } from '../core/search/index.ts';
import { MedClipModel } from '../core/model/index.ts';
import { startServer } from '../api/server.ts';
import { buildIndex } from '../index-builder/build.ts';
import { deleteFromBundle } from '../index-builder/rewrite.ts';
import { DATA, IMAGES_CSV, outputDir } from './helpers/paths.ts';
import { tinyIndexBundle } from './helpers/tiny-model.ts';

const dir = outputDir('live-index');
let modelDir: string;
let indexDir: string;
let spare: string[];
const lines = readFileSync(IMAGES_CSV, 'utf8').trim().split('\n');

before(async () => {
  const built = await tinyIndexBundle(dir, { images: 6, thumbnails: true });
  modelDir = built.modelDir;
  indexDir = built.indexDir;
  spare = lines.filter((l) => l.includes(',val,')).slice(6, 20);
});

/** An image table of the given rows, for an --append. */
function table(name: string, rows: string[]): string {
  const file = join(dir, `${name}.csv`);
  writeFileSync(file, [lines[0], ...rows].join('\n') + '\n');
  return file;
}

const versionFolders = (location: string) => readdirSync(location).filter((n) => /^v\d+$/.test(n));

test('leases: a dead reader is ignored and tidied, a reader on another host lives by its heartbeat', async () => {
  const location = join(dir, 'leases');
  await mkdir(join(location, READERS_DIR), { recursive: true });
  const mine = await takeLease(location, 'v000003');
  // a process that has exited, on this host
  const gone = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))'], { encoding: 'utf8' });
  const dead = join(location, READERS_DIR, `v000001~${gone.stdout}~dead`);
  await writeFile(
    dead,
    JSON.stringify({ version: 'v000001', pid: Number(gone.stdout), host: (await import('node:os')).hostname(), since: '' }),
  );
  // readers on another host: one heartbeating, one silent for longer than the TTL
  const fresh = join(location, READERS_DIR, 'v000002~1~fresh');
  await writeFile(fresh, JSON.stringify({ version: 'v000002', pid: 1, host: 'other-host', since: '' }));
  const silent = join(location, READERS_DIR, 'v000004~1~silent');
  await writeFile(silent, JSON.stringify({ version: 'v000004', pid: 1, host: 'other-host', since: '' }));
  const old = new Date(Date.now() - LEASE_TTL_MS - 5_000);
  await utimes(silent, old, old);
  assert.deepEqual([...(await leasedVersions(location))].sort(), ['v000002', 'v000003']);
  assert.ok(!existsSync(dead) && !existsSync(silent), 'the leases of dead readers are removed');
  await mine.release();
  assert.deepEqual([...(await leasedVersions(location))], ['v000002']);
});

test('a request that started on a version finishes there: its version outlives two publishes, then goes', async () => {
  const model = await MedClipModel.load(modelDir);
  const events: Record<string, unknown>[] = [];
  const live = await LiveSearch.open({
    location: indexDir,
    open: async (d) => SearchService.create(model, await IndexBundle.load(d, { model })),
    log: (e) => events.push(e),
  });
  try {
    const first = live.versionDir;
    const held = live.acquire(); // a request in flight
    const before = held.service.health().index.images;
    await buildIndex({
      model: modelDir,
      images: table('inflight-1', spare.slice(0, 2)),
      root: DATA,
      out: indexDir,
      append: true,
      thumbnails: true,
    });
    assert.equal(await live.refresh(), true);
    await buildIndex({
      model: modelDir,
      images: table('inflight-2', spare.slice(2, 3)),
      root: DATA,
      out: indexDir,
      append: true,
      thumbnails: true,
    });
    assert.equal(await live.refresh(), true);
    assert.equal(live.current().health().index.images, before + 3, 'new requests see the newest version');
    // two publishes later the first version is still there for the request that uses it: a filter never used before
    // (its bitsets read now), an image preview, a report search
    assert.ok(existsSync(first), 'a leased version is not pruned');
    const hits = await held.service.searchText({ query: 'pleural effusion', target: 'images', k: 3, filter: { mustNot: ['Edema'] } });
    assert.equal(hits.hits.length, 3);
    assert.ok((await held.service.imagePreview(hits.hits[0]!.id)).length > 100);
    assert.ok((await held.service.searchText({ query: 'no pneumothorax', target: 'reports', k: 2 })).hits.length === 2);
    held.release();
    // released: the next publish prunes it
    await deleteFromBundle(indexDir, modelDir, [spare[0]!.split(',')[0]!]);
    assert.ok(!existsSync(first), 'a released version goes at the next publish');
    assert.equal(await live.refresh(), true);
    assert.ok(events.filter((e) => e.event === 'index-reloaded').length >= 3);
  } finally {
    await live.close();
    await model.close();
  }
  assert.deepEqual(readdirSync(join(indexDir, READERS_DIR)), [], 'a closed reader leaves no lease');
});

test('a version that cannot be loaded is logged once and skipped; the server keeps answering from the one it has', async () => {
  const model = await MedClipModel.load(modelDir);
  const events: Record<string, unknown>[] = [];
  const location = join(dir, 'broken');
  rmSync(location, { recursive: true, force: true });
  await buildIndex({ model: modelDir, images: table('broken', spare.slice(0, 2)), root: DATA, out: location });
  const live = await LiveSearch.open({
    location,
    open: async (d) => SearchService.create(model, await IndexBundle.load(d, { model })),
    log: (e) => events.push(e),
  });
  try {
    const name = (await currentName(location))!;
    // a corrupted next version (hand-made: writers never publish one)
    const next = join(location, 'v999999');
    await mkdir(next);
    for (const f of readdirSync(join(location, name)))
      if (f.endsWith('.json') || f.endsWith('.jsonl')) writeFileSync(join(next, f), readFileSync(join(location, name, f)));
    writeFileSync(join(location, 'CURRENT'), 'v999999\n');
    assert.equal(await live.refresh(), false);
    assert.equal(await live.refresh(), false);
    assert.equal(events.filter((e) => e.event === 'index-reload-failed').length, 1, JSON.stringify(events));
    assert.equal(live.current().health().index.images, 2);
    writeFileSync(join(location, 'CURRENT'), `${name}\n`);
  } finally {
    await live.close();
    await model.close();
  }
});

test('drill: a server under a query loop through 6 publishes (appends and deletes) — no 5xx, no missing preview, each version served within 10 s', async () => {
  const logs: string[] = [];
  const server = await startServer({ model: modelDir, index: indexDir, port: 0, host: '127.0.0.1', log: (l) => logs.push(l), pollMs: 500 });
  const deleted = new Set<string>();
  const stats = { requests: 0, fiveXX: 0, missingPreviews: 0, previews: 0 };
  let stop = false;
  const filters = [
    { mustNot: ['Edema'] },
    { source: ['nih'] },
    { view: ['PA', 'AP'] },
    { must: ['No Finding'] },
    { mustNot: ['Pneumonia'] },
    {},
  ];
  const loop = (async () => {
    for (let i = 0; !stop; i++) {
      const r = await fetch(`${server.url}/v1/search/text`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ query: i % 2 ? 'pneumonia' : 'normal chest', target: 'images', k: 20, filter: filters[i % filters.length] }),
      });
      stats.requests++;
      if (r.status >= 500) stats.fiveXX++;
      const body = (await r.json()) as { hits?: { id: string; thumbnail: string }[] };
      for (const h of body.hits ?? []) {
        const p = await fetch(`${server.url}${h.thumbnail}`);
        stats.previews++;
        await p.arrayBuffer();
        if (p.status >= 500) stats.fiveXX++;
        if (p.status === 404 && !deleted.has(h.id)) stats.missingPreviews++;
      }
      const rep = await fetch(`${server.url}/v1/search/text`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ query: 'no pleural effusion', target: 'reports', k: 5, filter: filters[(i + 1) % filters.length] }),
      });
      stats.requests++;
      if (rep.status >= 500) stats.fiveXX++;
      await rep.arrayBuffer();
    }
  })();
  const version = async () => ((await (await fetch(`${server.url}/v1/health`)).json()) as { index: { version: number } }).index.version;
  const lags: number[] = [];
  try {
    const publishes: (() => Promise<unknown>)[] = [
      () =>
        buildIndex({
          model: modelDir,
          images: table('drill-1', spare.slice(4, 6)),
          root: DATA,
          out: indexDir,
          append: true,
          thumbnails: true,
        }),
      () => deleteFromBundle(indexDir, modelDir, [spare[4]!.split(',')[0]!]),
      () =>
        buildIndex({
          model: modelDir,
          images: table('drill-2', spare.slice(6, 8)),
          root: DATA,
          out: indexDir,
          append: true,
          thumbnails: true,
        }),
      () => deleteFromBundle(indexDir, modelDir, [spare[6]!.split(',')[0]!, spare[7]!.split(',')[0]!]),
      () =>
        buildIndex({
          model: modelDir,
          images: table('drill-3', spare.slice(8, 10)),
          root: DATA,
          out: indexDir,
          append: true,
          thumbnails: true,
        }),
      () => deleteFromBundle(indexDir, modelDir, [spare[8]!.split(',')[0]!]),
    ];
    // the drill's deletes: a 404 on them is right once they are gone (the others must always have a preview)
    for (const r of [spare[4], spare[6], spare[7], spare[8]]) deleted.add(r!.split(',')[0]!);
    for (const publish of publishes) {
      await publish();
      const published = Number((await currentName(indexDir))!.slice(1));
      const t0 = Date.now();
      while ((await version()) !== published) {
        assert.ok(Date.now() - t0 < 10_000, `version ${published} not served within 10 s`);
        await new Promise((r) => setTimeout(r, 50));
      }
      lags.push(Date.now() - t0);
    }
  } finally {
    stop = true;
    await loop;
    await server.close();
  }
  assert.equal(stats.fiveXX, 0, JSON.stringify(stats));
  assert.equal(stats.missingPreviews, 0, JSON.stringify(stats));
  assert.ok(stats.previews > 50, JSON.stringify(stats));
  assert.ok(Math.max(...lags) < 10_000, `lags ${lags}`);
  assert.ok(logs.some((l) => l.includes('"event":"index-reloaded"')));
  assert.ok(versionFolders(indexDir).length <= 2, `old versions pruned once released: ${versionFolders(indexDir)}`);
  // deleted images are gone from a fresh search
  const check = await startServer({ model: modelDir, index: indexDir, port: 0, host: '127.0.0.1', log: () => {}, follow: false });
  try {
    const r = (await (
      await fetch(`${check.url}/v1/search/text`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ query: 'chest', target: 'images', k: 100 }),
      })
    ).json()) as { hits: { id: string }[] };
    for (const id of [spare[4], spare[6], spare[8]].map((x) => x!.split(',')[0]!))
      assert.ok(!r.hits.some((h) => h.id === id), `${id} deleted`);
  } finally {
    await check.close();
  }
});
