/** A CLI failure with a message for people and an exit code. Never carries report text or pixels. */
export class CliError extends Error {
  constructor(
    message: string,
    readonly exitCode = 1,
  ) {
    super(message);
    this.name = 'CliError';
  }
}
