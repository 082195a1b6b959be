/**
 * A real PACS for the DICOMweb tests: Debian's Orthanc with its DICOMweb plugin on loopback (a free port, a
 * throw-away storage folder, Basic Auth on), and DICOM test objects made with dcmtk from the shared archive samples:
 * images re-identified into test studies (dcmodify) and text SR reports (dump2dcm).
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { copyFile, mkdir, readFile, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { join } from 'node:path';

export const ORTHANC_PLUGIN = '/usr/share/orthanc/plugins/libOrthancDicomWeb.so';
export const ORTHANC_USER = { user: 'medclip', password: 'orthanc-test-secret' };

/** What is missing to run Orthanc tests here ('' when nothing). */
export function orthancMissing(): string {
  const missing: string[] = [];
  if (spawnSync('Orthanc', ['--version']).status !== 0) missing.push('orthanc');
  if (!existsSync(ORTHANC_PLUGIN)) missing.push('orthanc-dicomweb');
  if (spawnSync('dcmodify', ['--version']).status !== 0) missing.push('dcmtk');
  return missing.join(', ');
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

export interface Orthanc {
  /** The DICOMweb root, e.g. http://127.0.0.1:PORT/dicom-web */
  dicomweb: string;
  /** Store a DICOM file through Orthanc's REST API; returns false when Orthanc refuses it. */
  store(file: string): Promise<boolean>;
  stop(): Promise<void>;
}

export async function startOrthanc(dir: string): Promise<Orthanc> {
  await mkdir(join(dir, 'db'), { recursive: true });
  const port = await freePort();
  const config = {
    Name: 'medclip-test',
    StorageDirectory: join(dir, 'db'),
    IndexDirectory: join(dir, 'db'),
    HttpPort: port,
    DicomServerEnabled: false,
    RemoteAccessAllowed: false,
    AuthenticationEnabled: true,
    RegisteredUsers: { [ORTHANC_USER.user]: ORTHANC_USER.password },
    Plugins: [ORTHANC_PLUGIN],
    DicomWeb: { Enable: true, Root: '/dicom-web/' },
    OrthancExplorerEnabled: false,
    HttpCompressionEnabled: false,
  };
  await writeFile(join(dir, 'orthanc.json'), JSON.stringify(config));
  const proc: ChildProcess = spawn('Orthanc', [join(dir, 'orthanc.json')], { stdio: ['ignore', 'ignore', 'pipe'] });
  let log = '';
  proc.stderr!.on('data', (d: Buffer) => {
    log = (log + d.toString()).slice(-4000);
  });
  const base = `http://127.0.0.1:${port}`;
  const auth = `Basic ${Buffer.from(`${ORTHANC_USER.user}:${ORTHANC_USER.password}`).toString('base64')}`;
  const deadline = Date.now() + 30_000;
  for (;;) {
    if (proc.exitCode !== null) throw new Error(`Orthanc exited (${proc.exitCode}): ${log}`);
    const up = await fetch(`${base}/system`, { headers: { authorization: auth } }).then(
      (r) => r.ok,
      () => false,
    );
    if (up) break;
    if (Date.now() > deadline) {
      proc.kill('SIGKILL');
      throw new Error(`Orthanc did not start in 30 s: ${log}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  return {
    dicomweb: `${base}/dicom-web`,
    async store(file) {
      const r = await fetch(`${base}/instances`, {
        method: 'POST',
        headers: { authorization: auth, 'content-type': 'application/dicom' },
        body: await readFile(file),
      });
      await r.body?.cancel();
      return r.ok;
    },
    stop: () =>
      new Promise<void>((resolve) => {
        if (proc.exitCode !== null) return resolve();
        proc.once('exit', () => resolve());
        proc.kill('SIGTERM');
        setTimeout(() => proc.kill('SIGKILL'), 10_000).unref();
      }),
  };
}

/** Copy a DICOM file with new UIDs and header values (dcmodify; `-m` needs the element to exist, `-i` inserts). */
export async function reidentify(
  from: string,
  to: string,
  set: { study: string; series: string; instance: string; date?: string; extra?: Record<string, string> },
): Promise<string> {
  await copyFile(from, to);
  const values: Record<string, string> = {
    '(0020,000d)': set.study,
    '(0020,000e)': set.series,
    '(0008,0018)': set.instance,
    ...(set.date ? { '(0008,0020)': set.date } : {}),
    ...set.extra,
  };
  const args = ['-nb', '-ie', ...Object.entries(values).flatMap(([tag, v]) => ['-i', `${tag}=${v}`]), to];
  const r = spawnSync('dcmodify', args, { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`dcmodify failed: ${r.stderr}`);
  return to;
}

/** A Basic Text SR with coded Findings and Impression sections (dump2dcm). */
export async function textSr(
  to: string,
  o: { study: string; series: string; instance: string; date: string; findings: string; impression: string },
): Promise<string> {
  const code = (value: string, scheme: string, meaning: string) => [
    '(0040,a043) SQ (Sequence with undefined length)',
    '(fffe,e000) na (Item with undefined length)',
    `(0008,0100) SH [${value}]`,
    `(0008,0102) SH [${scheme}]`,
    `(0008,0104) LO [${meaning}]`,
    '(fffe,e00d) na (ItemDelimitationItem)',
    '(fffe,e0dd) na (SequenceDelimitationItem)',
  ];
  const section = (container: [string, string], item: [string, string], text: string) => [
    '(fffe,e000) na (Item with undefined length)',
    '(0040,a010) CS [CONTAINS]',
    '(0040,a040) CS [CONTAINER]',
    ...code(container[0], 'DCM', container[1]),
    '(0040,a050) CS [SEPARATE]',
    '(0040,a730) SQ (Sequence with undefined length)',
    '(fffe,e000) na (Item with undefined length)',
    '(0040,a010) CS [CONTAINS]',
    '(0040,a040) CS [TEXT]',
    ...code(item[0], 'DCM', item[1]),
    `(0040,a160) UT [${text}]`,
    '(fffe,e00d) na (ItemDelimitationItem)',
    '(fffe,e0dd) na (SequenceDelimitationItem)',
    '(fffe,e00d) na (ItemDelimitationItem)',
  ];
  const dump = [
    '(0008,0005) CS [ISO_IR 192]',
    '(0008,0016) UI =BasicTextSRStorage',
    `(0008,0018) UI [${o.instance}]`,
    `(0008,0020) DA [${o.date}]`,
    `(0008,0023) DA [${o.date}]`,
    '(0008,0033) TM [120000]',
    '(0008,0060) CS [SR]',
    '(0010,0020) LO [TEST]',
    `(0020,000d) UI [${o.study}]`,
    `(0020,000e) UI [${o.series}]`,
    '(0020,0011) IS [99]',
    '(0020,0013) IS [1]',
    '(0040,a040) CS [CONTAINER]',
    ...code('18748-4', 'LN', 'Diagnostic Imaging Report'),
    '(0040,a050) CS [SEPARATE]',
    '(0040,a491) CS [COMPLETE]',
    '(0040,a493) CS [UNVERIFIED]',
    '(0040,a730) SQ (Sequence with undefined length)',
    ...section(['121070', 'Findings'], ['121071', 'Finding'], o.findings),
    ...section(['121072', 'Impressions'], ['121073', 'Impression'], o.impression),
    '(fffe,e0dd) na (SequenceDelimitationItem)',
  ].join('\n');
  await writeFile(`${to}.dump`, dump);
  const r = spawnSync('dump2dcm', ['+te', `${to}.dump`, to], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`dump2dcm failed: ${r.stderr}`);
  return to;
}
