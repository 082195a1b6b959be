/**
 * Fetch a model or index bundle from S3 into a local cache (Lambda: /tmp) and return its folder.
 * A versioned bundle (uploaded as written locally: `CURRENT` naming a version folder) is read at the version its
 * `CURRENT` names; a plain one at its prefix. The bundle's `manifest.json` is read first; when its ETag matches the
 * cached copy, the cache is used as is. Otherwise every object under the version's prefix is downloaded into a
 * staging folder of the cache, every file the manifest lists is checked against its sha256, and only then is it
 * published as the cache's new version (core/bundle/versioned-dir.ts, under the cache slot's lock): a reader never sees a
 * half-downloaded, corrupted or missing bundle, and the previous copy stays until the next fetch.
 *
 *   const dir = await fetchBundle({ uri: 's3://my-bucket/models/medclip-tiny', cacheDir: '/tmp/medclip' });
 */
import pLimit from 'p-limit';
import { createHash } from 'node:crypto';
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { dirname, join, resolve, sep } from 'node:path';
import type { S3Client } from '@aws-sdk/client-s3';
import { withLock } from './lock.ts';
import { vouchFor } from './verified-marker.ts';
import { currentVersion, publishVersion, removeStaleStaging, stageVersion } from './versioned-dir.ts';
import { MedclipError, type ErrorKind } from '../errors.ts';

/** Beside the downloaded files of a cached version: the ETag of the manifest it was fetched for. */
const ETAG_FILE = '.source-etag';

