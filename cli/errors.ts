import { readFile } from 'node:fs/promises';
import { MedclipError } from '../core/errors.ts';
import { fsErrorReason } from '../core/util/index.ts';

/** A CLI usage failure (bad flags, missing files) with a message for people. Never carries report text or pixels. */
export class CliError extends MedclipError {
  constructor(
    message: string,
    readonly exitCode = 1,
  ) {
    super(message, 'input');
  }
}

/** A file named on the command line, read; a failure is one line naming it (not found, permission denied, ...). */
export async function readInputFile(file: string): Promise<Buffer> {
  try {
    return await readFile(file);
  } catch (err) {
    throw new CliError(`${file}: ${(err as NodeJS.ErrnoException).code === 'ENOENT' ? 'file not found' : fsErrorReason(err)}`);
  }
}

/** Work on a file named on the command line: an input error it raises (not an image, too large) names the file. */
export async function namingFile<T>(file: string, work: Promise<T>): Promise<T> {
  try {
    return await work;
  } catch (err) {
    if (err instanceof MedclipError && err.kind === 'input' && !(err instanceof CliError)) throw new CliError(`${file}: ${err.message}`);
    throw err;
  }
}
