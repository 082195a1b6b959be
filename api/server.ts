/**
 * Node entry: `medclip serve` (and `npm start`). Loads the model and index once, computes the class prompt
 * embeddings, then serves the Hono app with @hono/node-server. Auth is off only when asked (`--no-auth`, or no
 * key configured and bound to loopback), and the start-up message says so.
 */
import sonicBoom from 'sonic-boom';
import { serve, type ServerType } from '@hono/node-server';
import type { AddressInfo } from 'node:net';
import { IndexBundle } from '../core/index.ts';
import { MedClipModel } from '../core/model.ts';
import { createApp, createServices, type ApiConfig } from './app.ts';
import { parseApiKeyHashes } from './auth.ts';

export interface ServeOptions {
  model: string;
  index: string;
  port: number;
  host: string;
  /** sha256 hex digests of the accepted API keys; empty = auth off (allowed on loopback only). */
  apiKeyHashes?: string;
  /** `api-key` insists on hashes (refuses to start without); default: keys if any are given. */
  authMode?: string;
  corsOrigins?: string[];
  imagesRoot?: string;
  /** Viewer URL template for hits with DICOM UIDs (see SearchServiceOptions.viewerUrl). */
  viewerUrl?: string;
  threads?: number;
  log?: (line: string) => void;
}

const LOOPBACK = new Set(['127.0.0.1', '::1', 'localhost']);

/**
 * The access log on stderr without a write per request in the request path: sonic-boom writes asynchronously and
 * coalesces the lines that arrive while a write is in flight (under load, one write for many requests); flushed on
 * close and at exit.
 */
function stderrLog(): { log: (line: string) => void; flush: () => void } {
  // a CommonJS package: its class is also a property of the module object, which TypeScript and Node agree on
  const out = new sonicBoom.SonicBoom({ fd: 2, sync: false });
  const flush = () => {
    try {
      out.flushSync();
    } catch {
      // nothing buffered, or stderr gone
    }
  };
  process.once('exit', flush);
  return {
    log: (line) => out.write(`${line}\n`),
    // on close: what is buffered goes out, and the exit hook goes with the server
    flush: () => {
      flush();
      process.off('exit', flush);
    },
  };
}

export async function startServer(o: ServeOptions): Promise<{ server: ServerType; url: string; close: () => Promise<void> }> {
  const access = o.log ? { log: o.log, flush: () => {} } : stderrLog();
  const log = access.log;
  const hashes = parseApiKeyHashes(o.apiKeyHashes);
  if (o.authMode?.trim().toLowerCase() === 'api-key' && hashes.length === 0)
    throw new Error('MEDCLIP_AUTH is api-key but MEDCLIP_API_KEY_SHA256 holds no key hash: refusing to serve an open API');
  if (hashes.length === 0 && !LOOPBACK.has(o.host))
    throw new Error(`refusing to serve without API keys on ${o.host}: set MEDCLIP_API_KEY_SHA256, or bind to 127.0.0.1`);
  const modelLoad = MedClipModel.load(o.model, { threads: o.threads ?? 1 });
  const [model, index] = await Promise.all([modelLoad, IndexBundle.load(o.index, { model: modelLoad })]);
  const config: ApiConfig = {
    auth: hashes.length ? { mode: 'api-key', hashes } : { mode: 'off' },
    corsOrigins: o.corsOrigins,
    log: (e) => log(JSON.stringify(e)),
  };
  const app = createApp(await createServices(model, index, undefined, { imagesRoot: o.imagesRoot, viewerUrl: o.viewerUrl }), config);
  const server = await new Promise<ServerType>((resolve, reject) => {
    const s = serve({ fetch: app.fetch, port: o.port, hostname: o.host }, () => {
      s.off('error', reject);
      resolve(s);
    });
    // e.g. EADDRINUSE: a clear error for the caller instead of an unhandled 'error' event
    s.once('error', (err: NodeJS.ErrnoException) => {
      void model.close();
      reject(
        new Error(
          err.code === 'EADDRINUSE'
            ? `port ${o.port} on ${o.host} is already in use (choose another with --port)`
            : err.code === 'EACCES'
              ? `no permission to listen on ${o.host}:${o.port}`
              : `cannot listen on ${o.host}:${o.port}: ${err.code ?? err.message}`,
        ),
      );
    });
  });
  const { port } = server.address() as AddressInfo;
  const url = `http://${o.host.includes(':') ? `[${o.host}]` : o.host}:${port}`;
  log(
    `medclip-search on ${url} — model ${model.name}, index v${index.manifest.version} (${index.count('images')} images, ${index.reports.size} reports); ` +
      (hashes.length ? `API keys required (${hashes.length} configured)` : 'auth OFF (local use only, bound to loopback)'),
  );
  return {
    server,
    url,
    /** Stop accepting connections, let in-flight requests finish, then release the model. */
    close: async () => {
      const closed = new Promise<void>((r) => server.close(() => r()));
      // idle keep-alive connections would otherwise hold the server open; busy ones close after their response
      (server as import('node:http').Server).closeIdleConnections?.();
      await closed;
      await model.close();
      access.flush();
    },
  };
}
