/**
 * Run as its own process by test/dicom-memory.test.ts: decodes the files named on the command line (limit-size and
 * adversarial inputs) one after another and prints { outcomes, maxRssMb }: each outcome is 'ok', an ImageError code,
 * or 'untyped: ...'; maxRssMb is the process's peak resident memory.
 */
import { readFileSync } from 'node:fs';
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
// VmHWM, not getrusage's maxRSS: that one starts a child at its parent's size at the fork
const hwm = /VmHWM:\s+(\d+) kB/.exec(readFileSync('/proc/self/status', 'utf8'))?.[1];
console.log(JSON.stringify({ outcomes, maxRssMb: Math.round((hwm ? Number(hwm) : process.resourceUsage().maxRSS) / 1024) }));
