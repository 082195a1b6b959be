/**
 * The batch sampler of training: images and sentences drawn independently (decoupling), with true pairs mixed in.
 */
import { NUM_OBSERVATIONS, OBSERVATIONS } from '../core/labeler/index.ts';
import type { Rng } from '../core/util/index.ts';
import type { ImageSet, SentenceSet } from './data.ts';

function vectorKey(labels: Float32Array, i: number): string {
  return Array.from(labels.subarray(i * NUM_OBSERVATIONS, (i + 1) * NUM_OBSERVATIONS), (v) => (v > 0 ? 1 : 0)).join('');
}

/**
 * MedCLIP's decoupled sampler: B images and B sentences drawn independently, mixed with true pairs where the data has
 * them (MedCLIP's paired + unpaired setting): with probability `pairRate` a paired image brings a sentence of its own
 * report. With probability `matchRate`
 * an image's sentence is drawn among sentences sharing one of its positive findings, so the batch holds
 * informative positives; otherwise uniformly. `balanceSources` samples images evenly over sources;
 * `balanceFindings` draws half of the images by finding instead: an observation uniformly among those with a
 * positive image, then one of its positive images, so rare findings (a dozen pneumothorax films among thousands
 * of pneumonia/normal ones) reach most batches while the other half keeps the sources' mix.
 */
export class DecoupledSampler {
  private readonly bySource: number[][];
  private readonly sentencesByFinding: number[][];
  private readonly sentencesByVector = new Map<string, number[]>();
  private readonly imagesByFinding: number[][] = [];

  constructor(
    private readonly images: ImageSet,
    private readonly sentences: SentenceSet,
    private readonly options: {
      matchRate: number;
      balanceSources: boolean;
      balanceFindings?: boolean;
      identical?: boolean;
      /** Per image: the sentences of its own report (train/pairs.ts); absent for unpaired data. */
      pairs?: readonly (readonly number[] | undefined)[];
      /** Share of paired images whose sentence is drawn from their own report (a true pair). */
      pairRate?: number;
    },
  ) {
    for (let f = 0; f < NUM_OBSERVATIONS; f++) {
      const pool: number[] = [];
      for (let i = 0; i < images.ids.length; i++) if (images.labels[i * NUM_OBSERVATIONS + f]! > 0) pool.push(i);
      if (pool.length) this.imagesByFinding.push(pool);
    }
    const groups = new Map<string, number[]>();
    images.sources.forEach((s, i) => {
      const key = options.balanceSources ? s : '';
      if (!groups.has(key)) groups.set(key, []);
      groups.get(key)!.push(i);
    });
    this.bySource = [...groups.values()];
    this.sentencesByFinding = OBSERVATIONS.map(() => []);
    const n = sentences.texts.length;
    for (let i = 0; i < n; i++) {
      const key = vectorKey(sentences.labels, i);
      if (!this.sentencesByVector.has(key)) this.sentencesByVector.set(key, []);
      this.sentencesByVector.get(key)!.push(i);
    }
    for (let i = 0; i < n; i++)
      for (let f = 0; f < NUM_OBSERVATIONS; f++) if (sentences.labels[i * NUM_OBSERVATIONS + f]! > 0) this.sentencesByFinding[f]!.push(i);
  }

  sample(batch: number, rng: Rng): { images: number[]; sentences: number[] } {
    const images: number[] = [];
    const sentences: number[] = [];
    for (let b = 0; b < batch; b++) {
      const byFinding = this.options.balanceFindings && this.imagesByFinding.length > 0 && rng.next() < 0.5;
      const group = byFinding ? this.imagesByFinding[rng.int(this.imagesByFinding.length)]! : this.bySource[rng.int(this.bySource.length)]!;
      const img = group[rng.int(group.length)]!;
      images.push(img);
      let sentence = -1;
      // a true pair: a sentence of the image's own report (the rng is only drawn for paired images, so unpaired
      // data samples exactly as before)
      const own = this.options.pairs?.[img];
      if (own?.length && rng.next() < (this.options.pairRate ?? 0)) sentence = own[rng.int(own.length)]!;
      // InfoNCE on unpaired data: a pseudo-pair is a sentence with the image's exact label vector.
      const same = this.options.identical ? this.sentencesByVector.get(vectorKey(this.images.labels, img)) : undefined;
      if (sentence >= 0) {
        // paired above
      } else if (same) sentence = same[rng.int(same.length)]!;
      else if (rng.next() < this.options.matchRate) {
        const findings: number[] = [];
        for (let f = 0; f < NUM_OBSERVATIONS; f++)
          if (this.images.labels[img * NUM_OBSERVATIONS + f]! > 0 && this.sentencesByFinding[f]!.length) findings.push(f);
        if (findings.length) {
          const pool = this.sentencesByFinding[findings[rng.int(findings.length)]!]!;
          sentence = pool[rng.int(pool.length)]!;
        }
      }
      sentences.push(sentence >= 0 ? sentence : rng.int(this.sentences.texts.length));
    }
    return { images, sentences };
  }
}
