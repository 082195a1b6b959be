/**
 * How much data a hospital needs: `tiny` trained on 25, 50 and 100% of the training images (nested subsets drawn per
 * source, so every subset keeps the sources' mix; the same step budget and seed for each), exported, and scored on
 * the whole val split: per-finding ROC AUC with a 95% bootstrap interval, per source.
 *
 * Background-friendly and resumable: each fraction's run folder keeps its checkpoints (an interrupted run resumes from
 * its latest) and its `result.json` once scored; a fraction with a result is not trained again.
 *
 *   npm run bench:learning-curve -- [--fractions 0.25,0.5,1] [--steps 400] [--batch 32] [--workers 2] [--json]
 */
import { existsSync } from 'node:fs';
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { parse } from 'csv-parse/sync';
import { createHash } from 'node:crypto';
import { OBSERVATIONS, observationIndex } from '../core/labeler/index.ts';
import { aucInterval, type AucInterval } from '../core/metrics/index.ts';
import { BUILTIN_TEMPLATES, MedClipModel, expandTemplate } from '../core/model/index.ts';
import { embedImageTable } from '../eval/evaluate-model.ts';
import { selectBackend } from '../train/backend.ts';
import { checkpointFolder } from '../train/checkpoint.ts';
import { loadModelConfig } from '../train/config.ts';
import { exportRun } from '../train/export.ts';
import { train } from '../train/trainer.ts';
import { benchArgs } from './harness.ts';

const { args, say, result } = benchArgs({
  fractions: { type: 'string', default: '0.25,0.5,1' },
  steps: { type: 'string', default: '400' },
  batch: { type: 'string', default: '32' },
  workers: { type: 'string', default: '2' },
  seed: { type: 'string', default: '0' },
  data: { type: 'string', default: join(import.meta.dirname, '../../shared/data') },
  out: { type: 'string', default: join(import.meta.dirname, '../runs/learning-curve') },
});
const fractions = args.fractions!.split(',').map(Number);
if (fractions.some((f) => !(f > 0 && f <= 1))) {
  console.error('bench: --fractions must be numbers in (0, 1]');
  process.exit(1);
}
const steps = Number(args.steps);
const batch = Number(args.batch);
const workers = Number(args.workers);
const seed = Number(args.seed);
const data = resolve(args.data!);
const out = resolve(args.out!);
const table = join(data, 'images.csv');
const reports = join(data, 'reports/iu_reports.csv');

interface FractionResult {
  fraction: number;
  trainImages: number;
  steps: number;
  batch: number;
  /** Per source of the val split: per finding, AUC with its interval (findings with at least one positive and negative). */
  val: Record<string, Record<string, AucInterval>>;
}

/** The table's train rows kept at `fraction`: per source, the rows whose seeded hash ranks in the first share (nested). */
async function subsetTable(fraction: number, file: string): Promise<number> {
  const text = await readFile(table, 'utf8');
  const lines = text.split('\n').filter((l) => l.length > 0);
  const header = lines[0]!;
  const rows = parse(text, { columns: true, skip_empty_lines: true }) as Record<string, string>[];
  if (rows.length !== lines.length - 1) throw new Error(`${table}: quoted line breaks are not supported here`);
  const rank = (r: Record<string, string>) => createHash('sha256').update(`${seed}:${r.path}`).digest('hex');
  const bySource = new Map<string, number[]>();
  rows.forEach((r, i) => {
    if (r.split !== 'train') return;
    if (!bySource.has(r.source ?? '')) bySource.set(r.source ?? '', []);
    bySource.get(r.source ?? '')!.push(i);
  });
  const keep = new Set<number>();
  for (const idx of bySource.values()) {
    idx.sort((a, b) => (rank(rows[a]!) < rank(rows[b]!) ? -1 : 1));
    for (const i of idx.slice(0, Math.round(idx.length * fraction))) keep.add(i);
  }
  // val rows stay (the trainer validates on them); only train rows are thinned
  const kept = rows.flatMap((r, i) => (r.split !== 'train' || keep.has(i) ? [lines[i + 1]!] : []));
  await writeFile(`${file}.tmp`, [header, ...kept].join('\n') + '\n');
  await rename(`${file}.tmp`, file);
  return keep.size;
}

