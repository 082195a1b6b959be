#!/usr/bin/env node
// Entry of the `medclip` CLI: registers the TypeScript loader, then runs cli/main.ts.
import { register } from 'tsx/esm/api';

register();
// `medclip ... | head`: a reader that closes the pipe early ends the command quietly, not with a stack trace.
process.stdout.on('error', (err) => {
  if (err.code === 'EPIPE') process.exit(process.exitCode ?? 0);
  throw err;
});
const { main } = await import('../cli/main.ts');
process.exitCode = await main(process.argv);
