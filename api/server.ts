/**
 * Node entry: `medclip serve` (and `npm start`). Loads the model and index once, computes the class prompt
 * embeddings, then serves the Hono app with @hono/node-server. Auth is off only when asked (`--no-auth`, or no
 * key configured and bound to loopback), and the start-up message says so.
 */
import sonicBoom from 'sonic-boom';
import { serve, type ServerType } from '@hono/node-server';
import type { AddressInfo } from 'node:net';
import { IndexBundle } from '../core/bundle/index.ts';
import { MedClipModel } from '../core/model/index.ts';
import { randomUUID } from 'node:crypto';
import type { Duplex } from 'node:stream';
import { LiveSearch } from '../core/search/index.ts';
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
  /** Follow the bundle's new versions (default true); false serves the version live at start until stopped. */
  follow?: boolean;
  /** How often the bundle's CURRENT is polled besides the file watch (default 1000 ms). */
  pollMs?: number;
  log?: (line: string) => void;
  /** Where the start-up line goes (default: the log); a cluster worker sends it to the primary instead. */
  announce?: (line: string) => void;
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
  const logEvent = (e: Record<string, unknown>) => log(JSON.stringify(e));
  // the index follows its bundle's versions: each publish is served within a second or two (core/search/live-search.ts)
  let live: LiveSearch;
  let model: MedClipModel;
  try {
    [model, live] = await Promise.all([
      modelLoad,
      LiveSearch.open({
        location: o.index,
        open: async (dir) =>
          createServices(await modelLoad, await IndexBundle.load(dir, { model: modelLoad }), undefined, {
            imagesRoot: o.imagesRoot,
            viewerUrl: o.viewerUrl,
          }),
        log: logEvent,
      }),
    ]);
  } catch (err) {
    void modelLoad.then((m) => m.close()).catch(() => {});
    throw err;
  }
  if (o.follow !== false) live.follow({ pollMs: o.pollMs });
  const config: ApiConfig = {
    auth: hashes.length ? { mode: 'api-key', hashes } : { mode: 'off' },
    corsOrigins: o.corsOrigins,
    log: logEvent,
  };
  const app = createApp(live, config);
  const server = await new Promise<ServerType>((resolve, reject) => {
    const s = serve({ fetch: app.fetch, port: o.port, hostname: o.host }, () => {
      s.off('error', reject);
      resolve(s);
    });
    s.on('clientError', (err: NodeJS.ErrnoException, socket: Duplex) => answerClientError(err, socket, logEvent));
    // e.g. EADDRINUSE: a clear error for the caller instead of an unhandled 'error' event
    s.once('error', (err: NodeJS.ErrnoException) => {
      void live.close();
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
  const health = live.current().health();
  (o.announce ?? log)(
    `medclip-search on ${url} — model ${model.name}, index v${health.index.version} (${health.index.images} images, ${health.index.reports} reports; ${o.follow === false ? 'pinned' : 'follows new versions'}); ` +
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
      await live.close();
      await model.close();
      access.flush();
    },
  };
}

const CLIENT_ERROR_STATUS: Record<string, [number, string, string]> = {
  HPE_HEADER_OVERFLOW: [431, 'Request Header Fields Too Large', 'the request headers are too large'],
  HPE_CHUNK_EXTENSIONS_OVERFLOW: [413, 'Payload Too Large', 'the chunk extensions are too large'],
  ERR_HTTP_REQUEST_TIMEOUT: [408, 'Request Timeout', 'the request was not received in time'],
};

/**
 * Requests Node's HTTP parser refuses before the app sees them (malformed request lines or headers, oversized
 * headers) answered as problem+json like every other error, with a request id; the log names the parser's code only.
 */
function answerClientError(err: NodeJS.ErrnoException, socket: Duplex, log: (e: Record<string, unknown>) => void): void {
  // the client went away (reset, or closed mid-request): nobody to answer, nothing to page anyone about
  if (err.code === 'ECONNRESET' || err.code === 'HPE_INVALID_EOF_STATE' || !socket.writable) {
    socket.destroy();
    return;
  }
  const [status, reason, detail] = CLIENT_ERROR_STATUS[err.code ?? ''] ?? [400, 'Bad Request', 'the request is not valid HTTP/1.1'];
  const requestId = randomUUID();
  const body = JSON.stringify({
    type: `https://medclip-search.dev/problems/${status === 431 ? 'request-header-fields-too-large' : status === 413 ? 'payload-too-large' : status === 408 ? 'request-timeout' : 'bad-request'}`,
    title: reason,
    status,
    detail,
    requestId,
  });
  log({ requestId, event: 'client-error', status, code: err.code ?? 'unknown' });
  socket.end(
    `HTTP/1.1 ${status} ${reason}\r\ncontent-type: application/problem+json\r\ncontent-length: ${Buffer.byteLength(body)}\r\nx-request-id: ${requestId}\r\nconnection: close\r\n\r\n${body}`,
  );
}
