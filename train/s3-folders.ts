/**
 * Folders to and from S3 for training jobs (AWS Batch): every object under a prefix downloaded into a folder (paths
 * kept, nothing written outside it), and a folder's files uploaded under a prefix, skipping files whose size and
 * modification time are unchanged since the last upload of the same job. Versioned folders (checkpoints) stay
 * consistent in S3: hidden staging entries are never sent, a version's files go before the `CURRENT` that names it,
 * and a file removed while the upload runs (a pruned version) is passed over. Works against any S3 endpoint
 * (AWS_ENDPOINT_URL_S3 switches to path-style addressing, as for bundles).
 */
import { mkdir, readdir, readFile, stat, writeFile } from 'node:fs/promises';
import { dirname, join, relative, resolve, sep } from 'node:path';
import pLimit from 'p-limit';
import type { S3Client } from '@aws-sdk/client-s3';
import { listObjectKeys, parseS3Uri } from '../core/bundle/index.ts';
import { MedclipError } from '../core/errors.ts';

export class S3FolderError extends MedclipError {}

const sdk = () => import('@aws-sdk/client-s3');

export async function s3Client(): Promise<S3Client> {
  const { S3Client } = await sdk();
  return new S3Client({ forcePathStyle: !!process.env.AWS_ENDPOINT_URL_S3 });
}

function failed(what: string, err: unknown): S3FolderError {
  const name = (err as Error).name;
  return new S3FolderError(`${what}: ${name}: ${(err as Error).message.split('\n')[0]}`, 'unavailable');
}

/** Download every object under `uri` into `dir`; returns the number of files (0 for an empty or absent prefix). */
export async function downloadPrefix(uri: string, dir: string, o: { client?: S3Client; concurrency?: number } = {}): Promise<number> {
  const { bucket, prefix } = parseS3Uri(uri);
  const { GetObjectCommand } = await sdk();
  const client = o.client ?? (await s3Client());
  const keys = await listObjectKeys(client, bucket, prefix).catch((err: unknown) => {
    throw failed(`cannot list ${uri}`, err);
  });
  const root = resolve(dir);
  const limit = pLimit(o.concurrency ?? 8);
  await Promise.all(
    keys.map((key) =>
      limit(async () => {
        const name = prefix ? key.slice(prefix.length + 1) : key;
        const target = resolve(root, name);
        if (!target.startsWith(root + sep)) throw new S3FolderError(`${uri}: object name leaves the folder (${name})`);
        const out = await client.send(new GetObjectCommand({ Bucket: bucket, Key: key })).catch((err: unknown) => {
          throw failed(`cannot read s3://${bucket}/${key}`, err);
        });
        await mkdir(dirname(target), { recursive: true });
        await writeFile(target, await out.Body!.transformToByteArray());
      }),
    ),
  );
  return keys.length;
}

async function* filesUnder(dir: string): AsyncGenerator<string> {
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) yield* filesUnder(path);
    else if (entry.isFile()) yield path;
  }
}

/** Uploads a folder to a prefix again and again (a job's periodic sync): only files changed since the last call go. */
export class FolderUploader {
  private readonly sent = new Map<string, string>();

  constructor(
    private readonly dir: string,
    private readonly uri: string,
    private readonly o: { client?: S3Client; concurrency?: number; skip?: (relativePath: string) => boolean } = {},
  ) {}

  /** Upload what changed; returns the number of files sent. */
  async sync(): Promise<number> {
    const { bucket, prefix } = parseS3Uri(this.uri);
    const { PutObjectCommand } = await sdk();
    const client = this.o.client ?? (await s3Client());
    const limit = pLimit(this.o.concurrency ?? 8);
    const changed: { file: string; rel: string; signature: string }[] = [];
    for await (const file of filesUnder(this.dir)) {
      const rel = relative(this.dir, file).split(sep).join('/');
      if (rel.split('/').some((part) => part.startsWith('.')) || this.o.skip?.(rel)) continue;
      const s = await stat(file).catch(() => undefined);
      if (!s) continue;
      const signature = `${s.size}:${s.mtimeMs}`;
      if (this.sent.get(rel) !== signature) changed.push({ file, rel, signature });
    }
    const put = ({ file, rel, signature }: (typeof changed)[number]) =>
      limit(async () => {
        const body = await readFile(file).catch(() => undefined);
        if (!body) return; // removed meanwhile
        const key = prefix ? `${prefix}/${rel}` : rel;
        await client.send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: body })).catch((err: unknown) => {
          throw failed(`cannot write s3://${bucket}/${key}`, err);
        });
        this.sent.set(rel, signature);
      });
    const isPointer = (c: (typeof changed)[number]) => c.rel === 'CURRENT' || c.rel.endsWith('/CURRENT');
    await Promise.all(changed.filter((c) => !isPointer(c)).map(put));
    await Promise.all(changed.filter(isPointer).map(put));
    return changed.length;
  }
}
