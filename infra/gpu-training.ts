/**
 * Optional GPU training at archive scale (`-c gpuTraining=true`): an AWS Batch job queue on GPU instances (g5, one
 * NVIDIA A10G each; Spot by default, scaled to zero when idle), and a job definition running the image built from
 * `train/Dockerfile.gpu` with `medclip train-job` (train/job.ts): inputs from `s3://<bucket>/training/inputs/...`,
 * the run folder to `s3://<bucket>/training/runs/...`, uploaded every 10 minutes, resumed after a Spot reclaim.
 * The job role reads the training prefix and writes runs only. A small VPC with public subnets (no NAT gateway to pay
 * for) holds the instances unless one is given.
 */
import { Duration, IgnoreMode, Size } from 'aws-cdk-lib';
import * as batch from 'aws-cdk-lib/aws-batch';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as ecs from 'aws-cdk-lib/aws-ecs';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as logs from 'aws-cdk-lib/aws-logs';
import type * as s3 from 'aws-cdk-lib/aws-s3';
import { Construct } from 'constructs';

export interface GpuTrainingProps {
  bucket: s3.IBucket;
  /** Prefix of inputs and runs in the bucket (default `training`). */
  prefix?: string;
  /** The training image: default built from train/Dockerfile.gpu at deploy; or an image already in a registry (URI). */
  imageUri?: string;
  /** Folder the Dockerfile builds from (the repository root). */
  buildContext: string;
  /** GPU instance types (default g5.xlarge: 1 A10G, 4 vCPUs, 16 GiB). */
  instanceTypes?: string[];
  /** Most vCPUs running at once (default 16: four g5.xlarge). */
  maxvCpus?: number;
  /** Spot instances (default true; a reclaimed job retries and resumes from its last upload). */
  spot?: boolean;
  vpc?: ec2.IVpc;
  logRetention?: logs.RetentionDays;
}

/** What `medclip train-job` gets unless `aws batch submit-job --parameters` says otherwise. */
export const TRAINING_JOB_DEFAULTS = {
  config: 'base',
  images: 'images.csv',
  reports: 'reports.csv',
  steps: '20000',
  batch: '128',
} as const;

export class GpuTraining extends Construct {
  readonly queue: batch.JobQueue;
  readonly jobDefinition: batch.EcsJobDefinition;
  readonly computeEnvironment: batch.ManagedEc2EcsComputeEnvironment;
  readonly jobRole: iam.Role;

  constructor(scope: Construct, id: string, props: GpuTrainingProps) {
    super(scope, id);
    const prefix = props.prefix ?? 'training';
    const vpc =
      props.vpc ??
      new ec2.Vpc(this, 'Vpc', {
        maxAzs: 2,
        natGateways: 0,
        subnetConfiguration: [{ name: 'public', subnetType: ec2.SubnetType.PUBLIC }],
      });
    this.computeEnvironment = new batch.ManagedEc2EcsComputeEnvironment(this, 'GpuCompute', {
      vpc,
      vpcSubnets: { subnetType: ec2.SubnetType.PUBLIC },
      instanceTypes: (props.instanceTypes ?? ['g5.xlarge']).map((t) => new ec2.InstanceType(t)),
      useOptimalInstanceClasses: false,
      minvCpus: 0,
      maxvCpus: props.maxvCpus ?? 16,
      spot: props.spot ?? true,
    });
    this.queue = new batch.JobQueue(this, 'Queue', {
      computeEnvironments: [{ computeEnvironment: this.computeEnvironment, order: 1 }],
    });

    this.jobRole = new iam.Role(this, 'JobRole', {
      assumedBy: new iam.ServicePrincipal('ecs-tasks.amazonaws.com'),
      description: 'medclip train-job: read training inputs, write training runs',
    });
    props.bucket.grantRead(this.jobRole, `${prefix}/*`);
    props.bucket.grantPut(this.jobRole, `${prefix}/runs/*`);

    const image = props.imageUri
      ? ecs.ContainerImage.fromRegistry(props.imageUri)
      : ecs.ContainerImage.fromAsset(props.buildContext, { file: 'train/Dockerfile.gpu', ignoreMode: IgnoreMode.DOCKER });
    const s3Uri = (path: string) => `s3://${props.bucket.bucketName}/${prefix}/${path}`;
    const container = new batch.EcsEc2ContainerDefinition(this, 'Container', {
      image,
      gpu: 1,
      cpu: 4,
      memory: Size.gibibytes(15),
      jobRole: this.jobRole,
      logging: ecs.LogDriver.awsLogs({
        streamPrefix: 'train',
        logGroup: new logs.LogGroup(this, 'Logs', { retention: props.logRetention ?? logs.RetentionDays.ONE_MONTH }),
      }),
      // the image's entry point is `node bin/medclip.js`; Ref:: values come from the job's parameters
      command: [
        ...['train-job', '--input', 'Ref::input', '--run', 'Ref::run', '--'],
        ...['--config', 'Ref::config', '--images', 'Ref::images', '--reports', 'Ref::reports'],
        ...['--steps', 'Ref::steps', '--batch', 'Ref::batch', '--backend', 'tensorflow-gpu'],
      ],
    });
    this.jobDefinition = new batch.EcsJobDefinition(this, 'TrainJob', {
      container,
      parameters: { input: s3Uri('inputs'), run: s3Uri('runs/default'), ...TRAINING_JOB_DEFAULTS },
      retryAttempts: 3,
      retryStrategies: [
        batch.RetryStrategy.of(batch.Action.RETRY, batch.Reason.SPOT_INSTANCE_RECLAIMED),
        batch.RetryStrategy.of(batch.Action.EXIT, batch.Reason.NON_ZERO_EXIT_CODE),
      ],
      timeout: Duration.hours(48),
    });
  }
}
