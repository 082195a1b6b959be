/**
 * Fetch a model or index bundle from S3 into a local cache (Lambda: /tmp) and return its folder.
 * The bundle's `manifest.json` is read first; when its ETag matches the cached copy, the cache is used as is.
 * Otherwise every object under the prefix is downloaded into a temporary folder, every file the manifest lists is
 * checked against its sha256, and only then is the folder renamed into place: a reader never sees a
 * half-downloaded or corrupted bundle.
 *
 *   const dir = await fetchBundle({ uri: 's3://my-bucket/models/medclip-tiny', cacheDir: '/tmp/medclip' });
 */
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { dirname, join, resolve, sep } from 'node:path';
import { GetObjectCommand, ListObjectsV2Command, S3Client } from '@aws-sdk/client-s3';

export class BundleFetchError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'BundleFetchError';
  }
}

export interface FetchBundleOptions {
  /** `s3://bucket/prefix` of the bundle folder. */
  uri: string;
  cacheDir: string;
  client?: S3Client;
  /** Parallel downloads (default 8). */
  concurrency?: number;
}

export function parseS3Uri(uri: string): { bucket: string; prefix: string } {
  const m = /^s3:\/\/([a-z0-9.-]{3,63})\/?(.*)$/.exec(uri);
  if (!m) throw new BundleFetchError(`not an S3 URI: ${uri} (expected s3://bucket/prefix)`);
  return { bucket: m[1]!, prefix: m[2]!.replace(/\/+$/, '') };
}

async function getObject(client: S3Client, bucket: string, key: string): Promise<{ bytes: Uint8Array; etag: string }> {
  try {
    const out = await client.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
    return { bytes: await out.Body!.transformToByteArray(), etag: out.ETag ?? '' };
  } catch (err) {
    const name = (err as Error).name;
    if (name === 'NoSuchKey' || name === 'NotFound') throw new BundleFetchError(`s3://${bucket}/${key} does not exist`);
    throw new BundleFetchError(`s3://${bucket}/${key}: ${name}: ${(err as Error).message.split('\n')[0]}`);
  }
}

export async function fetchBundle(o: FetchBundleOptions): Promise<string> {
  const { bucket, prefix } = parseS3Uri(o.uri);
  // A custom endpoint (AWS_ENDPOINT_URL_S3: MinIO, LocalStack, tests) generally needs path-style addressing.
  const client = o.client ?? new S3Client({ forcePathStyle: !!process.env.AWS_ENDPOINT_URL_S3 });
  const key = (name: string) => (prefix ? `${prefix}/${name}` : name);
  const slot = join(o.cacheDir, createHash('sha256').update(o.uri).digest('hex').slice(0, 16));
  const { bytes: manifestBytes, etag } = await getObject(client, bucket, key('manifest.json'));
  const stamp = join(slot, 'etag');
  const current = join(slot, 'bundle');
  if (etag && existsSync(stamp) && (await readFile(stamp, 'utf8')) === etag && existsSync(join(current, 'manifest.json'))) return current;

  let manifest: { sha256?: Record<string, string> };
  try {
    manifest = JSON.parse(new TextDecoder().decode(manifestBytes));
  } catch {
    throw new BundleFetchError(`${o.uri}/manifest.json is not valid JSON`);
  }
  const expected = manifest.sha256 ?? {};
  // Everything under the prefix (bundles may hold extra files, e.g. thumbnails).
  const keys: string[] = [];
  let token: string | undefined;
  do {
    const page = await client.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: prefix ? `${prefix}/` : undefined, ContinuationToken: token }));
    for (const obj of page.Contents ?? []) if (obj.Key && !obj.Key.endsWith('/')) keys.push(obj.Key);
    token = page.IsTruncated ? page.NextContinuationToken : undefined;
  } while (token);
  const names = keys.map((k) => (prefix ? k.slice(prefix.length + 1) : k)).filter((n) => n !== 'manifest.json');
  for (const name of Object.keys(expected)) if (!names.includes(name)) throw new BundleFetchError(`${o.uri}: ${name} is listed in the manifest but missing`);

  const tmp = join(slot, `download-${process.pid}-${Date.now()}`);
  await rm(tmp, { recursive: true, force: true });
  await mkdir(tmp, { recursive: true });
  try {
    let next = 0;
    const worker = async () => {
      while (next < names.length) {
        const name = names[next++]!;
        const target = resolve(tmp, name);
        if (!target.startsWith(resolve(tmp) + sep)) throw new BundleFetchError(`${o.uri}: object name leaves the bundle (${name})`);
        const { bytes } = await getObject(client, bucket, key(name));
        const want = expected[name];
        if (want && createHash('sha256').update(bytes).digest('hex') !== want) throw new BundleFetchError(`${o.uri}: ${name} does not match its sha256 (corrupted or replaced mid-upload)`);
        await mkdir(dirname(target), { recursive: true });
        await writeFile(target, bytes);
      }
    };
    await Promise.all(Array.from({ length: Math.min(o.concurrency ?? 8, Math.max(1, names.length)) }, worker));
    await writeFile(join(tmp, 'manifest.json'), manifestBytes);
    // swap in: the old copy (if any) is moved aside first, so `current` is always complete or absent
    const old = `${current}.old-${process.pid}`;
    if (existsSync(current)) await rename(current, old);
    await rename(tmp, current);
    await writeFile(stamp, etag);
    await rm(old, { recursive: true, force: true });
    return current;
  } catch (err) {
    await rm(tmp, { recursive: true, force: true });
    throw err;
  }
}
