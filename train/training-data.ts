/**
 * Everything a run trains and validates on, read once: the image table's train and val splits, an index bundle's
 * images and reports (`--from-index`), the report sentences, and the image-report pairs among them.
 */
import { join } from 'node:path';
import { readReports, type ImageRecord, type Report } from '../core/tables/index.ts';
import { type ImageSet, type SentenceSet, loadImageSet, loadSentences, readImageRecords } from './data.ts';
import { readIndexCorpus } from './index-corpus.ts';
import { TrainError, type ResolvedTrainOptions } from './options.ts';
import { type Pairing, pairImages } from './pairs.ts';

export interface TrainingData {
  trainImages: ImageSet;
  valImages?: ImageSet;
  /** Every report read (table train split, then the index's): the tokenizer's vocabulary comes from them. */
  reports: Report[];
  sentences: SentenceSet;
  pairing: Pairing;
  /** With --from-index: what the index gave. */
  index?: { images: number; reports: number; fetched: number };
}

export async function loadTrainingData(
  o: ResolvedTrainOptions,
  decode: { trainSide: number; valSide: number; cacheDir: string },
  log: (line: string) => void,
): Promise<TrainingData> {
  if (!o.images && !o.fromIndex) throw new TrainError('nothing to train on: give --images (an image table) or --from-index (a bundle)');
  const records: ImageRecord[] = o.images ? await readImageRecords(o.images, { root: o.root, split: o.trainSplit }) : [];
  const reports: Report[] = [];
  if (o.reports) for await (const r of readReports(o.reports, { split: o.trainSplit })) reports.push(r);
  let index: TrainingData['index'];
  const skipped: { id: string; reason: string }[] = [];
  if (o.fromIndex) {
    const corpus = await readIndexCorpus(o.fromIndex, {
      root: o.indexRoot,
      dicomweb: o.dicomweb,
      cacheDir: join(decode.cacheDir, 'index'),
      log,
    });
    const tableIds = new Set(records.map((r) => r.id));
    const clash = corpus.images.find((r) => tableIds.has(r.id));
    if (clash) throw new TrainError(`image id ${clash.id} is both in ${o.images} and in the index ${o.fromIndex}`);
    records.push(...corpus.images);
    const reportIds = new Set(reports.map((r) => r.id));
    reports.push(...corpus.reports.filter((r) => !reportIds.has(r.id)));
    skipped.push(...corpus.skipped);
    index = { images: corpus.images.length, reports: corpus.reports.length, fetched: corpus.fetched };
  }
  log(`decoding images (${o.trainSplit ?? 'all'} at ${decode.trainSide}px, cached in ${decode.cacheDir})`);
  const resize = o.config.image.resize;
  const trainImages = await loadImageSet(records, { side: decode.trainSide, resize, cacheDir: decode.cacheDir });
  const valImages =
    o.valSplit && o.images
      ? await loadImageSet(await readImageRecords(o.images, { root: o.root, split: o.valSplit }), {
          side: decode.valSide,
          resize,
          cacheDir: decode.cacheDir,
        })
      : undefined;
  for (const s of [...skipped, ...trainImages.skipped, ...(valImages?.skipped ?? [])]) log(`skipped image ${s.id}: ${s.reason}`);
  if (trainImages.ids.length === 0)
    throw new TrainError(
      `no trainable images in ${[o.images && `${o.images}${o.trainSplit ? ` (split ${o.trainSplit})` : ''}`, o.fromIndex].filter(Boolean).join(' or ')}`,
    );
  const sentences = await loadSentences(reports, { prompts: o.prompts });
  if (sentences.texts.length === 0) throw new TrainError('no labelled sentences to train the text side on');
  const pairing = pairImages(trainImages, sentences);
  if (pairing.pairs > 0 || pairing.missingReports > 0)
    log(
      `pairs: ${pairing.pairs} image(s) with their report (${pairing.pairedWithSentences} with labelled sentences, ${pairing.labelsFromReports} labelled from it)${pairing.missingReports ? `; ${pairing.missingReports} name a report that is not among the reports` : ''}`,
    );
  return { trainImages, valImages, reports, sentences, pairing, ...(index ? { index } : {}) };
}