/** Per source, per finding AUC (with interval) of findings mode on the val split. */
async function score(modelDir: string): Promise<FractionResult['val']> {
  const model = await MedClipModel.load(modelDir, { threads: 2 });
  try {
    const { items } = await embedImageTable(model, { images: table, split: 'val' });
    const bySource = new Map<string, typeof items>();
    for (const it of items) {
      const s = it.record.meta.source ?? '';
      if (!bySource.has(s)) bySource.set(s, []);
      bySource.get(s)!.push(it);
    }
    const val: FractionResult['val'] = {};
    for (const [source, members] of bySource) {
      const probs = await Promise.all(members.map((m) => model.findings(m.embedding)));
      val[source] = {};
      for (const finding of OBSERVATIONS) {
        const f = observationIndex(finding);
        const labelled = members.flatMap((m, i) => (m.record.labels[f] === 0 || m.record.labels[f] === 1 ? [i] : []));
        const interval = aucInterval(
          labelled.map((i) => members[i]!.record.labels[f]!),
          labelled.map((i) => probs[i]![f]!.probability),
        );
        if (interval) val[source]![finding] = interval;
      }
    }
    return val;
  } finally {
    await model.close();
  }
}

async function runFraction(fraction: number): Promise<FractionResult> {
  const dir = join(out, `f${Math.round(fraction * 100)}`);
  const resultFile = join(dir, 'result.json');
  if (existsSync(resultFile)) {
    const done = JSON.parse(await readFile(resultFile, 'utf8')) as FractionResult;
    if (done.steps === steps && done.batch === batch) {
      say(`${fraction * 100}%: scored earlier (${resultFile})`);
      return done;
    }
  }
  await mkdir(dir, { recursive: true });
  const subset = join(dir, 'images.csv');
  const trainImages = await subsetTable(fraction, subset);
  const run = join(dir, 'run');
  const resume = !!checkpointFolder(join(run, 'checkpoint-latest'));
  say(`${fraction * 100}%: ${trainImages} train images, ${steps} steps x ${batch}${resume ? ' (resuming)' : ''}`);
  const started = performance.now();
  let lastSaid = 0;
  await train({
    config: await loadModelConfig(join(import.meta.dirname, '../configs/tiny.json')),
    images: subset,
    root: data,
    reports,
    out: run,
    cacheDir: join(out, '.cache'),
    steps,
    batch,
    workers,
    warmup: Math.min(50, Math.floor(steps / 10)),
    evalEvery: Math.max(50, Math.floor(steps / 4)),
    seed,
    resume,
    onStep: (s) => {
      if (performance.now() - lastSaid > 60_000) {
        lastSaid = performance.now();
        say(`  step ${s.step}/${s.total} loss ${s.loss.toFixed(3)} (${s.pairsPerSecond.toFixed(1)} pairs/s)`);
      }
    },
  });
  const modelDir = join(dir, 'model');
  const parityImages = [await readFile(join(data, 'images/nih/00001280_004.png'))];
  const paritySentences = Object.values(BUILTIN_TEMPLATES).flatMap((t) => expandTemplate(t).slice(0, 1));
  // the last weights (the same step budget for every fraction), not the best by val: val scores them
  await exportRun({ run, out: modelDir, checkpoint: 'latest', parityImages, paritySentences });
  const value: FractionResult = { fraction, trainImages, steps, batch, val: await score(modelDir) };
  await writeFile(resultFile, JSON.stringify(value, null, 2));
  say(`${fraction * 100}%: trained and scored in ${((performance.now() - started) / 60000).toFixed(1)} min`);
  return value;
}

await selectBackend('auto');
const results: FractionResult[] = [];
for (const f of fractions) results.push(await runFraction(f));

const fmt = (x?: AucInterval) => (x ? `${x.auc.toFixed(2)} [${x.low.toFixed(2)},${x.high.toFixed(2)}]` : '-');
for (const source of Object.keys(results[0]!.val).sort()) {
  say(`\nval ${source}: per-finding AUC [95% interval] by share of the training images`);
  say(`| finding (pos/neg) | ${results.map((r) => `${r.fraction * 100}% (${r.trainImages})`).join(' | ')} |`);
  say(`|---|${results.map(() => '---').join('|')}|`);
  for (const finding of OBSERVATIONS) {
    const first = results[0]!.val[source]?.[finding];
    if (!first || first.positives < 3) continue; // fewer positives than that: an interval spanning most of [0, 1]
    say(`| ${finding} (${first.positives}/${first.negatives}) | ${results.map((r) => fmt(r.val[source]?.[finding])).join(' | ')} |`);
  }
}
result({ steps, batch, seed, fractions: results });
