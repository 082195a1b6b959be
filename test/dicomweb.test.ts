// PACS ingestion against a real DICOMweb server (Debian's Orthanc + its DICOMweb plugin, on loopback, Basic Auth on):
// the shared archive samples and text SR reports are stored in test studies; `medclip index --dicomweb` builds a
// bundle (chest CR/DX only, non-image and broken instances listed in errors.jsonl, SR reports linked to their
// study), a second run appends only the new study (the cursor), and search answers carry UIDs and viewer links.
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdir, readFile, readdir, rm } from 'node:fs/promises';
import { createServer as createHttpServer, request as httpRequest, type Server } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { DicomwebError } from '../core/dicom/index.ts';
import { IndexBundle, type ImageMeta } from '../core/bundle/index.ts';
import { MedClipModel } from '../core/model/index.ts';
import { SearchService, type ImageHit, type ReportHit } from '../core/search/index.ts';
import { buildIndex, type BuildSummary } from '../index-builder/build.ts';
import { createApp } from '../api/app.ts';
import { textToReports } from './helpers/api.ts';
import { medclipWith } from './helpers/cli.ts';
import { ORTHANC_USER, orthancMissing, reidentify, startOrthanc, textSr, type Orthanc } from './helpers/orthanc.ts';
import { DATA, liveDir, outputDir, REPO } from './helpers/paths.ts';

const missing = orthancMissing();
// In CI a missing PACS is a failure (ingestion would go untested), elsewhere a visible skip.
if (missing && process.env.CI) throw new Error(`CI=true but ${missing} are not installed: .ci/run must install them`);
const skip = missing ? `${missing} not installed (.ci/run installs them)` : false;

const MODEL = join(REPO, 'models/medclip-tiny');
const SAMPLES = join(DATA, 'samples/dicom');
const ROOT = '1.2.826.0.1.3680043.10.543';
const uid = (...parts: number[]) => [ROOT, ...parts].join('.');
const STUDY = { a: uid(1), b: uid(2), c: uid(3), d: uid(4) };

const dir = outputDir('dicomweb');

/**
 * One test object: an archive sample re-identified into study `study` (1-4 = A-D), series `series`, or a text SR
 * there; its SOP Instance UID is uid(study, series, 1).
 */
interface TestObject {
  name: string;
  study: number;
  series: number;
  date: string;
  sample?: string;
  extra?: Record<string, string>;
  report?: { findings: string; impression: string };
}

const FIRST_RUN: TestObject[] = [
  // study A (2024-01-05): a real CR chest X-ray (JPEG baseline) and its report
  { name: 'a-cr', study: 1, series: 1, date: '20240105', sample: 'siim-cr-jpeg-baseline.dcm' },
  {
    name: 'a-sr',
    study: 1,
    series: 9,
    date: '20240105',
    report: {
      findings: 'There is a large right pleural effusion with adjacent atelectasis. The heart size is normal.',
      impression: 'Large right pleural effusion.',
    },
  },
  // study B (2024-01-10): a DX chest, a series of the same study labelled RIBCAGE (not chest: filtered), a CT
  // (never listed: the search asks for CR and DX), and a normal report
  { name: 'b-dx', study: 2, series: 1, date: '20240110', sample: 'nih-secondary-capture-test1.dcm' },
  { name: 'b-ribcage', study: 2, series: 2, date: '20240110', sample: 'nih-secondary-capture-test4.dcm' },
  { name: 'b-ct', study: 2, series: 3, date: '20240110', sample: 'nih-secondary-capture-test5.dcm' },
  {
    name: 'b-sr',
    study: 2,
    series: 9,
    date: '20240110',
    report: { findings: 'The lungs are clear. No pleural effusion or pneumothorax.', impression: 'No acute cardiopulmonary abnormality.' },
  },
  // study C (2024-01-12): the 1993 ACR-NEMA CR, a non-image object in a CR series, and a broken X-ray (its header
  // claims twice the rows its pixel data holds)
  { name: 'c-acr', study: 3, series: 1, date: '20240112', sample: 'cr-mono1-10bit-no-preamble.dcm' },
  {
    name: 'c-raw',
    study: 3,
    series: 2,
    date: '20240112',
    sample: 'nih-secondary-capture-test3.dcm',
    extra: { '(0008,0016)': '1.2.840.10008.5.1.4.1.1.66', '(0008,0060)': 'CR' },
  },
  { name: 'c-broken', study: 3, series: 3, date: '20240112', sample: 'nih-secondary-capture-test6.dcm', extra: { '(0028,0010)': '2048' } },
];

