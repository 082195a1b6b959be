/**
 * CDK app entry: `npm run synth` writes the CloudFormation template to cdk.out/ offline (no AWS account needed).
 * Context: -c auth=api-key (with -c apiKeySha256=HASH[,HASH] or -c apiKeySecret=NAME) -c shards=4 -c codeDir=.build/lambda
 * -c gpuTraining=true (the AWS Batch GPU training job; -c trainImage=URI to run a pushed image)
 */
import { App } from 'aws-cdk-lib';
import { mkdirSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { MedclipStack } from './stack.ts';

// `npm run synth -- -c auth=api-key` passes context on the command line; the cdk CLI passes it in CDK_CONTEXT_JSON.
const argvContext: Record<string, string> = {};
process.argv.slice(2).forEach((arg, i, all) => {
  if ((arg === '-c' || arg === '--context') && /^[\w.-]+=/.test(all[i + 1] ?? '')) {
    const [k, ...v] = all[i + 1]!.split('=');
    argvContext[k!] = v.join('=');
  }
});
const app = new App({ outdir: join(import.meta.dirname, '../cdk.out'), context: argvContext });
const codeDir = (app.node.tryGetContext('codeDir') as string | undefined) ?? join(import.meta.dirname, '../.build/lambda');
if (!existsSync(codeDir)) {
  // synth without a packaged build: an empty asset keeps the template valid (deploy runs `npm run package:lambda` first)
  mkdirSync(codeDir, { recursive: true });
}
const auth = (app.node.tryGetContext('auth') as string | undefined) ?? 'iam';
if (auth !== 'iam' && auth !== 'api-key') {
  console.error(`synth: -c auth must be iam or api-key, not "${auth}"`);
  process.exit(1);
}
const list = (v: unknown) =>
  typeof v === 'string'
    ? v
        .split(',')
        .map((s) => s.trim())
        .filter(Boolean)
    : undefined;
/** -c gpuTraining=true adds the Batch GPU job; -c trainImage=URI uses a pushed image instead of building one. */
function gpuTraining() {
  const on = app.node.tryGetContext('gpuTraining');
  if (on !== 'true' && on !== true) return undefined;
  const imageUri = app.node.tryGetContext('trainImage') as string | undefined;
  return imageUri ? { imageUri } : true;
}
try {
  new MedclipStack(app, 'MedclipSearch', {
    codeDir,
    auth,
    apiKeySha256: list(app.node.tryGetContext('apiKeySha256')),
    apiKeySecretName: app.node.tryGetContext('apiKeySecret') as string | undefined,
    shards: Number(app.node.tryGetContext('shards') ?? 0),
    viewerUrl: app.node.tryGetContext('viewerUrl') as string | undefined,
    gpuTraining: gpuTraining(),
    env: { account: process.env.CDK_DEFAULT_ACCOUNT, region: process.env.CDK_DEFAULT_REGION },
  });
} catch (err) {
  console.error(`synth: ${(err as Error).message}`);
  process.exit(1);
}
app.synth();
