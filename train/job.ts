/**
 * A training job with S3 in and out (`medclip train-job`, the AWS Batch GPU job's entry point): the input prefix
 * (tables, images, reports) is downloaded into a work folder, the run prefix too when an earlier attempt left
 * checkpoints there (the job then resumes from its latest), `medclip train` runs on it, and the run folder is uploaded
 * every `syncMinutes` and once more at the end, whatever the outcome: a Spot reclaim or a retry loses at most one
 * sync interval. Paths in the training options are relative to the input folder; `--config tiny` names a shipped
 * config.
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, rm } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { checkpointFolder } from './checkpoint.ts';
import { downloadPrefix, FolderUploader } from './s3-folders.ts';
import { TrainError } from './options.ts';

export interface TrainJobOptions {
  /** s3://bucket/prefix holding the training inputs. */
  input: string;
  /** s3://bucket/prefix of the run folder (checkpoints, tokenizer, log): read to resume, written as it goes. */
  run: string;
  /** `medclip train` options, paths relative to the input folder (no --out: the job sets it). */
  trainArgs: string[];
  workDir: string;
  syncMinutes: number;
  log: (line: string) => void;
}

const BIN = fileURLToPath(new URL('../bin/medclip.js', import.meta.url));
const CONFIGS = fileURLToPath(new URL('../configs/', import.meta.url));

/** The training options with `--config NAME` resolved to a shipped config when the input folder has no such file. */
export function jobTrainArgs(args: string[], inputDir: string): string[] {
  for (const flag of ['--out', '--resume', '--cache-dir'])
    if (args.some((a) => a === flag || a.startsWith(`${flag}=`))) throw new TrainError(`train-job sets ${flag} itself; leave it out`);
  return args.map((a, i) => {
    if (args[i - 1] !== '--config' || existsSync(resolve(inputDir, a))) return a;
    const shipped = join(CONFIGS, a.endsWith('.json') ? a : `${a}.json`);
    return existsSync(shipped) ? shipped : a;
  });
}

/** Run the job; resolves to the training's exit code (0 = trained, and the run uploaded). */
export async function runTrainJob(o: TrainJobOptions): Promise<number> {
  const inputDir = join(o.workDir, 'input');
  const runDir = join(o.workDir, 'run');
  await mkdir(inputDir, { recursive: true });
  const inputs = await downloadPrefix(o.input, inputDir);
  if (inputs === 0) throw new TrainError(`${o.input}: nothing to train on (no objects under the prefix)`);
  // S3 holds the run: a local copy left by an earlier attempt in the same work folder is not trusted
  await rm(runDir, { recursive: true, force: true });
  const previous = await downloadPrefix(o.run, runDir);
  const resume = !!checkpointFolder(join(runDir, 'checkpoint-latest'));
  o.log(
    `train-job: ${inputs} input file(s) from ${o.input}; ${resume ? `resuming the run in ${o.run} (${previous} file(s))` : `new run ${o.run}`}`,
  );
  const args = [
    BIN,
    'train',
    ...jobTrainArgs(o.trainArgs, inputDir),
    '--out',
    runDir,
    '--cache-dir',
    join(o.workDir, 'cache'),
    ...(resume ? ['--resume'] : []),
  ];
  const uploader = new FolderUploader(runDir, o.run);
  let syncing: Promise<unknown> = Promise.resolve();
  const sync = () => {
    syncing = syncing.then(() =>
      uploader.sync().then(
        (n) => n && o.log(`train-job: uploaded ${n} file(s) to ${o.run}`),
        (err: Error) => o.log(`train-job: upload failed (${err.message}); retried at the next sync`),
      ),
    );
    return syncing;
  };
  const child = spawn(process.execPath, args, { cwd: inputDir, stdio: 'inherit' });
  const timer = setInterval(sync, o.syncMinutes * 60_000);
  // Batch stops a job with SIGTERM (then SIGKILL after a grace period): stop training, then upload what it saved.
  const stop = () => child.kill('SIGTERM');
  process.once('SIGTERM', stop);
  const code = await new Promise<number>((done) => child.once('exit', (c, signal) => done(c ?? (signal ? 143 : 1))));
  clearInterval(timer);
  process.off('SIGTERM', stop);
  await syncing;
  // the last upload must go through: a job that trained but could not save its run has failed (the error says why)
  const sent = await uploader.sync();
  o.log(`train-job: training exited ${code}; the run is in ${o.run}${sent ? ` (${sent} file(s) uploaded last)` : ''}`);
  return code;
}
