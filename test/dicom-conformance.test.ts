// DICOM conformance: the decoder against pydicom + GDCM (the reference, test/oracle/dicom_oracle.py) on pydicom's own
// test files, the shared archive samples and variants dcmtk, GDCM and pydicom write from real chest X-rays
// (test/oracle/dicom_variants.py): every file the reference decodes as an image decodes here, through a Node Buffer
// as the index builder and the Lambda worker read files; lossless syntaxes give identical 8-bit pixels, lossy ones
// the same picture; what is refused is refused with a typed ImageError. Python is only the oracle.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdir, mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { decodeGrey, ImageError } from '../core/image/index.ts';
import { DATA, REPO } from './helpers/paths.ts';

const PYTHON = ['/usr/bin/python3', 'python3'].find((p) => spawnSync(p, ['-c', 'import pydicom, gdcm, numpy']).status === 0);
const DCMTK = spawnSync('dcmcjpeg', ['--version']).status === 0;
const missing = [!PYTHON && 'python3-pydicom, python3-gdcm, python3-numpy', !DCMTK && 'dcmtk'].filter(Boolean).join(', ');
// In CI a missing reference is a failure (the decoder would go unchecked), elsewhere a visible skip.
if (missing && process.env.CI) throw new Error(`CI=true but ${missing} are not installed: .ci/run must install them`);

/**
 * Files the reference decodes that are refused here on purpose, with the reason. pydicom's README says of this
 * one: "4 of the encoded pixel data bytes replaced with the Sequence Delimiter; almost certainly not a valid JPEG
 * anymore": its SIZ segment declares a 3722445056-pixel-wide image, which GDCM ignores and this decoder refuses.
 */
const REFUSED_ON_PURPOSE: Record<string, string> = {
  'JPEG2000-embedded-sequence-delimiter.dcm': 'corrupt',
};

interface OracleRecord {
  file: string;
  status: 'ok' | 'error' | 'no-pixels';
  syntax?: string | null;
  photometric?: string;
  width?: number;
  height?: number;
  lossless?: boolean;
  out?: string;
  error?: string;
}

function python(args: string[], input?: string): string {
  const r = spawnSync(PYTHON!, args, { input, encoding: 'utf8', maxBuffer: 64 << 20 });
  assert.equal(r.status, 0, `${args[0]} failed: ${r.stderr.slice(-2000)}`);
  return r.stdout;
}

function compare(ours: Uint8Array, ref: Uint8Array): { differing: number; max: number; meanAbs: number; r: number } {
  let differing = 0;
  let max = 0;
  let sum = 0;
  let sa = 0;
  let sb = 0;
  let sab = 0;
  let saa = 0;
  let sbb = 0;
  const n = ref.length;
  for (let i = 0; i < n; i++) {
    const a = ours[i]!;
    const b = ref[i]!;
    const d = Math.abs(a - b);
    if (d) differing++;
    if (d > max) max = d;
    sum += d;
    sa += a;
    sb += b;
    sab += a * b;
    saa += a * a;
    sbb += b * b;
  }
  const va = saa / n - (sa / n) ** 2;
  const vb = sbb / n - (sb / n) ** 2;
  const r = va === 0 && vb === 0 ? 1 : (sab / n - (sa / n) * (sb / n)) / Math.sqrt(va * vb);
  return { differing, max, meanAbs: sum / n, r };
}

test('DICOM conformance with pydicom + GDCM through the builder’s Buffer path', {
  skip: missing ? `${missing} not installed` : false,
}, async (t) => {
  const work = await mkdtemp(join(tmpdir(), 'medclip-dicom-conformance-'));
  t.after(() => rm(work, { recursive: true, force: true }));
  const variantsDir = join(work, 'variants');
  const oracleDir = join(work, 'oracle');
  await Promise.all([variantsDir, oracleDir].map((d) => mkdir(d)));

  const samples = join(DATA, 'samples/dicom');
  const variants = python([join(REPO, 'test/oracle/dicom_variants.py'), variantsDir, samples])
    .trim()
    .split('\n');
  const pydicomTests = python([
    '-c',
    'import os, pydicom; print(os.path.join(os.path.dirname(pydicom.__file__), "data", "test_files"))',
  ]).trim();
  const files = [
    ...(await readdir(pydicomTests)).filter((f) => f.endsWith('.dcm')).map((f) => join(pydicomTests, f)),
    ...(await readdir(samples)).filter((f) => f.endsWith('.dcm')).map((f) => join(samples, f)),
    ...variants,
  ];
  const records = python([join(REPO, 'test/oracle/dicom_oracle.py'), oracleDir], files.join('\n'))
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as OracleRecord);
  assert.equal(records.length, files.length);

  const failures: string[] = [];
  const tally = { images: 0, identical: 0, lossy: 0, refusedOnPurpose: 0, notImages: 0, typedRefusals: 0 };
  for (const rec of records) {
    const name = rec.file.split('/').pop()!;
    const bytes = await readFile(rec.file); // a Buffer: a view into a larger ArrayBuffer, as the builder passes it
    let ours: Awaited<ReturnType<typeof decodeGrey>> | undefined;
    let error: unknown;
    try {
      ours = await decodeGrey(bytes);
    } catch (err) {
      error = err;
    }
    if (error && !(error instanceof ImageError)) {
      failures.push(`${name}: untyped error ${String(error)}`);
      continue;
    }
    if (rec.status !== 'ok') {
      tally.notImages++;
      if (error) tally.typedRefusals++;
      continue;
    }
    tally.images++;
    if (REFUSED_ON_PURPOSE[name]) {
      if (!(error instanceof ImageError) || error.code !== REFUSED_ON_PURPOSE[name])
        failures.push(`${name}: expected a '${REFUSED_ON_PURPOSE[name]}' refusal, got ${ours ? 'an image' : String(error)}`);
      else tally.refusedOnPurpose++;
      continue;
    }
    if (!ours) {
      failures.push(`${name} (${rec.syntax}, ${rec.photometric}): refused: ${(error as ImageError).code}: ${(error as Error).message}`);
      continue;
    }
    if (ours.width !== rec.width || ours.height !== rec.height) {
      failures.push(`${name}: ${ours.width}x${ours.height}, the reference ${rec.width}x${rec.height}`);
      continue;
    }
    const c = compare(ours.data, await readFile(rec.out!));
    if (rec.lossless) {
      if (c.differing) failures.push(`${name} (${rec.syntax}): ${c.differing} pixels differ (max ${c.max})`);
      else tally.identical++;
    } else if (c.r < 0.99 || c.meanAbs > 2) {
      failures.push(
        `${name} (${rec.syntax}, ${rec.photometric}): lossy picture differs (r ${c.r.toFixed(3)}, mean |d| ${c.meanAbs.toFixed(2)})`,
      );
    } else tally.lossy++;
  }
  t.diagnostic(JSON.stringify(tally));
  assert.deepEqual(failures, []);
  // the suite really ran over the files it is meant to cover
  assert.ok(tally.images >= 70, `only ${tally.images} images compared`);
  assert.ok(tally.identical >= 45 && tally.lossy >= 20, JSON.stringify(tally));
});
