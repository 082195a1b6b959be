/**
 * Run as its own process by test/dicom-memory.test.ts: decodes the files named on the command line (limit-size and
 * adversarial inputs) one after another and prints { outcomes, maxRssMb }: each outcome is 'ok', an ImageError code,
 * or 'untyped: ...'; maxRssMb is the process's peak resident memory.
 */
import { readFile } from 'node:fs/promises';
import { basename } from 'node:path';
import { decodeGrey, ImageError } from '../../core/image/index.ts';

const outcomes: Record<string, string> = {};
for (const file of process.argv.slice(2)) {
  try {
    await decodeGrey(await readFile(file));
    outcomes[basename(file)] = 'ok';
  } catch (err) {
    outcomes[basename(file)] = err instanceof ImageError ? err.code : `untyped: ${String(err)}`;
  }
}
console.log(JSON.stringify({ outcomes, maxRssMb: Math.round(process.resourceUsage().maxRSS / 1024) }));
