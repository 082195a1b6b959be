// The CDK stack, synthesized offline and checked with aws-cdk-lib/assertions.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { App } from 'aws-cdk-lib';
import { Match, Template } from 'aws-cdk-lib/assertions';
import { MedclipStack, type MedclipStackProps } from '../infra/stack.ts';
import { outputDir } from './helpers/paths.ts';

const codeDir = join(outputDir('infra'), 'code');
mkdirSync(codeDir, { recursive: true });
writeFileSync(join(codeDir, 'api.mjs'), 'export const handler = async () => ({ statusCode: 200 });\n');

function synth(props: Partial<MedclipStackProps> = {}): Template {
  const app = new App();
  return Template.fromStack(new MedclipStack(app, 'Test', { codeDir, ...props }));
}

test('bucket: versioned, encrypted, public access blocked, TLS only', () => {
  const t = synth();
  t.hasResourceProperties('AWS::S3::Bucket', {
    VersioningConfiguration: { Status: 'Enabled' },
    BucketEncryption: { ServerSideEncryptionConfiguration: [{ ServerSideEncryptionByDefault: { SSEAlgorithm: 'AES256' } }] },
    PublicAccessBlockConfiguration: { BlockPublicAcls: true, BlockPublicPolicy: true, IgnorePublicAcls: true, RestrictPublicBuckets: true },
  });
  t.hasResourceProperties('AWS::S3::BucketPolicy', {
    PolicyDocument: {
      Statement: Match.arrayWith([Match.objectLike({ Effect: 'Deny', Condition: { Bool: { 'aws:SecureTransport': 'false' } } })]),
    },
  });
});

test('functions: nodejs22.x on x86_64, bundles from S3 by environment, IAM Function URL by default', () => {
  const t = synth({ apiReservedConcurrency: 20 });
  const fns = t.findResources('AWS::Lambda::Function');
  const app = Object.values(fns).filter((f) => (f.Properties as { Handler: string }).Handler !== undefined);
  assert.equal(app.length, 2);
  for (const f of app) {
    const p = f.Properties as { Runtime: string; Architectures: string[] };
    assert.equal(p.Runtime, 'nodejs22.x');
    assert.deepEqual(p.Architectures, ['x86_64']);
  }
  t.hasResourceProperties('AWS::Lambda::Function', {
    Handler: 'api.handler',
    MemorySize: 1769,
    ReservedConcurrentExecutions: 20,
    Environment: {
      Variables: Match.objectLike({
        MEDCLIP_MODEL_URI: Match.anyValue(),
        MEDCLIP_INDEX_URI: Match.anyValue(),
        MEDCLIP_CACHE_DIR: '/tmp/medclip',
      }),
    },
  });
  // nothing that slows every cold start (source maps parsed at load: +30-50 ms, bench/coldstart.ts)
  for (const f of app) {
    const vars = (f.Properties as { Environment?: { Variables?: Record<string, unknown> } }).Environment?.Variables ?? {};
    assert.ok(!String(vars.NODE_OPTIONS ?? '').includes('--enable-source-maps'));
  }
  t.hasResourceProperties('AWS::Lambda::Url', { AuthType: 'AWS_IAM' });
  t.hasResourceProperties('AWS::Logs::LogGroup', { RetentionInDays: 30 });
  t.resourceCountIs('AWS::CloudWatch::Alarm', 4);
});

test('api-key mode: an open Function URL with key digests in the environment', () => {
  const t = synth({ auth: 'api-key', apiKeySha256: ['a'.repeat(64)] });
  t.hasResourceProperties('AWS::Lambda::Url', { AuthType: 'NONE' });
  t.hasResourceProperties('AWS::Lambda::Function', {
    Handler: 'api.handler',
    Environment: { Variables: Match.objectLike({ MEDCLIP_API_KEY_SHA256: 'a'.repeat(64) }) },
  });
});

test('a viewer URL template (-c viewerUrl=...) reaches the API as MEDCLIP_VIEWER_URL', () => {
  const viewerUrl = 'https://ohif.example/viewer?StudyInstanceUIDs={StudyInstanceUID}';
  synth({ viewerUrl }).hasResourceProperties('AWS::Lambda::Function', {
    Handler: 'api.handler',
    Environment: { Variables: Match.objectLike({ MEDCLIP_VIEWER_URL: viewerUrl }) },
  });
});