/** Write a test object's file (dcmodify or dump2dcm) into the test's folder. */
function testObject(o: TestObject): Promise<string> {
  const uids = { study: uid(o.study), series: uid(o.study, o.series), instance: uid(o.study, o.series, 1), date: o.date };
  const file = join(dir, 'files', `${o.name}.dcm`);
  return o.report ? textSr(file, { ...uids, ...o.report }) : reidentify(join(SAMPLES, o.sample!), file, { ...uids, extra: o.extra });
}

const OUT = join(dir, 'bundle');
let orthanc: Orthanc;
let first: BuildSummary;
const stored: Record<string, boolean> = {};

before(async () => {
  if (skip) return;
  await rm(dir, { recursive: true, force: true });
  orthanc = await startOrthanc(join(dir, 'orthanc'));
  const files = join(dir, 'files');
  await mkdir(files, { recursive: true });
  for (const item of FIRST_RUN) stored[item.name] = await orthanc.store(await testObject(item));
  first = await buildIndex({
    model: MODEL,
    out: OUT,
    dicomweb: { url: orthanc.dicomweb, auth: ORTHANC_USER },
    thumbnails: true,
    lock: { waitMs: 1000 },
  });
});

after(async () => {
  await orthanc?.stop();
});

test('a PACS indexes as chest X-rays with UIDs, non-image and broken instances as errors, SR reports linked to their study', {
  skip,
}, async () => {
  assert.ok(Object.values(stored).every(Boolean), `Orthanc refused ${JSON.stringify(stored)}`);
  const bundle = await IndexBundle.load(OUT);
  const images = new Map([...bundle.entries('images')].map((e) => [e.meta.id, e.meta as ImageMeta]));
  const expected = [uid(1, 1, 1), uid(2, 1, 1), uid(3, 1, 1)]; // the ACR-NEMA CR (no preamble, no meta group) included
  assert.deepEqual([...images.keys()].sort(), expected.sort());
  assert.deepEqual(images.get(uid(1, 1, 1))!.dicom, { study: STUDY.a, series: uid(1, 1), instance: uid(1, 1, 1) });
  assert.equal(images.get(uid(1, 1, 1))!.view, 'PA');
  assert.equal(images.get(uid(1, 1, 1))!.reportId, uid(1, 9, 1), "an image is paired with its study's SR report in the bundle");
  assert.equal(images.get(uid(1, 1, 1))!.meta?.studyDate, '20240105');
  // the RIBCAGE series was filtered, the CT never listed
  assert.equal(first.dicomweb!.filtered, 1);
  const errors = (await readFile(join(liveDir(OUT), 'errors.jsonl'), 'utf8'))
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as { id: string; reason: string });
  const reason = (id: string) => errors.find((e) => e.id === id)?.reason ?? '';
  assert.match(reason(uid(3, 2, 1)), /not an image: SOP class 1\.2\.840\.10008\.5\.1\.4\.1\.1\.66/);
  assert.match(reason(uid(3, 3, 1)), /truncated|holds/);
  assert.equal(reason(uid(2, 3, 1)), '', 'the CT is not listed at all');
  // reports: the two SRs, linked to their studies, with coded sections as fields
  assert.equal(bundle.reports.size, 2);
  const a = bundle.report(uid(1, 9, 1))!;
  assert.deepEqual(a.dicom, { study: STUDY.a, series: uid(1, 9), instance: uid(1, 9, 1) });
  assert.match(a.text.findings!, /large right pleural effusion/);
  assert.equal(a.text.impression, 'Large right pleural effusion.');
  assert.equal(a.labels['Pleural Effusion'], 1);
  assert.equal(bundle.report(uid(2, 9, 1))!.labels['Pleural Effusion'], 0);
  // previews were made from the fetched instances; the cursor is the latest study date; no credential is stored
  assert.ok(bundle.thumbnailFile(uid(1, 1, 1)));
  assert.equal(bundle.manifest.dicomweb?.url, orthanc.dicomweb);
  assert.equal(bundle.manifest.dicomweb?.studyDate, '20240112');
  for (const f of await readdir(liveDir(OUT)))
    if (f.endsWith('.json') || f.endsWith('.jsonl'))
      assert.ok(!(await readFile(join(liveDir(OUT), f), 'utf8')).includes(ORTHANC_USER.password), `${f} holds the password`);
});

