/** `medclip train-job`: `medclip train` with S3 in and out (the AWS Batch GPU job's command; train/job.ts). */
import type { Command } from 'commander';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseS3Uri } from '../core/bundle/index.ts';
import { runTrainJob } from '../train/job.ts';
import { CliError } from './errors.ts';

export function registerTrainJob(program: Command): void {
  program
    .command('train-job')
    .description('run `medclip train` on inputs from S3, uploading the run folder to S3 as it goes (resumes a run found there)')
    .requiredOption('--input <s3-uri>', 's3://bucket/prefix with the tables, images and reports (paths in the train options start there)')
    .requiredOption(
      '--run <s3-uri>',
      's3://bucket/prefix of the run folder: resumed from when it holds checkpoints, written as training goes',
    )
    .option(
      '--sync-minutes <n>',
      'upload the run folder this often',
      (v) => {
        const n = Number(v);
        if (!(n > 0)) throw new CliError(`--sync-minutes must be a positive number, got "${v}"`);
        return n;
      },
      10,
    )
    .option('--work-dir <dir>', 'local work folder (default: a new folder in the system temp folder)')
    .argument('<train-options...>', 'after --: the `medclip train` options, e.g. -- --config base --images images.csv --steps 20000')
    .action(async (trainArgs: string[], opts) => {
      for (const uri of [opts.input, opts.run]) parseS3Uri(uri);
      const code = await runTrainJob({
        input: opts.input,
        run: opts.run,
        trainArgs,
        workDir: opts.workDir ?? (await mkdtemp(join(tmpdir(), 'medclip-job-'))),
        syncMinutes: opts.syncMinutes,
        log: (line) => console.error(line),
      });
      if (code !== 0) throw new CliError(`training exited with code ${code}`, code);
    });
}