test('IAM: no wildcard actions or resources; the API reads its bundles, only the builder policy invokes the worker', () => {
  const t = synth({ shards: 2 });
  const policies = { ...t.findResources('AWS::IAM::Policy'), ...t.findResources('AWS::IAM::ManagedPolicy') };
  const statements = Object.values(policies).flatMap(
    (p) => (p.Properties as { PolicyDocument: { Statement: { Action: string | string[]; Resource: unknown }[] } }).PolicyDocument.Statement,
  );
  for (const s of statements) {
    for (const a of [s.Action].flat()) assert.ok(a !== '*' && !a.endsWith(':*'), `wildcard action ${a}`);
    for (const r of [s.Resource].flat()) assert.notEqual(r, '*', 'wildcard resource');
  }
  const invokers = statements.filter((s) => [s.Action].flat().includes('lambda:InvokeFunction'));
  const worker = Object.keys(t.findResources('AWS::Lambda::Function')).find((id) => id.startsWith('EmbedWorker'))!;
  const invokesWorker = invokers.filter((s) => JSON.stringify(s.Resource).includes(worker));
  assert.equal(invokesWorker.length, 1, 'only the index-builder policy may invoke the embedding worker');
  assert.ok(Object.keys(t.findResources('AWS::IAM::ManagedPolicy')).some((id) => id.startsWith('IndexBuilderPolicy')));
  // the API may invoke its query shards, and nothing else
  const apiInvokes = invokers.filter((s) => !JSON.stringify(s.Resource).includes(worker));
  assert.ok(apiInvokes.length >= 1 && apiInvokes.every((s) => /Shard\d/.test(JSON.stringify(s.Resource))));
  t.hasResourceProperties('AWS::Lambda::Function', {
    Handler: 'api.handler',
    Environment: { Variables: Match.objectLike({ MEDCLIP_SHARD_FUNCTIONS: Match.anyValue() }) },
  });
  const apiReads = statements.filter((s) => [s.Action].flat().some((a) => a.startsWith('s3:GetObject')));
  assert.ok(apiReads.length >= 3);
  assert.ok(
    statements.every((s) => ![s.Action].flat().includes('s3:DeleteObject')),
    'nothing deletes bundles',
  );
});

test('GPU training (optional): a Batch queue on Spot g5 instances scaled to zero, a job running train-job with S3 in and out, least privilege', () => {
  assert.equal(Object.keys(synth().findResources('AWS::Batch::JobDefinition')).length, 0, 'off by default');
  const started = performance.now();
  // the default image: built from train/Dockerfile.gpu at deploy (the asset is staged at synth, .dockerignore applied)
  const t = synth({ gpuTraining: true });
  const synthMs = performance.now() - started;
  t.hasResourceProperties('AWS::Batch::ComputeEnvironment', {
    Type: 'managed',
    ComputeResources: Match.objectLike({ Type: 'SPOT', MinvCpus: 0, MaxvCpus: 16, InstanceTypes: ['g5.xlarge'] }),
  });
  t.resourceCountIs('AWS::Batch::JobQueue', 1);
  t.resourceCountIs('AWS::EC2::NatGateway', 0);
  const defs = Object.values(t.findResources('AWS::Batch::JobDefinition'));
  assert.equal(defs.length, 1);
  const def = defs[0]!.Properties as {
    Parameters: Record<string, unknown>;
    ContainerProperties: { Command: string[]; ResourceRequirements: { Type: string; Value: string }[]; Image: unknown };
    RetryStrategy: { Attempts: number; EvaluateOnExit: { Action: string; OnStatusReason?: string }[] };
  };
  const command = def.ContainerProperties.Command;
  assert.deepEqual(command.slice(0, 6), ['train-job', '--input', 'Ref::input', '--run', 'Ref::run', '--']);
  assert.ok(command.includes('tensorflow-gpu'));
  assert.ok(def.ContainerProperties.ResourceRequirements.some((r) => r.Type === 'GPU' && r.Value === '1'));
  assert.deepEqual(Object.keys(def.Parameters).sort(), ['batch', 'config', 'images', 'input', 'reports', 'run', 'steps']);
  assert.equal(def.RetryStrategy.Attempts, 3);
  assert.equal(def.RetryStrategy.EvaluateOnExit[0]!.Action, 'RETRY');
  assert.match(JSON.stringify(def.ContainerProperties.Image), /dkr\.ecr/);
  // the job role reads training/* and writes training/runs/* only
  const policies = Object.values(t.findResources('AWS::IAM::Policy')).filter((p) => JSON.stringify(p).includes('GpuTrainingJobRole'));
  const statements = policies.flatMap(
    (p) => (p.Properties as { PolicyDocument: { Statement: { Action: string | string[]; Resource: unknown }[] } }).PolicyDocument.Statement,
  );
  const writes = statements.filter((s) => [s.Action].flat().some((a) => a.startsWith('s3:Put')));
  assert.ok(writes.length > 0);
  for (const s of writes) assert.match(JSON.stringify(s.Resource), /\/training\/runs\/\*/);
  assert.ok(!JSON.stringify(statements).includes('models/'), 'no access to the served bundles');
  t.hasOutput('TrainingJobQueue', {});
  // a pushed image instead of a build
  const pushed = synth({ gpuTraining: { imageUri: '123456789012.dkr.ecr.eu-west-1.amazonaws.com/medclip-train:1' } });
  pushed.hasResourceProperties('AWS::Batch::JobDefinition', {
    ContainerProperties: Match.objectLike({ Image: '123456789012.dkr.ecr.eu-west-1.amazonaws.com/medclip-train:1' }),
  });
  assert.ok(synthMs < 60_000, `synth with the staged image took ${synthMs} ms`);
});
