/**
 * The AWS deployment (CDK): a bundle bucket, the API Lambda (Function URL), the embedding-worker Lambda used by
 * `medclip index --workers lambda:...`, optional query-shard Lambdas, an optional AWS Batch GPU training job,
 * least-privilege IAM, log retention and alarms.
 * Synthesizes offline (`npm run synth`); `test/infra.test.ts` asserts the template.
 */
import { CfnOutput, Duration, RemovalPolicy, SecretValue, Stack, type StackProps } from 'aws-cdk-lib';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import * as logs from 'aws-cdk-lib/aws-logs';
import * as s3 from 'aws-cdk-lib/aws-s3';
import type { Construct } from 'constructs';
import { join } from 'node:path';
import { GpuTraining, type GpuTrainingProps } from './gpu-training.ts';

export interface MedclipStackProps extends StackProps {
  /** Folder with the packaged Lambda code (`npm run package:lambda` writes `.build/lambda`). */
  codeDir: string;
  /** S3 keys (in the bundle bucket) of the model and index bundles the API serves. */
  modelPrefix?: string;
  indexPrefix?: string;
  /** Function URL auth: AWS_IAM (default: callers sign with SigV4) or API keys checked by the app. */
  auth?: 'iam' | 'api-key';
  /** sha256 digests of accepted API keys (api-key mode), given at synth time... */
  apiKeySha256?: string[];
  /** ...or the name of a Secrets Manager secret whose string is the comma-separated digests, resolved at deploy. */
  apiKeySecretName?: string;
  /** Measured: the tiny model answers image queries in ~25 ms at 1,769 MB (one full vCPU). */
  apiMemoryMb?: number;
  apiReservedConcurrency?: number;
  workerReservedConcurrency?: number;
  /** Query fan-out: one Lambda per index shard (0 = the API searches its own bundle). */
  shards?: number;
  corsOrigins?: string[];
  /** Viewer link template for hits read from DICOM (MEDCLIP_VIEWER_URL), e.g. an OHIF URL with {StudyInstanceUID}. */
  viewerUrl?: string;
  logRetention?: logs.RetentionDays;
  /** The optional AWS Batch GPU training job (infra/gpu-training.ts): true for the defaults, or its options. */
  gpuTraining?: boolean | Omit<GpuTrainingProps, 'bucket' | 'buildContext'>;
}

export class MedclipStack extends Stack {
  readonly bucket: s3.Bucket;
  readonly api: lambda.Function;
  readonly worker: lambda.Function;
  readonly shardFunctions: lambda.Function[] = [];
  readonly builderPolicy: iam.ManagedPolicy;
  readonly training?: GpuTraining;

