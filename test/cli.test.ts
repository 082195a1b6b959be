import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { IU_REPORTS, outputDir, REPO } from './helpers/paths.ts';
import { medclip } from './helpers/cli.ts';

test('medclip --help and label --help describe the commands', async () => {
  const top = await medclip('--help');
  assert.equal(top.code, 0);
  assert.match(top.stdout, /label/);
  const label = await medclip('label', '--help');
  assert.equal(label.code, 0);
  assert.match(label.stdout, /--reports <file>/);
  assert.match(label.stdout, /--eval/);
});

test('label --eval --json on the IU val split prints micro-F1 and per-class scores', async () => {
  const r = await medclip('label', '--reports', IU_REPORTS, '--split', 'val', '--eval', '--json');
  assert.equal(r.code, 0, r.stderr);
  const out = JSON.parse(r.stdout) as { microF1: number; perClass: Record<string, { f1: number; support: number }> };
  assert.ok(out.microF1 >= 0.8);
  assert.equal(Object.keys(out.perClass).length, 14);
  const table = await medclip('label', '--reports', IU_REPORTS, '--split', 'val', '--eval');
  assert.match(table.stdout, /micro \(positives\)/);
  assert.match(table.stdout, /Pleural Effusion/);
});

test('label --out writes one JSON line per sentence; bad input exits non-zero naming the file, not the text', async () => {
  const dir = outputDir('cli');
  const reports = join(dir, 'reports.csv');
  await writeFile(reports, 'id,findings,impression\nr1,"Mild cardiomegaly. No effusion.",Stable.\nr2,,"No acute disease."\n');
  const out = join(dir, 'sentences.jsonl');
  const ok = await medclip('label', '--reports', reports, '--out', out);
  assert.equal(ok.code, 0, ok.stderr);
  const lines = (await readFile(out, 'utf8'))
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as { reportId: string; index: number; labels: Record<string, number> });
  assert.deepEqual(
    lines.map((l) => [l.reportId, l.index]),
    [
      ['r1', 0],
      ['r1', 1],
      ['r1', 2],
      ['r2', 0],
    ],
  );
  assert.equal(lines[0]!.labels.Cardiomegaly, 1);
  assert.equal(lines[1]!.labels['Pleural Effusion'], 0);

  const missing = await medclip('label', '--reports', join(dir, 'nope.csv'));
  assert.equal(missing.code, 1);
  assert.match(missing.stderr, /nope\.csv: file not found/);

  const dup = join(dir, 'dup.csv');
  await writeFile(dup, 'id,findings\nr1,Secret text one.\nr1,Secret text two.\n');
  const d = await medclip('label', '--reports', dup);
  assert.equal(d.code, 1);
  assert.match(d.stderr, /duplicate report id "r1"/);
  assert.doesNotMatch(d.stderr, /Secret/);

  const bad = join(dir, 'bad.csv');
  await writeFile(bad, 'id,findings\nr1,"Unclosed quote with private text\n');
  const b = await medclip('label', '--reports', bad);
  assert.equal(b.code, 1);
  assert.match(b.stderr, /malformed CSV/);
  assert.doesNotMatch(b.stderr, /private/);

  const custom = join(dir, 'custom.csv');
  await writeFile(custom, 'study,notes\ns1,"Small left pleural effusion."\n');
  const c = await medclip('label', '--reports', custom, '--id-column', 'study', '--text-columns', 'notes');
  assert.equal(c.code, 0, c.stderr);
  assert.equal((JSON.parse(c.stdout.trim()) as { reportId: string; labels: Record<string, number> }).labels['Pleural Effusion'], 1);

  const noText = join(dir, 'notext.csv');
  await writeFile(noText, 'id,notes\nr1,x\n');
  assert.match((await medclip('label', '--reports', noText)).stderr, /none of the text columns/);
  assert.equal((await medclip('label', '--reports', reports, '--eval')).code, 1);
  assert.equal((await medclip('label')).code, 1);
});

test('medclip search: shipped model and index by default, a table or JSON lines, report hits with their sentence; --version', async () => {
  const table = await medclip('search', '--text', 'small left pleural effusion', '--target', 'reports', '--k', '3');
  assert.equal(table.code, 0, table.stderr);
  const lines = table.stdout.trim().split('\n');
  assert.match(lines[0]!, /^score\s+relevance\s+report\s+matched sentence\s+report findings$/);
  assert.equal(lines.length, 4);
  const json = await medclip('search', '--text', 'small left pleural effusion', '--target', 'reports', '--k', '3', '--json');
  const hits = json.stdout
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as { id: string; sentence: { text: string }; report: Record<string, string> });
  assert.equal(new Set(hits.map((h) => h.id)).size, 3, 'the API hit shape: report id, sentence, report');
  for (const h of hits)
    assert.ok(h.sentence.text && Object.values(h.report).join(' ').includes(h.sentence.text), 'the sentence is in its report');
  const missing = await medclip('search', '--image', 'nope.png');
  assert.equal(missing.code, 1);
  assert.equal(missing.stderr.trim(), 'medclip: nope.png: file not found');
  const v = await medclip('--version');
  assert.equal(v.stdout.trim(), JSON.parse(await readFile(join(REPO, 'package.json'), 'utf8')).version);
});

test('index progress: no rate before 2 s of work, no ETA before the input is counted', async () => {
  const { rateAndEta } = await import('../cli/index.ts');
  assert.deepEqual(rateAndEta(32, 0.001, 100), { speed: 'measuring rate', eta: 'ETA after the rate' });
  assert.deepEqual(rateAndEta(200, 4, undefined), { speed: '50.0 items/s', eta: 'ETA once the input is counted' });
  assert.deepEqual(rateAndEta(200, 4, 4000), { speed: '50.0 items/s', eta: 'ETA 1m20s' });
  assert.equal(rateAndEta(10, 10, 100_000).eta, 'ETA 27h46m');
});
