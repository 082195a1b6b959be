import { MedclipError } from '../core/errors.ts';

/** A CLI usage failure (bad flags, missing files) with a message for people. Never carries report text or pixels. */
export class CliError extends MedclipError {
  constructor(
    message: string,
    readonly exitCode = 1,
  ) {
    super(message, 'input');
  }
}