  constructor(scope: Construct, id: string, props: MedclipStackProps) {
    super(scope, id, props);
    const modelPrefix = props.modelPrefix ?? 'models/medclip-tiny';
    const indexPrefix = props.indexPrefix ?? 'indexes/sample';
    const retention = props.logRetention ?? logs.RetentionDays.ONE_MONTH;
    // Fail closed: an API-key deployment is an open Function URL, so it must never go out without keys.
    let apiKeys: string | undefined;
    if (props.auth === 'api-key') {
      const digests = props.apiKeySha256 ?? [];
      for (const d of digests)
        if (!/^[0-9a-f]{64}$/i.test(d))
          throw new Error('apiKeySha256: each entry must be a sha256 hex digest (64 characters) of an API key');
      if (digests.length && props.apiKeySecretName) throw new Error('auth=api-key: give the key digests or a secret name, not both');
      if (digests.length) apiKeys = digests.join(',');
      else if (props.apiKeySecretName)
        apiKeys = SecretValue.secretsManager(props.apiKeySecretName).unsafeUnwrap(); // a deploy-time reference
      else
        throw new Error(
          'auth=api-key needs API keys: pass -c apiKeySha256=<sha256 of each key, comma-separated> or -c apiKeySecret=<Secrets Manager secret holding them>; ' +
            'without keys the Function URL would be open to anyone',
        );
    }

    this.bucket = new s3.Bucket(this, 'Bundles', {
      versioned: true,
      encryption: s3.BucketEncryption.S3_MANAGED,
      blockPublicAccess: s3.BlockPublicAccess.BLOCK_ALL,
      enforceSSL: true,
      removalPolicy: RemovalPolicy.RETAIN,
    });

    const code = lambda.Code.fromAsset(props.codeDir);
    const common = {
      runtime: lambda.Runtime.NODEJS_22_X,
      architecture: lambda.Architecture.X86_64,
      code,
    } as const;
    const logGroup = (name: string) => new logs.LogGroup(this, `${name}Logs`, { retention, removalPolicy: RemovalPolicy.DESTROY });

    this.api = new lambda.Function(this, 'Api', {
      ...common,
      handler: 'api.handler',
      memorySize: props.apiMemoryMb ?? 1769,
      timeout: Duration.seconds(30),
      reservedConcurrentExecutions: props.apiReservedConcurrency,
      logGroup: logGroup('Api'),
      // No NODE_OPTIONS=--enable-source-maps: it parses the bundle's source maps at every cold start (+30-50 ms measured
      // with bench/coldstart.ts). Stack traces name api.mjs lines; the shipped .map files map them back
      // (`node --enable-source-maps` on a copy of the package, or set the option on the function while debugging).
      environment: {
        MEDCLIP_MODEL_URI: `s3://${this.bucket.bucketName}/${modelPrefix}`,
        MEDCLIP_INDEX_URI: `s3://${this.bucket.bucketName}/${indexPrefix}`,
        MEDCLIP_CACHE_DIR: '/tmp/medclip',
        // The handler refuses to start with MEDCLIP_AUTH=api-key and no hashes; `iam`: the Function URL checks callers.
        ...(props.auth === 'api-key' ? { MEDCLIP_AUTH: 'api-key', MEDCLIP_API_KEY_SHA256: apiKeys! } : { MEDCLIP_AUTH: 'iam' }),
        ...(props.corsOrigins?.length ? { MEDCLIP_CORS_ORIGINS: props.corsOrigins.join(',') } : {}),
        ...(props.viewerUrl ? { MEDCLIP_VIEWER_URL: props.viewerUrl } : {}),
      },
    });
    // The API only reads the bundles it serves.
    this.bucket.grantRead(this.api, `${modelPrefix}/*`);
    this.bucket.grantRead(this.api, `${indexPrefix}/*`);
    const url = this.api.addFunctionUrl({
      authType: props.auth === 'api-key' ? lambda.FunctionUrlAuthType.NONE : lambda.FunctionUrlAuthType.AWS_IAM,
      cors: props.corsOrigins?.length
        ? { allowedOrigins: props.corsOrigins, allowedHeaders: ['content-type', 'x-api-key', 'authorization'] }
        : undefined,
    });

    this.worker = new lambda.Function(this, 'EmbedWorker', {
      ...common,
      handler: 'worker.handler',
      memorySize: 3008,
      timeout: Duration.minutes(2),
      reservedConcurrentExecutions: props.workerReservedConcurrency,
      logGroup: logGroup('EmbedWorker'),
      environment: { MEDCLIP_MODEL_URI: `s3://${this.bucket.bucketName}/${modelPrefix}`, MEDCLIP_CACHE_DIR: '/tmp/medclip' },
    });
    this.bucket.grantRead(this.worker, `${modelPrefix}/*`);

    for (let s = 0; s < (props.shards ?? 0); s++) {
      const shard = new lambda.Function(this, `Shard${s}`, {
        ...common,
        handler: 'api.handler',
        memorySize: props.apiMemoryMb ?? 1769,
        timeout: Duration.seconds(30),
        logGroup: logGroup(`Shard${s}`),
        environment: {
          MEDCLIP_MODEL_URI: `s3://${this.bucket.bucketName}/${modelPrefix}`,
          MEDCLIP_INDEX_URI: `s3://${this.bucket.bucketName}/${indexPrefix}-shard${s}`,
          MEDCLIP_CACHE_DIR: '/tmp/medclip',
          // shards have no Function URL: only the API (IAM-granted invoke) reaches them
          MEDCLIP_AUTH: 'iam',
        },
      });
      this.bucket.grantRead(shard, `${modelPrefix}/*`);
      this.bucket.grantRead(shard, `${indexPrefix}-shard${s}/*`);
      shard.grantInvoke(this.api);
      this.shardFunctions.push(shard);
    }
    if (this.shardFunctions.length)
      this.api.addEnvironment('MEDCLIP_SHARD_FUNCTIONS', this.shardFunctions.map((f) => f.functionName).join(','));

    // Index builders (a CI role, an operator) attach this policy: invoke the worker, write bundles.
    this.builderPolicy = new iam.ManagedPolicy(this, 'IndexBuilderPolicy', {
      description: 'medclip index --workers lambda:...: invoke the embedding worker and upload bundles',
      statements: [
        new iam.PolicyStatement({ actions: ['lambda:InvokeFunction'], resources: [this.worker.functionArn] }),
        new iam.PolicyStatement({
          actions: ['s3:PutObject', 's3:GetObject', 's3:ListBucket'],
          resources: [this.bucket.bucketArn, this.bucket.arnForObjects('*')],
        }),
      ],
    });

    for (const [name, fn] of [
      ['Api', this.api],
      ['EmbedWorker', this.worker],
    ] as const) {
      for (const [what, metric] of [
        ['Errors', fn.metricErrors({ period: Duration.minutes(5) })],
        ['Throttles', fn.metricThrottles({ period: Duration.minutes(5) })],
      ] as const) {
        new cloudwatch.Alarm(this, `${name}${what}`, {
          metric,
          threshold: 1,
          evaluationPeriods: 1,
          treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
          alarmDescription: `${name} Lambda ${what.toLowerCase()}`,
        });
      }
    }

    if (props.gpuTraining) {
      this.training = new GpuTraining(this, 'GpuTraining', {
        ...(props.gpuTraining === true ? {} : props.gpuTraining),
        bucket: this.bucket,
        buildContext: join(import.meta.dirname, '..'),
        logRetention: retention,
      });
      new CfnOutput(this, 'TrainingJobQueue', { value: this.training.queue.jobQueueName });
      new CfnOutput(this, 'TrainingJobDefinition', { value: this.training.jobDefinition.jobDefinitionName });
    }

    new CfnOutput(this, 'ApiUrl', { value: url.url });
    new CfnOutput(this, 'BundleBucket', { value: this.bucket.bucketName });
    new CfnOutput(this, 'EmbedWorkerName', { value: this.worker.functionName });
  }
}
