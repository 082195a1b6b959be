import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { chmod, cp, readFile, rm, writeFile } from 'node:fs/promises';
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

test('usage errors are one line: an unknown option is named before anything else; a bad image file is named', async () => {
  const bogus = await medclip('index', '--bogus');
  assert.equal(bogus.code, 1);
  assert.equal(bogus.stderr.trim(), "medclip: unknown option '--bogus' (see medclip index --help)");
  const missing = await medclip('index', '--model', 'models/medclip-tiny');
  assert.equal(missing.code, 1);
  assert.equal(missing.stderr.trim().split('\n').length, 1, missing.stderr);
  assert.match(missing.stderr, /required option '--out <dir>' not specified/);
  const dir = outputDir('cli');
  const text = join(dir, 'not-an-image.txt');
  await writeFile(text, 'hello');
  for (const args of [
    ['classify', '--image', text],
    ['search', '--image', text],
  ]) {
    const r = await medclip(...args);
    assert.equal(r.code, 1, r.stderr);
    assert.equal(r.stderr.trim(), `medclip: ${text}: not a PNG, JPEG or DICOM file`);
  }
});

test('search --image defaults to reports, as the API does; --text to images', async () => {
  const image = await medclip('search', '--image', join(REPO, 'samples/corpus/images/nih/00001303_001.png'), '--k', '1', '--json');
  assert.equal(image.code, 0, image.stderr);
  assert.ok('sentence' in JSON.parse(image.stdout), 'a report hit');
  const text = await medclip('search', '--text', 'pneumonia', '--k', '1', '--json');
  assert.equal(text.code, 0, text.stderr);
  assert.ok('thumbnail' in JSON.parse(text.stdout), 'an image hit');
});

test('a bundle folder that cannot be read says so and names the path (not "no manifest.json")', async () => {
  const dir = outputDir('cli');
  const locked = join(dir, 'locked');
  await rm(locked, { recursive: true, force: true });
  await cp(join(REPO, 'models/medclip-tiny'), join(locked, 'model'), { recursive: true });
  await cp(join(REPO, 'indexes/sample'), join(locked, 'index'), { recursive: true });
  await chmod(join(locked, 'model'), 0o000);
  await chmod(join(locked, 'index'), 0o000);
  // root reads everything: run as nobody there (setpriv, util-linux); anyone else is refused as they are (onnxruntime
  // may warn first that nobody's home cannot hold its telemetry id: the error is the last line)
  const asUser = (args: string[]) =>
    process.getuid?.() === 0
      ? runAs(['setpriv', '--reuid=65534', '--regid=65534', '--clear-groups', process.execPath, join(REPO, 'bin/medclip.js'), ...args])
      : medclip(...args);
  try {
    const model = await asUser([
      'classify',
      '--model',
      join(locked, 'model'),
      '--image',
      join(REPO, 'samples/corpus/images/nih/00001303_001.png'),
    ]);
    assert.equal(model.code, 1, model.stderr);
    assert.equal(
      model.stderr.trim().split('\n').pop(),
      `medclip: ${join(locked, 'model', 'manifest.json')}: cannot read (permission denied)`,
    );
    const index = await asUser([
      'search',
      '--model',
      join(REPO, 'models/medclip-tiny'),
      '--index',
      join(locked, 'index'),
      '--text',
      'pneumonia',
    ]);
    assert.equal(index.code, 1, index.stderr);
    assert.equal(index.stderr.trim().split('\n').pop(), `medclip: ${join(locked, 'index', 'CURRENT')}: cannot read (permission denied)`);
  } finally {
    await chmod(join(locked, 'model'), 0o755);
    await chmod(join(locked, 'index'), 0o755);
  }
});

function runAs(argv: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) =>
    execFile(argv[0]!, argv.slice(1), { cwd: '/' }, (err, stdout, stderr) =>
      resolve({ code: err ? ((err as { code?: number }).code ?? null) : 0, stdout, stderr }),
    ),
  );
}
