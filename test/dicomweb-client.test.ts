// The DICOMweb client against a scripted local server (what Orthanc cannot be made to do on demand): a bearer token,
// retries with backoff on 503 but none on 404, QIDO paging, WADO-RS multipart answers, and messages without secrets.
import assert from 'node:assert/strict';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, test } from 'node:test';
import { DicomwebClient, DicomwebError, publicUrl } from '../core/dicom/index.ts';

type Handler = (req: IncomingMessage, res: ServerResponse) => void;
let handler: Handler = (_req, res) => res.end();
const seen: { url: string; authorization?: string; accept?: string }[] = [];
const server = createServer((req, res) => {
  seen.push({ url: req.url!, authorization: req.headers.authorization, accept: req.headers.accept });
  handler(req, res);
});
let base = '';

before(async () => {
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}/dicom-web`;
});
after(() => new Promise<void>((r) => server.close(() => r())));

const fast = { retries: 2, backoffMs: 5 };

test('a bearer token is sent; QIDO pages through limit/offset until a short page', async () => {
  seen.length = 0;
  const all = Array.from({ length: 5 }, (_, i) => ({ '0020000E': { vr: 'UI', Value: [`1.2.${i}`] } }));
  handler = (req, res) => {
    const q = new URL(req.url!, 'http://x').searchParams;
    const offset = Number(q.get('offset'));
    res.setHeader('content-type', 'application/dicom+json');
    res.end(JSON.stringify(all.slice(offset, offset + Number(q.get('limit')))));
  };
  const client = new DicomwebClient(base, { auth: { token: 'tok-123' }, retry: fast });
  const got: unknown[] = [];
  for await (const s of client.search('/series', { Modality: 'CR' }, 2)) got.push(s);
  assert.equal(got.length, 5);
  assert.deepEqual(
    seen.map((s) => new URL(s.url, 'http://x').searchParams.get('offset')),
    ['0', '2', '4'],
  );
  assert.ok(seen.every((s) => s.authorization === 'Bearer tok-123' && s.accept === 'application/dicom+json'));
  assert.equal(new URL(seen[0]!.url, 'http://x').searchParams.get('Modality'), 'CR');
});

test('a server that ignores limit or offset ends the search instead of looping', async () => {
  const all = Array.from({ length: 3 }, (_, i) => ({ '0020000E': { vr: 'UI', Value: [`1.9.${i}`] } }));
  const client = new DicomwebClient(base, { retry: fast });
  // offset ignored: every page is the first one
  handler = (_req, res) => {
    res.setHeader('content-type', 'application/dicom+json');
    res.end(JSON.stringify(all.slice(0, 2)));
  };
  const pages: unknown[] = [];
  for await (const s of client.search('/series', {}, 2)) pages.push(s);
  assert.equal(pages.length, 2, 'the repeated page is not read again');
  // limit ignored: everything at once
  handler = (_req, res) => {
    res.setHeader('content-type', 'application/dicom+json');
    res.end(JSON.stringify(all));
  };
  const once: unknown[] = [];
  for await (const s of client.search('/series', {}, 2)) once.push(s);
  assert.equal(once.length, 3);
});

test('503 is retried with backoff; 404 is not; a message names the request, never the credentials', async () => {
  seen.length = 0;
  let calls = 0;
  handler = (_req, res) => {
    calls++;
    res.statusCode = calls < 3 ? 503 : 200;
    res.setHeader('content-type', 'application/dicom+json');
    res.end(calls < 3 ? '' : '[]');
  };
  const client = new DicomwebClient(base.replace('http://', 'http://user:pa55word@'), { retry: fast });
  for await (const _ of client.search('/series', {})) assert.fail('no results expected');
  assert.equal(calls, 3, 'two 503s, then the answer');
  assert.equal(seen[0]!.authorization, `Basic ${Buffer.from('user:pa55word').toString('base64')}`);
  assert.equal(client.base, base, 'credentials are not part of the recorded URL');

  calls = 0;
  handler = (_req, res) => {
    calls++;
    res.statusCode = 404;
    res.end();
  };
  await assert.rejects(client.retrieveInstance('1.2', '1.2.3', '1.2.3.4'), (err: Error) => {
    assert.ok(err instanceof DicomwebError);
    assert.equal(err.status, 404);
    assert.match(err.message, /retrieve instance 1\.2\.3\.4: HTTP 404/);
    assert.ok(!err.message.includes('pa55word'));
    return true;
  });
  assert.equal(calls, 1, 'a 404 is not retried');
  assert.equal(publicUrl('https://u:p@pacs.example/dicom-web/?x=1'), 'https://pacs.example/dicom-web');
});

test('WADO-RS: the first part of a multipart/related answer is the instance; oversized and malformed answers are errors', async () => {
  const instance = Buffer.concat([Buffer.alloc(128), Buffer.from('DICM'), Buffer.from('rest of the object')]);
  const boundary = 'b0undary-42';
  handler = (req, res) => {
    assert.match(req.headers.accept!, /^multipart\/related; type="application\/dicom"; transfer-syntax=\*/);
    res.setHeader('content-type', `multipart/related; type="application/dicom"; boundary=${boundary}`);
    res.end(
      Buffer.concat([
        Buffer.from(`--${boundary}\r\nContent-Type: application/dicom\r\n\r\n`),
        instance,
        Buffer.from(`\r\n--${boundary}--\r\n`),
      ]),
    );
  };
  const client = new DicomwebClient(base, { retry: fast });
  assert.deepEqual(Buffer.from(await client.retrieveInstance('1.2', '1.2.3', '1.2.3.4')), instance);
  await assert.rejects(
    new DicomwebClient(base, { retry: fast, maxInstanceBytes: 100 }).retrieveInstance('1.2', '1.2.3', '1.2.3.4'),
    DicomwebError,
  );
  handler = (_req, res) => {
    res.setHeader('content-type', 'text/html');
    res.end('<html>login</html>');
  };
  await assert.rejects(client.retrieveInstance('1.2', '1.2.3', '1.2.3.4'), /not multipart\/related/);
  assert.throws(() => new DicomwebClient('ftp://pacs'), /must be an http\(s\) URL/);
});
