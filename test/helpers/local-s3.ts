/**
 * A minimal S3-compatible endpoint (path-style GetObject with ETag, ListObjectsV2 with paging, PutObject) over an
 * in-memory store, for testing S3 code with the real AWS SDK through AWS_ENDPOINT_URL_S3.
 */
import { createHash } from 'node:crypto';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface LocalS3 {
  url: string;
  objects: Map<string, Uint8Array>;
  gets: string[];
  put(bucket: string, key: string, body: Uint8Array | string): void;
  close(): Promise<void>;
}

const xml = (s: string) => s.replace(/[<>&'"]/g, (c) => ({ '<': '&lt;', '>': '&gt;', '&': '&amp;', "'": '&apos;', '"': '&quot;' })[c]!);
const etagOf = (b: Uint8Array) => `"${createHash('md5').update(b).digest('hex')}"`;

export async function startLocalS3(): Promise<LocalS3> {
  const objects = new Map<string, Uint8Array>();
  const gets: string[] = [];
  const server = createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://localhost');
    const [, bucket, ...rest] = url.pathname.split('/');
    const key = decodeURIComponent(rest.join('/'));
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      if (req.method === 'PUT' && key) {
        objects.set(`${bucket}/${key}`, new Uint8Array(Buffer.concat(chunks)));
        res.writeHead(200, { etag: etagOf(objects.get(`${bucket}/${key}`)!) }).end();
        return;
      }
      if (req.method === 'GET' && !key && url.searchParams.get('list-type') === '2') {
        const prefix = url.searchParams.get('prefix') ?? '';
        const max = Number(url.searchParams.get('max-keys') ?? 1000);
        const start = Number(url.searchParams.get('continuation-token') ?? 0);
        const all = [...objects.keys()].filter((k) => k.startsWith(`${bucket}/${prefix}`)).sort();
        const page = all.slice(start, start + Math.min(max, 3)); // small pages: exercises paging
        const truncated = start + page.length < all.length;
        const body = `<?xml version="1.0" encoding="UTF-8"?><ListBucketResult><Name>${xml(bucket!)}</Name><Prefix>${xml(prefix)}</Prefix><KeyCount>${page.length}</KeyCount><MaxKeys>${max}</MaxKeys><IsTruncated>${truncated}</IsTruncated>${truncated ? `<NextContinuationToken>${start + page.length}</NextContinuationToken>` : ''}${page.map((k) => `<Contents><Key>${xml(k.slice(bucket!.length + 1))}</Key><Size>${objects.get(k)!.length}</Size><ETag>${xml(etagOf(objects.get(k)!))}</ETag></Contents>`).join('')}</ListBucketResult>`;
        res.writeHead(200, { 'content-type': 'application/xml' }).end(body);
        return;
      }
      if ((req.method === 'GET' || req.method === 'HEAD') && key) {
        const obj = objects.get(`${bucket}/${key}`);
        if (!obj) {
          res
            .writeHead(404, { 'content-type': 'application/xml' })
            .end(
              `<?xml version="1.0" encoding="UTF-8"?><Error><Code>NoSuchKey</Code><Message>The specified key does not exist.</Message><Key>${xml(key)}</Key></Error>`,
            );
          return;
        }
        gets.push(key);
        res
          .writeHead(200, { etag: etagOf(obj), 'content-length': obj.length, 'content-type': 'application/octet-stream' })
          .end(req.method === 'HEAD' ? undefined : Buffer.from(obj));
        return;
      }
      res.writeHead(400, { 'content-type': 'application/xml' }).end('<Error><Code>NotImplemented</Code></Error>');
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    objects,
    gets,
    put: (bucket, key, body) => objects.set(`${bucket}/${key}`, typeof body === 'string' ? new TextEncoder().encode(body) : body),
    close: () => new Promise((r) => server.close(() => r())),
  };
}
