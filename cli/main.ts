/** The `medclip` command line: one sub-command per stage, each with --help. */
import { readFileSync } from 'node:fs';
import { Command, CommanderError } from 'commander';
import { registerLabel } from './label.ts';
import { registerTrain } from './train.ts';
import { registerTrainJob } from './train-job.ts';
import { registerExport } from './export.ts';
import { registerEval } from './eval.ts';
import { registerIndex } from './index.ts';
import { registerServe } from './serve.ts';
import { registerClassify } from './classify.ts';
import { registerImportModel } from './import-model.ts';
import { CliError } from './errors.ts';
import { EXIT_CODE, MedclipError } from '../core/errors.ts';

/** The package's version, read from package.json beside the CLI sources. */
function packageVersion(): string {
  return (JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string }).version;
}

export function buildProgram(): Command {
  const program = new Command()
    .name('medclip')
    .description('MedCLIP retrieval engine for chest X-rays and radiology reports')
    .version(packageVersion(), '-V, --version', 'print the version')
    // every usage error is one line naming the command's --help (the usage itself is one --help away)
    .configureOutput({ outputError: (text, write) => write(`medclip: ${oneLine(text)}\n`) })
    .exitOverride();
  registerLabel(program);
  registerTrain(program);
  registerTrainJob(program);
  registerExport(program);
  registerEval(program);
  registerIndex(program);
  registerServe(program);
  registerClassify(program);
  registerImportModel(program);
  return program;
}

/** Commander's `error: …` message as one line, with where to find the usage. */
function oneLine(text: string): string {
  const message = text
    .replace(/^error: /, '')
    .trim()
    .split('\n')[0]!;
  return `${message} (see medclip --help)`;
}

/**
 * An unknown option is named before anything else (commander would first complain about a missing required
 * option, then print the whole usage): `medclip index --bogus` says `unknown option '--bogus'`.
 */
function unknownOption(argv: string[]): CliError | undefined {
  const program = buildProgram();
  const [name, ...rest] = argv.slice(2);
  const command = program.commands.find((c) => c.name() === name || c.aliases().includes(name ?? ''));
  if (!command) return undefined;
  const cut = rest.indexOf('--');
  const { unknown } = command.parseOptions(cut < 0 ? rest : rest.slice(0, cut));
  const flag = unknown.find((u) => u.startsWith('-') && u !== '-' && u !== '-h' && u !== '--help');
  return flag === undefined ? undefined : new CliError(`unknown option '${flag.split('=')[0]}' (see medclip ${command.name()} --help)`);
}

/** Run the CLI; returns the exit code instead of exiting, so tests can call it in-process. */
export async function main(argv: string[]): Promise<number> {
  // The AWS SDK's advisory that its releases after January 2027 need Node 22 would be the only multi-line stderr of a
  // command reading S3 on Node 20: the locked SDK runs on 20 (and the Lambda runtime is Node 22).
  process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
  try {
    const unknown = unknownOption(argv);
    if (unknown) throw unknown;
    await buildProgram().parseAsync(argv);
    return 0;
  } catch (err) {
    if (err instanceof CommanderError) return err.exitCode;
    // Errors written for people (core/errors.ts): their message, and the exit code of their kind.
    if (err instanceof MedclipError) {
      console.error(`medclip: ${err.message}`);
      return err instanceof CliError ? err.exitCode : EXIT_CODE[err.kind];
    }
    console.error(`medclip: ${(err as Error).name}: ${(err as Error).message}`);
    return 1;
  }
}
