#!/usr/bin/env node
// Entry of the `medclip` CLI: the compiled JavaScript in dist/ (`npm run build`; `npm ci` builds it). No
// TypeScript loader at run time.
import { existsSync } from 'node:fs';

const entry = new URL('../dist/cli.mjs', import.meta.url);
if (!existsSync(entry)) {
  console.error('medclip: dist/cli.mjs is missing; build it with `npm run build` (npm ci does)');
  process.exit(1);
}
// `medclip ... | head`: a reader that closes the pipe early ends the command quietly, not with a stack trace.
process.stdout.on('error', (err) => {
  if (err.code === 'EPIPE') process.exit(process.exitCode ?? 0);
  throw err;
});
const { main } = await import(entry.href);
process.exitCode = await main(process.argv);
