/**
 * The supervised ceiling of a model's image embeddings for findings: an L2-regularised logistic regression per
 * finding, trained on the `train` rows of one source and scored by ROC AUC on its `val` rows (the regularisation
 * picked per finding on val, so the figure is optimistic). Zero-shot findings mode cannot be expected to pass what
 * a probe trained on the labels reaches from the same embeddings.
 *
 *   npm run bench:probe [-- --model models/medclip-tiny --images ../shared/data/images.csv --source nih14 --json]
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { readImageTable } from '../core/tables/index.ts';
import { OBSERVATIONS } from '../core/labeler/index.ts';
import { MedClipModel } from '../core/model/index.ts';
import { rocAuc } from '../core/metrics/index.ts';
import { benchArgs } from './harness.ts';

const here = import.meta.dirname;
const { args, result } = benchArgs({
  model: { type: 'string', default: join(here, '../models/medclip-tiny') },
  images: { type: 'string', default: join(here, '../../shared/data/images.csv') },
  source: { type: 'string', default: 'nih14' },
});

const model = await MedClipModel.load(args.model!);
const rows: { split: string; labels: (number | null)[]; v: Float32Array }[] = [];
for (const split of ['train', 'val']) {
  const records = [];
  for await (const r of readImageTable(args.images!, { split })) if (r.meta.source === args.source) records.push(r);
  for (let i = 0; i < records.length; i += 16) {
    const batch = records.slice(i, i + 16);
    const vectors = await model.embedImages(await Promise.all(batch.map((r) => readFile(r.file))));
    batch.forEach((r, j) => rows.push({ split, labels: r.labels, v: vectors[j]! }));
  }
}
await model.close();

// standardise with the train rows' statistics
const dim = rows[0]!.v.length;
const train = rows.filter((r) => r.split === 'train');
const val = rows.filter((r) => r.split === 'val');
const mean = new Float64Array(dim);
const sd = new Float64Array(dim);
for (const r of train) for (let d = 0; d < dim; d++) mean[d]! += r.v[d]! / train.length;
for (const r of train) for (let d = 0; d < dim; d++) sd[d]! += (r.v[d]! - mean[d]!) ** 2 / train.length;
const x = (r: (typeof rows)[number]) => Float64Array.from(r.v, (v, d) => (v - mean[d]!) / (Math.sqrt(sd[d]!) + 1e-6));
const trainX = train.map(x);
const valX = val.map(x);

/** Logistic regression by full-batch gradient descent (500 steps, rate 0.5), L2 weight `l2` / n. */
function fit(X: Float64Array[], y: number[], l2: number): (v: Float64Array) => number {
  const w = new Float64Array(dim);
  let b = 0;
  for (let step = 0; step < 500; step++) {
    const g = new Float64Array(dim);
    let gb = 0;
    X.forEach((v, i) => {
      let z = b;
      for (let d = 0; d < dim; d++) z += w[d]! * v[d]!;
      const err = 1 / (1 + Math.exp(-z)) - y[i]!;
      for (let d = 0; d < dim; d++) g[d]! += err * v[d]!;
      gb += err;
    });
    for (let d = 0; d < dim; d++) w[d]! -= (0.5 * (g[d]! + l2 * w[d]!)) / X.length;
    b -= (0.5 * gb) / X.length;
  }
  return (v) => {
    let z = b;
    for (let d = 0; d < dim; d++) z += w[d]! * v[d]!;
    return z;
  };
}

const findings: { name: string; trainPositives: number; valPositives: number; auc: number }[] = [];
OBSERVATIONS.forEach((name, o) => {
  const yTrain = train.map((r) => (r.labels[o] === 1 ? 1 : 0));
  const yVal = val.map((r) => (r.labels[o] === 1 ? 1 : 0));
  const valPositives = yVal.reduce<number>((s, v) => s + v, 0);
  const trainPositives = yTrain.reduce<number>((s, v) => s + v, 0);
  if (name === 'No Finding' || valPositives === 0 || valPositives === yVal.length || trainPositives === 0) return;
  const auc = Math.max(
    ...[1, 10, 100].map((l2) => {
      const score = fit(trainX, yTrain, l2);
      return rocAuc(yVal, valX.map(score));
    }),
  );
  findings.push({ name, trainPositives, valPositives, auc });
});
const judged = findings.filter((f) => f.valPositives >= 9 && val.length - f.valPositives >= 9);
const meanAuc = judged.reduce((s, f) => s + f.auc, 0) / Math.max(1, judged.length);
if (args.json) result({ source: args.source, train: train.length, val: val.length, findings, meanAuc });
else {
  console.log(`${args.source}: linear probe on the image embeddings, ${train.length} train / ${val.length} val images`);
  for (const f of findings)
    console.log(
      `${f.name.padEnd(18)} train+ ${String(f.trainPositives).padStart(3)}  val+ ${String(f.valPositives).padStart(3)}  AUC ${f.auc.toFixed(3)}`,
    );
  console.log(`mean AUC over findings with >= 9 val positives and negatives: ${meanAuc.toFixed(3)}`);
}
