/**
 * The environment variables the project reads, validated in one place (zod). A bad value stops start-up with a
 * message naming the variable, never echoing its value (it may be a key hash).
 *
 *   const env = readEnv();   // env.MEDCLIP_THREADS is a number, env.MEDCLIP_SHARD_FUNCTIONS a string[]
 */
import { z } from 'zod';
import { MedclipError } from '../errors.ts';

const list = z
  .string()
  .optional()
  .transform((v) =>
    (v ?? '')
      .split(',')
      .map((s) => s.trim())
      .filter(Boolean),
  );
const s3Uri = z
  .string()
  .regex(/^s3:\/\/[a-z0-9.-]{3,63}(\/.*)?$/, 'must be s3://bucket/prefix')
  .optional();

export const EnvSchema = z.object({
  /** Bundles from S3 (fetched into MEDCLIP_CACHE_DIR), or local folders. */
  MEDCLIP_MODEL_URI: s3Uri,
  MEDCLIP_INDEX_URI: s3Uri,
  MEDCLIP_MODEL_DIR: z.string().min(1).optional(),
  MEDCLIP_INDEX_DIR: z.string().min(1).optional(),
  MEDCLIP_CACHE_DIR: z.string().min(1).default('/tmp/medclip'),
  /** onnxruntime threads per session: 1 suits a Lambda vCPU. */
  MEDCLIP_THREADS: z.coerce.number().int().min(1).max(64).default(1),
  MEDCLIP_SHARD_FUNCTIONS: list,
  /** Lambda: how often (seconds, at most) a warm function checks for a new index version; 0 never. */
  MEDCLIP_INDEX_RELOAD_SECONDS: z.coerce.number().int().min(0).max(86_400).default(30),
  MEDCLIP_CORS_ORIGINS: list,
  MEDCLIP_AUTH: z.enum(['api-key', 'iam', 'off']).optional(),
  MEDCLIP_API_KEY_SHA256: z.string().optional(),
  /** `medclip index --dicomweb`: the server's password (with --dicomweb-user) or bearer token, kept off the command line. */
  MEDCLIP_DICOMWEB_PASSWORD: z.string().optional(),
  MEDCLIP_DICOMWEB_TOKEN: z.string().optional(),
  /** `sse` forces hnswlib's portable build; `auto` (default) uses the AVX2 one where the CPU has it (core/bundle/hnswlib.ts). */
  MEDCLIP_HNSW_SIMD: z.enum(['sse', 'auto']).optional(),
  /** A viewer link per hit with DICOM UIDs, e.g. https://ohif.example/viewer?StudyInstanceUIDs={StudyInstanceUID}. */
  MEDCLIP_VIEWER_URL: z.string().url().optional(),
});

export type MedclipEnv = z.infer<typeof EnvSchema>;

export function readEnv(env: Record<string, string | undefined> = process.env): MedclipEnv {
  const r = EnvSchema.safeParse(Object.fromEntries(Object.entries(env).filter(([k, v]) => k.startsWith('MEDCLIP_') && v !== '')));
  if (!r.success)
    throw new MedclipError(`bad environment: ${r.error.issues.map((i) => `${i.path.join('.')} ${i.message}`).join('; ')}`, 'input');
  return r.data;
}
