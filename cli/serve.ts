/** `medclip serve`: the HTTP API and search page on this machine. */
import type { Command } from 'commander';
import { startServer } from '../api/server.ts';
import { CliError } from './errors.ts';
import { readEnv } from '../core/util/index.ts';
import { availableParallelism } from 'node:os';
import { announceListening, isServeWorker, runServeCluster } from '../api/serve-cluster.ts';

export function registerServe(program: Command): void {
  program
    .command('serve')
    .description('serve the HTTP API and the search page')
    .option('--model <dir>', 'model bundle folder', 'models/medclip-tiny')
    .option('--index <dir>', 'index bundle folder', 'indexes/sample')
    .option('--port <n>', 'port (0 = any free port)', '8787')
    .option('--host <addr>', 'address to bind (non-loopback needs API keys)', '127.0.0.1')
    .option('--images-root <dir>', "folder the index's image paths start from (previews when the bundle has none)")
    .option(
      '--viewer-url <template>',
      'link hits with DICOM UIDs to a viewer, e.g. "https://ohif.example/viewer?StudyInstanceUIDs={StudyInstanceUID}" (default: MEDCLIP_VIEWER_URL)',
    )
    .option('--cors <origins>', 'allowed CORS origins, comma-separated, or *')
    .option(
      '--threads <n>',
      'onnxruntime threads per encoder',
      (v: string) => {
        const n = Number(v);
        if (!Number.isInteger(n) || n < 1 || n > 64) throw new CliError(`--threads must be an integer from 1 to 64, got "${v}"`);
        return n;
      },
      1,
    )
    .option(
      '--workers <n>',
      'server processes sharing the port, each with its own model and index copy ("auto": one per core)',
      (v: string) => {
        if (v === 'auto') return availableParallelism();
        const n = Number(v);
        if (!Number.isInteger(n) || n < 1 || n > 64) throw new CliError(`--workers must be an integer from 1 to 64 or auto, got "${v}"`);
        return n;
      },
      1,
    )
    .action(async (opts) => {
      const port = Number(opts.port);
      if (!Number.isInteger(port) || port < 0 || port > 65535) throw new CliError(`--port must be 0-65535, got "${opts.port}"`);
      if (opts.workers > 1 && !isServeWorker()) {
        const code = await runServeCluster(opts.workers, (line) => console.error(line));
        if (code !== 0) throw new CliError('a server process failed to start (its error is above)', code);
        return;
      }
      const env = readEnv();
      let running: Awaited<ReturnType<typeof startServer>>;
      try {
        running = await startServer({
          model: opts.model,
          index: opts.index,
          port,
          host: opts.host,
          apiKeyHashes: env.MEDCLIP_API_KEY_SHA256,
          authMode: env.MEDCLIP_AUTH,
          corsOrigins: opts.cors
            ? String(opts.cors)
                .split(',')
                .map((s: string) => s.trim())
                .filter(Boolean)
            : env.MEDCLIP_CORS_ORIGINS,
          imagesRoot: opts.imagesRoot,
          viewerUrl: viewerTemplate(opts.viewerUrl ?? env.MEDCLIP_VIEWER_URL),
          threads: opts.threads,
          ...(isServeWorker() ? { announce: announceListening } : {}),
        });
      } catch (err) {
        throw new CliError((err as Error).message);
      }
      // Serve until SIGTERM or SIGINT; then finish in-flight requests and exit 0.
      const signal = await new Promise<NodeJS.Signals>((resolve) => {
        process.once('SIGTERM', () => resolve('SIGTERM'));
        process.once('SIGINT', () => resolve('SIGINT'));
      });
      console.error(`medclip: ${signal}: finishing in-flight requests, then stopping`);
      const force = setTimeout(() => {
        console.error('medclip: requests still running after 10 s; stopping anyway');
        process.exit(1);
      }, 10_000);
      force.unref();
      await running.close();
      // a cluster worker's channel to the primary would keep it alive
      if (isServeWorker()) process.disconnect?.();
    });
}

/** A viewer URL template must be an http(s) URL naming at least one UID placeholder. */
function viewerTemplate(template: string | undefined): string | undefined {
  if (template === undefined) return undefined;
  if (!/^https?:\/\//.test(template) || !/\{(StudyInstanceUID|SeriesInstanceUID|SOPInstanceUID)\}/.test(template))
    throw new CliError('--viewer-url must be an http(s) URL with {StudyInstanceUID}, {SeriesInstanceUID} or {SOPInstanceUID} in it');
  return template;
}
