/** `medclip eval`: zero-shot and retrieval metrics of a model bundle on an image table (and report table). */
import type { Command } from 'commander';
import { MedClipModel, VALIDATION_THRESHOLD, fitFindingsTemperature, type FindingEvidence, type ModelCard } from '../core/model/index.ts';
import { evaluateModel, type EvalResult } from '../eval/evaluate-model.ts';
import { RANK_WEIGHTS, type RankWeights } from '../core/search/index.ts';
import { evaluateSearch, fitRelevance, readJudgedQueries, readModifierQueries } from '../eval/evaluate-search.ts';
import { writeFindingsTemperature } from '../train/export.ts';
import { CliError } from './errors.ts';
import { writeCardFor } from '../eval/model-card.ts';

const pct = (x: number | undefined) => (x === undefined || Number.isNaN(x) ? '  -  ' : x.toFixed(3));

export function formatEval(r: EvalResult): string {
  const lines: string[] = [];
  for (const [group, g] of Object.entries(r.findings ?? {})) {
    lines.push(
      `findings [${group}] n=${g.n}: mean AUC ${pct(g.meanAuc)} over ${g.meanOver.length} finding(s) with >= 9 positives and negatives; text->image mean P@10 ${pct(g.meanP10)}`,
    );
    for (const [name, f] of Object.entries(g.findings)) {
      if (!f.positives) continue;
      lines.push(
        `  ${name.padEnd(27)} AUC ${pct(f.auc)}  (${f.positives} pos / ${f.negatives} neg)${g.textToImage[name] !== undefined ? `  P@10 ${pct(g.textToImage[name])}` : ''}`,
      );
    }
  }
  for (const [group, tasks] of Object.entries(r.zeroshot ?? {})) {
    for (const [name, t] of Object.entries(tasks)) {
      lines.push(`zero-shot ${name} [${group}] n=${t.n}: accuracy ${pct(t.accuracy)}${t.auc !== undefined ? `, AUC ${pct(t.auc)}` : ''}`);
      lines.push(
        `  recall: ${Object.entries(t.recall)
          .map(([c, v]) => `${c} ${pct(v)}`)
          .join(', ')}`,
      );
      lines.push(`  confusion (rows true, columns predicted): ${JSON.stringify(t.confusion)}`);
    }
  }
  for (const [group, rr] of Object.entries(r.retrieval ?? {})) {
    const f = (p?: { p1: number; p5: number; p10: number; queries: number }) =>
      p ? `P@1 ${pct(p.p1)} P@5 ${pct(p.p5)} P@10 ${pct(p.p10)} (${p.queries} queries)` : '-';
    lines.push(`retrieval [${group}]: image->text ${f(rr.imageToText)}; text->image ${f(rr.textToImage)}`);
  }
  if (r.skipped.length)
    lines.push(
      `skipped ${r.skipped.length} unreadable image(s): ${r.skipped
        .slice(0, 10)
        .map((s) => `${s.id} (${s.reason})`)
        .join(', ')}`,
    );
  return lines.join('\n');
}

/** The compact JSON form: { zeroshot: { group: { accuracy, auc, n } }, retrieval: { group: { p1, p5, p10 } } } per main task. */
export function compactEval(r: EvalResult): Record<string, unknown> {
  const zeroshot = Object.fromEntries(
    Object.entries(r.zeroshot ?? {}).map(([g, tasks]) => {
      const t = tasks.pneumonia ?? Object.values(tasks)[0];
      return [g, t ? { accuracy: t.accuracy, auc: t.auc, n: t.n, task: t.task, tasks } : {}];
    }),
  );
  const retrieval = Object.fromEntries(
    Object.entries(r.retrieval ?? {}).map(([g, rr]) => [g, { ...(rr.imageToText ?? {}), textToImage: rr.textToImage }]),
  );
  return {
    ...(r.findings ? { findings: r.findings } : {}),
    ...(r.zeroshot ? { zeroshot } : {}),
    ...(r.retrieval ? { retrieval } : {}),
    skipped: r.skipped,
  };
}

