/** `medclip label`: label report sentences, or evaluate report-level labels against the table's own. */
import { createWriteStream } from 'node:fs';
import { once } from 'node:events';
import type { Command } from 'commander';
import { labelReport, evaluateLabels, formatEvaluation, type UncertainAs, labelRowToObject, type LabelRow } from '../core/labeler/index.ts';
import { readReports, reportText, DEFAULT_TEXT_COLUMNS } from '../core/tables/index.ts';
import { CliError } from './errors.ts';

interface LabelOptions {
  reports: string;
  out?: string;
  eval?: boolean;
  json?: boolean;
  split?: string;
  idColumn?: string;
  textColumns: string;
  uncertainAs: UncertainAs;
}

export function registerLabel(program: Command): void {
  program
    .command('label')
    .description('label report sentences with the 14 CheXpert observations (rule-based), or evaluate the labeler')
    .requiredOption('--reports <file>', 'report table (CSV or JSONL) with an id column and text columns')
    .option('--out <file>', 'write labeled sentences as JSONL here (default: standard output)')
    .option('--eval', "compare report-level labels with the table's 14 label columns")
    .option('--json', 'with --eval: print one JSON object instead of a table')
    .option('--split <name>', 'use only rows whose split column equals this (e.g. val)')
    .option('--id-column <name>', 'id column (default: first of id, report_id, uid, study_id)')
    .option('--text-columns <list>', 'comma-separated text columns', DEFAULT_TEXT_COLUMNS.join(','))
    .option('--uncertain-as <positive|negative>', 'with --eval: how an uncertain label counts (MedCLIP maps uncertain to 0)', 'negative')
    .addHelpText(
      'after',
      '\nExamples:\n  medclip label --reports reports.csv --out sentences.jsonl\n  medclip label --reports ../shared/data/reports/iu_reports.csv --split val --eval',
    )
    .action(async (opts: LabelOptions) => {
      if (opts.uncertainAs !== 'positive' && opts.uncertainAs !== 'negative')
        throw new CliError(`--uncertain-as must be positive or negative, got "${opts.uncertainAs}"`);
      const tableOptions = {
        textColumns: opts.textColumns
          .split(',')
          .map((c) => c.trim())
          .filter(Boolean),
        ...(opts.split !== undefined ? { split: opts.split } : {}),
        ...(opts.idColumn !== undefined ? { idColumn: opts.idColumn } : {}),
      };
      if (opts.eval) {
        const pairs: { predicted: LabelRow; reference: LabelRow }[] = [];
        for await (const report of readReports(opts.reports, tableOptions)) {
          if (!report.labels) throw new CliError(`${opts.reports}: --eval needs the 14 observation columns`);
          pairs.push({ predicted: labelReport(reportText(report)).labels, reference: report.labels });
        }
        if (pairs.length === 0) throw new CliError(`${opts.reports}: no reports${opts.split ? ` in split "${opts.split}"` : ''}`);
        const result = evaluateLabels(pairs, opts.uncertainAs);
        console.log(opts.json ? JSON.stringify(result) : formatEvaluation(result));
        return;
      }
      const out = opts.out ? createWriteStream(opts.out) : process.stdout;
      let reports = 0;
      let sentences = 0;
      for await (const report of readReports(opts.reports, tableOptions)) {
        reports++;
        for (const s of labelReport(reportText(report)).sentences) {
          sentences++;
          const line = JSON.stringify({ reportId: report.id, index: s.index, text: s.text, labels: labelRowToObject(s.labels) });
          if (!out.write(line + '\n')) await once(out, 'drain');
        }
      }
      if (opts.out) {
        out.end();
        await once(out, 'finish');
        console.error(`labeled ${sentences} sentences from ${reports} reports -> ${opts.out}`);
      }
    });
}
