/**
 * A local endpoint speaking the Lambda Invoke API (POST /2015-03-31/functions/NAME/invocations), running real
 * handlers in this process. Point the AWS SDK at it with `endpoint` / AWS_ENDPOINT_URL_LAMBDA. A handler that
 * throws is answered like Lambda does: status 200, X-Amz-Function-Error: Unhandled, { errorType, errorMessage }.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

export type Handler = (event: unknown) => Promise<unknown>;

export interface LocalLambda {
  url: string;
  invocations: Map<string, number>;
  close(): Promise<void>;
}

export async function startLocalLambda(functions: Record<string, Handler>): Promise<LocalLambda> {
  const invocations = new Map<string, number>();
  const server: Server = createServer((req, res) => {
    const m = /^\/2015-03-31\/functions\/([^/]+)\/invocations/.exec(req.url ?? '');
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', async () => {
      const name = m ? decodeURIComponent(m[1]!) : '';
      const fn = functions[name];
      if (!m || req.method !== 'POST' || !fn) {
        res.writeHead(404, { 'content-type': 'application/json', 'x-amzn-errortype': 'ResourceNotFoundException' });
        res.end(JSON.stringify({ Type: 'User', message: `Function not found: ${name}` }));
        return;
      }
      invocations.set(name, (invocations.get(name) ?? 0) + 1);
      try {
        const out = await fn(JSON.parse(Buffer.concat(chunks).toString('utf8') || 'null'));
        res.writeHead(200, { 'content-type': 'application/json', 'x-amz-executed-version': '$LATEST' });
        res.end(JSON.stringify(out));
      } catch (err) {
        res.writeHead(200, { 'content-type': 'application/json', 'x-amz-function-error': 'Unhandled' });
        res.end(JSON.stringify({ errorType: (err as Error).name, errorMessage: (err as Error).message }));
      }
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as AddressInfo;
  return { url: `http://127.0.0.1:${port}`, invocations, close: () => new Promise((r) => server.close(() => r())) };
}