export function registerEval(program: Command): void {
  program
    .command('eval')
    .description('zero-shot classification and image<->text retrieval metrics of a model bundle')
    .requiredOption('--model <dir>', 'model bundle folder')
    .option('--images <file>', 'image table (CSV) with the 14 label columns (not needed for --task search)')
    .option('--queries <file>', 'search: the judged query set', 'samples/queries/search-val.json')
    .option(
      '--modifier-queries <file>',
      'search: queries with side, extent and location, judged by MeSH (P@5)',
      'samples/queries/modifiers-val.json',
    )
    .option('--tune', 'search: sweep the fusion weights (agreement, report agreement, lexical) and report each')
    .option('--tune-hubs', 'search, with --images: sweep the hubness weight of image -> reports and report each')
    .option('--pair-images', 'search, with --images: also judge report-mediated text -> images on a label-matched pairing')
    .option('--fit-relevance', 'search: fit the relevance calibration (logistic) on the judged hits and print it')
    .option('--root <dir>', "folder the image paths start from (default: the table's folder)")
    .option('--split <name>', 'only image rows of this split (e.g. val)')
    .option('--reports <file>', 'report table: sentences for retrieval')
    .option('--report-split <name>', 'only report rows of this split')
    .option(
      '--task <name>',
      'zeroshot, retrieval, findings, search (judged text queries; with --images also text -> images and image -> report hubs) or all',
      'zeroshot',
    )
    .option('--fit-temperature', "findings: fit the findings-mode temperature on these images and store it in the model's manifest")
    .option(
      '--card',
      'write the model card (card.json) from these images: per-finding AUC with 95% intervals, per source and pooled; marks findings validated',
    )
    .option(
      '--card-pool <sources>',
      'with --card: the sources pooled for the verdict (default: those whose median patient age is 18 or more)',
    )
    .option('--card-threshold <auc>', 'with --card: the pooled lower bound a validated finding reaches', String(VALIDATION_THRESHOLD))
    .option('--group-by <column>', 'report metrics per value of this column (e.g. source)')
    .option('--threads <n>', 'onnxruntime threads', '2')
    .option('--json', 'print one JSON object')
    .action(async (opts) => {
      if (!['zeroshot', 'retrieval', 'findings', 'search', 'all'].includes(opts.task))
        throw new CliError(`--task must be zeroshot, retrieval, findings, search or all, got "${opts.task}"`);
      if (opts.task === 'search') {
        if (!opts.reports) throw new CliError('--task search needs --reports (with the 14 label columns)');
        const queries = await readJudgedQueries(opts.queries).catch((err: Error) => {
          throw new CliError(`${opts.queries}: ${(err as NodeJS.ErrnoException).code === 'ENOENT' ? 'file not found' : err.message}`);
        });
        const modifierQueries = await readModifierQueries(opts.modifierQueries).catch((err: Error) => {
          throw new CliError(
            `${opts.modifierQueries}: ${(err as NodeJS.ErrnoException).code === 'ENOENT' ? 'file not found' : err.message}`,
          );
        });
        const model = await MedClipModel.load(opts.model, { threads: Number(opts.threads) || 1 });
        try {
          const grid = [0, 0.025, 0.05, 0.1, 0.2];
          const lexicalGrid = [0, 0.01, 0.025, 0.05, 0.1];
          const weights: RankWeights[] = opts.tune
            ? grid.flatMap((agreement) =>
                grid.flatMap((reportAgreement) => lexicalGrid.map((lexical) => ({ ...RANK_WEIGHTS, agreement, reportAgreement, lexical }))),
              )
            : opts.tuneHubs
              ? [0, 0.1, 0.2, 0.3, 0.5, 1].map((hub) => ({ ...RANK_WEIGHTS, hub }))
              : [RANK_WEIGHTS];
          if (opts.tuneHubs && !opts.images) throw new CliError('--tune-hubs needs --images (image queries)');
          const results = await evaluateSearch(model, {
            reports: opts.reports,
            reportSplit: opts.reportSplit,
            queries,
            modifierQueries,
            weights,
            pairImages: !!opts.pairImages,
            ...(opts.images ? { images: { table: opts.images, root: opts.root, split: opts.split ?? 'val' } } : {}),
          });
          if (opts.fitRelevance) console.error(`relevance calibration: ${JSON.stringify(fitRelevance(results[0]!.judged))}`);
          const shown = results.map(({ judged: _j, ...r }) => r);
          if (opts.json) console.log(JSON.stringify(opts.tune || opts.tuneHubs ? shown.map(({ queries: _q, ...r }) => r) : shown[0]));
          else
            for (const r of results)
              console.log(
                `search [weights agreement ${r.weights.agreement}, report ${r.weights.reportAgreement}, lexical ${r.weights.lexical}] ${r.reports} reports / ${r.sentences} sentences: P@10 ${pct(r.p10)}, negated purity ${pct(r.negatedPurity)}, relevance relevant ${pct(r.relevance.relevant)} vs irrelevant ${pct(r.relevance.irrelevant)}; by kind: ${Object.entries(
                  r.byKind,
                )
                  .map(([k, v]) => `${k} ${pct(v.score)} (${v.queries})`)
                  .join(', ')}${
                  r.textToImages
                    ? `; text -> images P@10 ${pct(r.textToImages.p10)} (${Object.entries(r.textToImages.byFinding)
                        .map(([f, v]) => `${f} ${pct(v.p10)}`)
                        .join(', ')})`
                    : ''
                }${r.pairedTextToImages ? `; report-mediated text -> images P@10 ${pct(r.pairedTextToImages.p10)} (${r.pairedTextToImages.paired} of ${r.pairedTextToImages.images} images paired by labels)` : ''}${r.modifiers ? `; modifier queries P@5 ${pct(r.modifiers.p5)} (${r.modifiers.queries.length})` : ''}${r.hubShare ? `; image -> reports (hub weight ${r.weights.hub}): hub share ${pct(r.hubShare.share)} of ${r.hubShare.queries} image queries, finding match@5 ${pct(r.hubShare.findingMatch)}` : ''}`,
              );
        } finally {
          await model.close();
        }
        return;
      }
      if (opts.card) {
        if (!opts.images) throw new CliError('--card needs --images (a labelled table; its val split: --split val)');
        const threshold = Number(opts.cardThreshold);
        if (!(threshold > 0.5 && threshold <= 1))
          throw new CliError(`--card-threshold must be an AUC above 0.5 and at most 1, got "${opts.cardThreshold}"`);
        const card = await writeCardFor(opts.model, {
          images: opts.images,
          root: opts.root,
          split: opts.split,
          threshold,
          ...(opts.cardPool
            ? {
                pool: String(opts.cardPool)
                  .split(',')
                  .map((x: string) => x.trim())
                  .filter(Boolean),
              }
            : {}),
        });
        console.error(`model card written to ${opts.model}/card.json; the model's identity changed: rebuild its index bundles`);
        if (opts.json) console.log(JSON.stringify(card));
        else console.log(formatCard(card));
        return;
      }
      if (!opts.images) throw new CliError(`--task ${opts.task} needs --images`);
      if ((opts.task === 'retrieval' || opts.task === 'all') && !opts.reports) throw new CliError('--task retrieval/all needs --reports');
      if (opts.fitTemperature && opts.task !== 'findings') throw new CliError('--fit-temperature goes with --task findings');
      let model = await MedClipModel.load(opts.model, { threads: Number(opts.threads) || 1 });
      try {
        if (opts.fitTemperature) {
          // fit on margins (independent of any stored temperature), store, then report with the fitted value
          const fit = await evaluateModel(model, {
            images: opts.images,
            root: opts.root,
            split: opts.split,
            task: 'findings',
            findingsTemperature: 1,
          });
          const t = fitFindingsTemperature(fit.findingCases ?? [], model.manifest.logitScale);
          await writeFindingsTemperature(model.dir, {
            temperature: t.temperature,
            nll: t.nll,
            fittedOn: `${opts.images}${opts.split ? ` (split ${opts.split})` : ''}, ${fit.findingCases?.length ?? 0} labelled cases`,
          });
          console.error(
            `findings temperature ${t.temperature.toFixed(3)} (NLL ${t.nll.toFixed(4)}) written to ${model.dir}/manifest.json; rebuild indexes made with this model (its identity changed)`,
          );
          await model.close();
          model = await MedClipModel.load(opts.model, { threads: Number(opts.threads) || 1 });
        }
        const result = await evaluateModel(model, {
          images: opts.images,
          root: opts.root,
          split: opts.split,
          reports: opts.reports,
          reportSplit: opts.reportSplit,
          task: opts.task,
          groupBy: opts.groupBy,
        });
        console.log(opts.json ? JSON.stringify(compactEval(result)) : formatEval(result));
      } finally {
        await model.close();
      }
    });
}

