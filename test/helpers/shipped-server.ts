/** `npm start`'s server in this process: the shipped model and sample index on a free loopback port, no logs. */
import { join } from 'node:path';
import { startServer } from '../../api/server.ts';
import { REPO } from './paths.ts';

export function startShippedServer(): ReturnType<typeof startServer> {
  return startServer({
    model: join(REPO, 'models/medclip-tiny'),
    index: join(REPO, 'indexes/sample'),
    port: 0,
    host: '127.0.0.1',
    log: () => {},
  });
}
