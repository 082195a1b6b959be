/** `medclip eval`: zero-shot and retrieval metrics of a model bundle on an image table (and report table). */
import type { Command } from 'commander';
import { MedClipModel } from '../core/model.ts';
import { evaluateModel, type EvalResult } from '../train/evaluate.ts';
import { CliError } from './errors.ts';

const pct = (x: number | undefined) => (x === undefined || Number.isNaN(x) ? '  -  ' : x.toFixed(3));

export function formatEval(r: EvalResult): string {
  const lines: string[] = [];
  for (const [group, tasks] of Object.entries(r.zeroshot ?? {})) {
    for (const [name, t] of Object.entries(tasks)) {
      lines.push(`zero-shot ${name} [${group}] n=${t.n}: accuracy ${pct(t.accuracy)}${t.auc !== undefined ? `, AUC ${pct(t.auc)}` : ''}`);
      lines.push(`  recall: ${Object.entries(t.recall).map(([c, v]) => `${c} ${pct(v)}`).join(', ')}`);
      lines.push(`  confusion (rows true, columns predicted): ${JSON.stringify(t.confusion)}`);
    }
  }
  for (const [group, rr] of Object.entries(r.retrieval ?? {})) {
    const f = (p?: { p1: number; p5: number; p10: number; queries: number }) => (p ? `P@1 ${pct(p.p1)} P@5 ${pct(p.p5)} P@10 ${pct(p.p10)} (${p.queries} queries)` : '-');
    lines.push(`retrieval [${group}]: image->text ${f(rr.imageToText)}; text->image ${f(rr.textToImage)}`);
  }
  if (r.skipped.length) lines.push(`skipped ${r.skipped.length} unreadable image(s): ${r.skipped.slice(0, 10).map((s) => `${s.id} (${s.reason})`).join(', ')}`);
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
  const retrieval = Object.fromEntries(Object.entries(r.retrieval ?? {}).map(([g, rr]) => [g, { ...(rr.imageToText ?? {}), textToImage: rr.textToImage }]));
  return { ...(r.zeroshot ? { zeroshot } : {}), ...(r.retrieval ? { retrieval } : {}), skipped: r.skipped };
}

export function registerEval(program: Command): void {
  program
    .command('eval')
    .description('zero-shot classification and image<->text retrieval metrics of a model bundle')
    .requiredOption('--model <dir>', 'model bundle folder')
    .requiredOption('--images <file>', 'image table (CSV) with the 14 label columns')
    .option('--root <dir>', "folder the image paths start from (default: the table's folder)")
    .option('--split <name>', 'only image rows of this split (e.g. val)')
    .option('--reports <file>', 'report table: sentences for retrieval')
    .option('--report-split <name>', 'only report rows of this split')
    .option('--task <name>', 'zeroshot, retrieval or all', 'zeroshot')
    .option('--group-by <column>', 'report metrics per value of this column (e.g. source)')
    .option('--threads <n>', 'onnxruntime threads', '2')
    .option('--json', 'print one JSON object')
    .action(async (opts) => {
      if (!['zeroshot', 'retrieval', 'all'].includes(opts.task)) throw new CliError(`--task must be zeroshot, retrieval or all, got "${opts.task}"`);
      if (opts.task !== 'zeroshot' && !opts.reports) throw new CliError('--task retrieval/all needs --reports');
      const model = await MedClipModel.load(opts.model, { threads: Number(opts.threads) || 1 });
      try {
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
