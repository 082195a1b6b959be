/**
 * The options of a training run: the defaults of `medclip train` (the shipped recipe), what a caller may override,
 * and the error a run that cannot go on raises.
 */
import { MedclipError } from '../core/errors.ts';
import { PROMPTS_PER_CLASS } from '../core/model/index.ts';
import type { DicomwebAuth } from '../core/dicom/index.ts';
import type { ModelConfig } from './config.ts';
import type { LossName } from './loss.ts';
import { DEFAULT_ADAMW } from './optimizer.ts';

/**
 * Training images are decoded this much larger than the model's input, so random crops (augmentation) still see
 * the whole chest after cropping back to the input size: 12.5% leaves room for the crop and small shifts.
 */
export const TRAIN_DECODE_MARGIN = 1.125;

/** Training hyperparameters and their defaults, in one place: the CLI's defaults are these, callers override a part. */
export const DEFAULT_TRAIN = {
  trainSplit: 'train' as string | undefined,
  valSplit: 'val' as string | undefined,
  steps: 1000,
  /** Images (and sentences) per step. */
  batch: 32,
  /** Peak learning rate (cosine decay after a linear warmup). */
  lr: 1e-3,
  warmup: 100,
  weightDecay: DEFAULT_ADAMW.weightDecay,
  /** Gradient clipping: global L2 norm. */
  clip: 1,
  loss: 'semantic' as LossName,
  /** Temperature of the semantic targets' softmax (1 = the paper). */
  labelTemperature: 1,
  /** Share of sentences drawn to share a finding with their image. */
  matchRate: 0.5,
  balanceSources: true,
  /** Draw half of each batch's images by finding (rare findings reach most batches). */
  balanceFindings: false,
  /** Weight of the auxiliary findings loss (train/loss.ts `findingsLoss`); 0 = off. */
  findingsWeight: 0,
  /** Add the built-in prompt sentences as text-only data. */
  prompts: true,
  augment: true,
  /** Validate and checkpoint every n steps. */
  evalEvery: 200,
  seed: 0,
  resume: false,
  /** Zero-shot validation classes. */
  valClasses: ['No Finding', 'Pneumonia'],
  promptsPerClass: PROMPTS_PER_CLASS,
  /**
   * Share of paired images (an image naming its report) that bring a sentence of their own report to the batch (a
   * true pair); the rest are drawn decoupled. Ignored when the data has no pairs.
   */
  pairRate: 0.5,
  /** Weight of a true pair on top of the semantic target (train/loss.ts `withPairs`; 0 = pairs only sampled). */
  pairWeight: 1,
  /** Data-parallel replicas on worker threads (1 = in-process). */
  workers: 1,
  /** Batches whose gradients are averaged into one update. */
  accumulate: 1,
};

/** What a run needs (model, data, output) plus any of DEFAULT_TRAIN to override. */
export type TrainOptions = {
  config: ModelConfig;
  /** Image table (its train split trains, its val split validates); optional with `fromIndex`. */
  images?: string;
  root?: string;
  reports?: string;
  /** An index bundle whose live images and reports (and their pairs) train too (train/index-corpus.ts). */
  fromIndex?: string;
  /** Where the index's DICOMweb images are fetched from (default: the server the bundle records), with credentials. */
  dicomweb?: { url?: string; auth?: DicomwebAuth };
  /** Folder the index's file paths start from (default: the working folder). */
  indexRoot?: string;
  out: string;
  cacheDir?: string;
  log?: (line: string) => void;
  onStep?: (info: StepInfo) => void;
} & Partial<typeof DEFAULT_TRAIN>;

export type ResolvedTrainOptions = TrainOptions & typeof DEFAULT_TRAIN;

export interface StepInfo {
  step: number;
  total: number;
  loss: number;
  lr: number;
  pairsPerSecond: number;
}

/** A run that cannot go on (no data, a bad vocabulary, a non-finite loss): one line for the CLI. */
export class TrainError extends MedclipError {
  constructor(message: string) {
    super(message, 'data');
  }
}