test('search answers carry DICOM UIDs, viewer links and the study’s report', { skip }, async () => {
  const model = await MedClipModel.load(MODEL);
  try {
    const service = await SearchService.create(model, await IndexBundle.load(OUT, { model }), undefined, {
      viewerUrl: 'https://viewer.example/viewer?StudyInstanceUIDs={StudyInstanceUID}',
    });
    const reports = await service.searchText({ query: 'pleural effusion', target: 'reports', k: 2 });
    const top = reports.hits[0] as ReportHit;
    assert.equal(top.id, uid(1, 9, 1), 'the report that affirms the effusion comes first');
    assert.equal(top.viewerUrl, `https://viewer.example/viewer?StudyInstanceUIDs=${encodeURIComponent(STUDY.a)}`);
    const query = await readFile(join(SAMPLES, 'siim-cr-jpeg-baseline.dcm'));
    const images = await service.searchImage(query, { target: 'images', k: 3 });
    const same = images.hits.find((h) => h.id === uid(1, 1, 1)) as ImageHit;
    assert.ok(same, 'the X-ray itself is found');
    assert.equal(same.studyReport, uid(1, 9, 1), "the hit links to its study's report");
    assert.deepEqual(same.dicom, { study: STUDY.a, series: uid(1, 1), instance: uid(1, 1, 1) });
    assert.match(same.viewerUrl!, /^https:\/\/viewer\.example\/viewer\?StudyInstanceUIDs=1\.2\.826/);
    // over HTTP: the same fields, and the study's report by its id
    const app = createApp(service, { auth: { mode: 'off' } });
    const http = await textToReports<{ hits: ReportHit[] }>(app, 'pleural effusion', 1);
    assert.deepEqual(http.hits[0]!.dicom, top.dicom);
    assert.equal(http.hits[0]!.viewerUrl, top.viewerUrl);
    const report = (await (await app.request(`/v1/reports/${encodeURIComponent(uid(1, 9, 1))}`)).json()) as { dicom: unknown };
    assert.deepEqual(report.dicom, top.dicom);
  } finally {
    await model.close();
  }
});