/** A card as a table: per finding, the verdict, the pooled AUC with its interval, and each source's AUC. */
export function formatCard(card: ModelCard): string {
  const sources = Object.keys(card.evaluatedOn.bySource);
  const auc = (e: FindingEvidence) => (e.auc === undefined ? '-' : `${e.auc.toFixed(2)}`);
  const lines = [
    `model card of ${card.model}: pooled over ${card.evaluatedOn.pool.join(' + ')} (${card.evaluatedOn.pooled} images), threshold ${card.threshold}`,
    `${'finding'.padEnd(28)} ${'verdict'.padEnd(12)} ${'pooled AUC [95% CI]'.padEnd(22)} ${'pos/neg'.padEnd(9)} ${sources.map((s) => s.padEnd(9)).join(' ')}`,
  ];
  for (const [name, f] of Object.entries(card.findings))
    lines.push(
      `${name.padEnd(28)} ${(f.validated ? 'validated' : 'unvalidated').padEnd(12)} ${(f.auc === undefined ? '-' : `${f.auc.toFixed(2)} [${f.ci95![0].toFixed(2)}, ${f.ci95![1].toFixed(2)}]`).padEnd(22)} ${`${f.positives}/${f.negatives}`.padEnd(9)} ${sources.map((s) => auc(f.bySource[s]!).padEnd(9)).join(' ')}`,
    );
  return lines.join('\n');
}
