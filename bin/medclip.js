#!/usr/bin/env node
// Entry of the `medclip` CLI: registers the TypeScript loader, then runs cli/main.ts.
import { register } from 'tsx/esm/api';

register();
const { main } = await import('../cli/main.ts');
process.exitCode = await main(process.argv);
