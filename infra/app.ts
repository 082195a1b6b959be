/**
 * CDK app entry: `npm run synth` writes the CloudFormation template to cdk.out/ offline (no AWS account needed).
 * Context: -c auth=api-key -c shards=4 -c codeDir=.build/lambda
 */
import { App } from 'aws-cdk-lib';
import { mkdirSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { MedclipStack } from './stack.ts';

const app = new App({ outdir: join(import.meta.dirname, '../cdk.out') });
const codeDir = (app.node.tryGetContext('codeDir') as string | undefined) ?? join(import.meta.dirname, '../.build/lambda');
if (!existsSync(codeDir)) {
  // synth without a packaged build: an empty asset keeps the template valid (deploy runs `npm run package:lambda` first)
  mkdirSync(codeDir, { recursive: true });
}
new MedclipStack(app, 'MedclipSearch', {
  codeDir,
  auth: app.node.tryGetContext('auth') === 'api-key' ? 'api-key' : 'iam',
  shards: Number(app.node.tryGetContext('shards') ?? 0),
  env: { account: process.env.CDK_DEFAULT_ACCOUNT, region: process.env.CDK_DEFAULT_REGION },
});
app.synth();