test('a nightly --append run fetches only the new study (the cursor), through the CLI with the password from the environment', {
  skip,
}, async () => {
  // study D (2024-02-01), stored after the first run: a DX and its report
  const later: TestObject[] = [
    { name: 'd-dx', study: 4, series: 1, date: '20240201', sample: 'nih-secondary-capture-test2.dcm' },
    {
      name: 'd-sr',
      study: 4,
      series: 9,
      date: '20240201',
      report: { findings: 'Small left apical pneumothorax.', impression: 'Left pneumothorax.' },
    },
  ];
  for (const item of later) assert.ok(await orthanc.store(await testObject(item)), item.name);
  const before = await IndexBundle.load(OUT);
  const r = await medclipWith(
    { env: { MEDCLIP_DICOMWEB_PASSWORD: ORTHANC_USER.password }, timeoutMs: 120_000 },
    'index',
    '--model',
    MODEL,
    '--out',
    OUT,
    '--dicomweb',
    orthanc.dicomweb,
    '--dicomweb-user',
    ORTHANC_USER.user,
    '--append',
    '--thumbnails',
    '--json',
  );
  assert.equal(r.code, 0, r.stderr);
  const summary = JSON.parse(r.stdout) as BuildSummary;
  // only studies from the cursor's date on were listed: study C's instances (already indexed or failed) and D's;
  // fetched: D's X-ray and D's report
  assert.equal(summary.dicomweb!.fetched, 2);
  assert.equal(summary.dicomweb!.listed, summary.dicomweb!.alreadyIndexed + 1);
  assert.equal(summary.images.indexed, before.count('images') + 1);
  const after = await IndexBundle.load(OUT);
  assert.equal(after.manifest.version, before.manifest.version + 1);
  assert.equal(after.reports.size, 3);
  assert.equal(after.report(uid(4, 9, 1))!.labels.Pneumothorax, 1);
  assert.equal(after.manifest.dicomweb?.studyDate, '20240201');
  assert.ok(!r.stderr.includes(ORTHANC_USER.password) && !r.stdout.includes(ORTHANC_USER.password));
});

test('a build killed after fetching resumes with --resume from the fetched instances, not the server', { skip }, async () => {
  const out = join(dir, 'resumed');
  const source = { url: orthanc.dicomweb, auth: ORTHANC_USER, studies: [STUDY.a, STUDY.b] };
  const dying = {
    embedImageFiles: async () => {
      throw new Error('killed while embedding');
    },
    embedTexts: async () => [],
    close: async () => {},
  };
  await assert.rejects(buildIndex({ model: MODEL, out, dicomweb: source, embedder: dying }), /killed while embedding/);
  // the RIBCAGE series is left out from the server's search answer, before any fetch
  assert.deepEqual((await readdir(join(`${out}.partial`, 'dicomweb'))).sort(), [`${uid(1, 1, 1)}.dcm`, `${uid(2, 1, 1)}.dcm`].sort());
  const resumed = await buildIndex({ model: MODEL, out, dicomweb: source, resume: true });
  assert.equal(resumed.dicomweb!.fetched, 2, 'only the two SR reports come from the server');
  assert.equal(resumed.dicomweb!.cached, 2, 'the two X-rays come from the partial build');
  assert.equal(resumed.images.indexed, 2);
  assert.equal(resumed.reports.reports, 2);
});

/**
 * A stand-in for the PACS's network path: forwards to Orthanc, and after `stopAfter` instance retrievals have been
 * answered it goes away (listener closed, connections cut), as a PACS restarted mid-ingestion does; `start` brings it
 * back on the same port.
 */
async function flakyProxy(target: string, stopAfter: number) {
  const upstream = new URL(target);
  const sockets = new Set<Socket>();
  let served = 0;
  let server: Server | undefined;
  let port = 0;
  const start = () =>
    new Promise<void>((resolve) => {
      served = 0;
      server = createHttpServer((req, res) => {
        const forward = httpRequest(
          { host: upstream.hostname, port: upstream.port, path: req.url, method: req.method, headers: req.headers },
          (up) => {
            res.writeHead(up.statusCode ?? 502, up.headers);
            up.pipe(res);
            up.on('end', () => {
              if (/\/instances\/[0-9.]+$/.test(req.url ?? '') && ++served === stopAfter && stopAfter > 0) stop();
            });
          },
        );
        forward.on('error', () => res.destroy());
        req.pipe(forward);
      });
      server.on('connection', (s) => {
        sockets.add(s);
        s.on('close', () => sockets.delete(s));
      });
      server.listen(port, '127.0.0.1', () => {
        port = (server!.address() as AddressInfo).port;
        resolve();
      });
    });
  const stop = () => {
    server?.close();
    for (const s of sockets) s.destroy();
  };
  await start();
  return { url: () => `http://127.0.0.1:${port}${upstream.pathname}`, start, stop, disarm: () => (stopAfter = 0) };
}