/** A bundle in S3 that is corrupt or incomplete (data), or S3 out of reach (unavailable). */
export class BundleFetchError extends MedclipError {
  constructor(message: string, kind: ErrorKind = 'data') {
    super(message, kind);
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
  if (!m) throw new BundleFetchError(`not an S3 URI: ${uri} (expected s3://bucket/prefix)`, 'input');
  return { bucket: m[1]!, prefix: m[2]!.replace(/\/+$/, '') };
}

/** The S3 SDK, loaded on the first fetch: a process that never reads a bundle from S3 never pays for it. */
const sdk = () => import('@aws-sdk/client-s3');

async function getObject(client: S3Client, bucket: string, key: string): Promise<{ bytes: Uint8Array; etag: string }> {
  try {
    const { GetObjectCommand } = await sdk();
    const out = await client.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
    return { bytes: await out.Body!.transformToByteArray(), etag: out.ETag ?? '' };
  } catch (err) {
    const name = (err as Error).name;
    if (name === 'NoSuchKey' || name === 'NotFound') throw new BundleFetchError(`s3://${bucket}/${key} does not exist`);
    throw new BundleFetchError(`s3://${bucket}/${key}: ${name}: ${(err as Error).message.split('\n')[0]}`, 'unavailable');
  }
}

async function findObject(client: S3Client, bucket: string, key: string): Promise<Uint8Array | undefined> {
  try {
    return (await getObject(client, bucket, key)).bytes;
  } catch (err) {
    if (err instanceof BundleFetchError && /does not exist$/.test(err.message)) return undefined;
    throw err;
  }
}

/** Every object key under `prefix` (all pages; folder markers left out). */
export async function listObjectKeys(client: S3Client, bucket: string, prefix: string): Promise<string[]> {
  const { ListObjectsV2Command } = await sdk();
  const keys: string[] = [];
  let token: string | undefined;
  do {
    const page = await client.send(
      new ListObjectsV2Command({ Bucket: bucket, Prefix: prefix ? `${prefix}/` : undefined, ContinuationToken: token }),
    );
    for (const obj of page.Contents ?? []) if (obj.Key && !obj.Key.endsWith('/')) keys.push(obj.Key);
    token = page.IsTruncated ? page.NextContinuationToken : undefined;
  } while (token);
  return keys;
}

export async function fetchBundle(o: FetchBundleOptions): Promise<string> {
  const { bucket, prefix: root } = parseS3Uri(o.uri);
  // A custom endpoint (AWS_ENDPOINT_URL_S3: MinIO, LocalStack, tests) generally needs path-style addressing.
  const { S3Client } = await sdk();
  const client = o.client ?? new S3Client({ forcePathStyle: !!process.env.AWS_ENDPOINT_URL_S3 });
  const under = (prefix: string, name: string) => (prefix ? `${prefix}/${name}` : name);
  // A versioned bundle names its live version in CURRENT; a plain bundle has its files at the prefix.
  const pointer = await findObject(client, bucket, under(root, 'CURRENT'));
  let prefix = root;
  if (pointer) {
    const name = new TextDecoder().decode(pointer).trim();
    if (!/^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$/.test(name)) throw new BundleFetchError(`${o.uri}/CURRENT does not name a version folder`);
    prefix = under(root, name);
  }
  const key = (name: string) => under(prefix, name);
  const slot = join(o.cacheDir, createHash('sha256').update(o.uri).digest('hex').slice(0, 16));
  const { bytes: manifestBytes, etag } = await getObject(client, bucket, key('manifest.json'));
  const cached = async () => {
    const live = await currentVersion(slot, 'manifest.json').catch(() => undefined);
    if (!live || !etag) return undefined;
    const have = await readFile(join(live, ETAG_FILE), 'utf8').catch(() => '');
    return have === `${prefix}\n${etag}` ? live : undefined;
  };
  const hit = await cached();
  if (hit) return hit;

  let manifest: { sha256?: Record<string, string> };
  try {
    manifest = JSON.parse(new TextDecoder().decode(manifestBytes));
  } catch {
    throw new BundleFetchError(`${o.uri}/manifest.json is not valid JSON`);
  }
  const expected = manifest.sha256 ?? {};
  // Everything under the prefix (bundles may hold extra files, e.g. thumbnails).
  const keys = await listObjectKeys(client, bucket, prefix);
  const names = keys.map((k) => (prefix ? k.slice(prefix.length + 1) : k)).filter((n) => n !== 'manifest.json');
  for (const name of Object.keys(expected))
    if (!names.includes(name)) throw new BundleFetchError(`${o.uri}: ${name} is listed in the manifest but missing`);

  await mkdir(o.cacheDir, { recursive: true });
  // One fetcher per cache slot at a time (several processes may share /tmp); the second finds the first's copy.
  return withLock(slot, 'fetch bundle', async (assertHeld) => {
    const again = await cached();
    if (again) return again;
    await removeStaleStaging(slot);
    const tmp = await stageVersion(slot);
    try {
      const limit = pLimit(o.concurrency ?? 8);
      await Promise.all(
        names.map((name) =>
          limit(async () => {
            const target = resolve(tmp, name);
            if (!target.startsWith(resolve(tmp) + sep)) throw new BundleFetchError(`${o.uri}: object name leaves the bundle (${name})`);
            const { bytes } = await getObject(client, bucket, key(name));
            const want = expected[name];
            if (want && createHash('sha256').update(bytes).digest('hex') !== want)
              throw new BundleFetchError(`${o.uri}: ${name} does not match its sha256 (corrupted or replaced mid-upload)`);
            await mkdir(dirname(target), { recursive: true });
            await writeFile(target, bytes);
          }),
        ),
      );
      await writeFile(join(tmp, 'manifest.json'), manifestBytes);
      await writeFile(join(tmp, ETAG_FILE), `${prefix}\n${etag}`);
      // every listed file was checked against its sha256 as downloaded: loading the copy need not hash it again
      await vouchFor(tmp, Object.keys(expected));
      assertHeld();
      return await publishVersion(slot, tmp, `fetch-${Date.now().toString(36)}-${process.pid}`);
    } catch (err) {
      await rm(tmp, { recursive: true, force: true }).catch(() => {});
      throw err;
    }
  });
}