test('a PACS that goes away mid-ingestion: exit 75, and the same command again finishes the work', { skip }, async () => {
  const out = join(dir, 'outage');
  const proxy = await flakyProxy(orthanc.dicomweb, 1);
  const env = { MEDCLIP_DICOMWEB_PASSWORD: ORTHANC_USER.password };
  const args = ['index', '--model', MODEL, '--out', out, '--dicomweb', proxy.url(), '--dicomweb-user', ORTHANC_USER.user];
  args.push('--study', STUDY.a, STUDY.b, STUDY.c);
  try {
    const down = await medclipWith({ env, timeoutMs: 120_000 }, ...args);
    assert.equal(down.code, 75, down.stderr);
    assert.match(down.stderr.trim().split('\n').pop()!, /^medclip: DICOMweb .* unreachable/);
    assert.ok(!existsSync(join(out, 'CURRENT')), 'nothing is published by the failed run');
    proxy.disarm();
    await proxy.start(); // the PACS is back
    const again = await medclipWith({ env, timeoutMs: 120_000 }, ...args);
    assert.equal(again.code, 0, again.stderr);
    assert.match(again.stderr, /resuming an interrupted build/);
  } finally {
    proxy.stop();
  }
  // the same as a run that never saw the outage: every chest X-ray and report, and no outage recorded as a bad item
  const bundle = await IndexBundle.load(out);
  assert.deepEqual([...bundle.entries('images')].map((e) => e.meta.id).sort(), [uid(1, 1, 1), uid(2, 1, 1), uid(3, 1, 1)].sort());
  assert.equal(bundle.reports.size, 2);
  const errors = await readFile(join(liveDir(out), 'errors.jsonl'), 'utf8');
  assert.ok(!/unreachable|HTTP 5/.test(errors), errors);
});

test('wrong credentials and an unreachable server are one clear error each, and the bundle stays as it was', { skip }, async () => {
  const version = (await IndexBundle.load(OUT)).manifest.version;
  await assert.rejects(
    buildIndex({ model: MODEL, out: OUT, append: true, dicomweb: { url: orthanc.dicomweb, auth: { user: 'medclip', password: 'wrong' } } }),
    (err: Error) =>
      err instanceof DicomwebError && /refused the credentials \(HTTP 401\)/.test(err.message) && !err.message.includes('wrong'),
  );
  const r = await medclipWith({}, 'index', '--model', MODEL, '--out', join(dir, 'other'), '--dicomweb', 'http://127.0.0.1:9/dicom-web');
  assert.equal(r.code, 75, r.stderr);
  assert.match(r.stderr.trim(), /^medclip: DICOMweb search \/series: http:\/\/127\.0\.0\.1:9\/dicom-web unreachable/);
  const u = await medclipWith(
    {},
    'index',
    '--model',
    MODEL,
    '--out',
    join(dir, 'other'),
    '--dicomweb',
    orthanc.dicomweb,
    '--dicomweb-user',
    'x',
  );
  assert.equal(u.code, 1);
  assert.match(u.stderr, /MEDCLIP_DICOMWEB_PASSWORD/);
  const bad = await medclipWith(
    {},
    'index',
    '--model',
    MODEL,
    '--out',
    join(dir, 'other'),
    '--dicomweb',
    orthanc.dicomweb,
    '--study',
    '1.2/../x',
  );
  assert.equal(bad.code, 1);
  assert.match(bad.stderr.trim(), /^medclip: --study: "1\.2\/\.\.\/x" is not a Study Instance UID/);
  assert.equal((await IndexBundle.load(OUT)).manifest.version, version);
  // the failed run's partial build is kept for --resume, and says so
  await rm(`${OUT}.partial`, { recursive: true, force: true });
});
