/**
 * One error model for the whole project. Every error written for people extends `MedclipError` and says what kind
 * of failure it is; the CLI turns the kind into an exit code and the API into an HTTP status, in one place each
 * (no matching on class names). Messages name files, rows and ids, never report text or pixels.
 *
 *   input        the caller's request, flags or files are wrong: fix them and retry      exit 1   HTTP 400
 *   not-found    what was asked for (an image, a report) is not in the index             exit 1   HTTP 404
 *   data         stored data (a bundle, a model, a checkpoint) is missing or corrupt      exit 1   HTTP 500
 *   unavailable  something needed is busy or unreachable (a lock, S3, a shard): retry     exit 75  HTTP 503
 *   internal     a bug                                                                   exit 70  HTTP 500
 */
export type ErrorKind = 'input' | 'not-found' | 'data' | 'unavailable' | 'internal';

export class MedclipError extends Error {
  constructor(
    message: string,
    readonly kind: ErrorKind = 'input',
  ) {
    super(message);
    this.name = new.target.name;
  }
}

/** sysexits(3): 75 EX_TEMPFAIL (try again later), 70 EX_SOFTWARE. */
export const EXIT_CODE: Record<ErrorKind, number> = { input: 1, 'not-found': 1, data: 1, unavailable: 75, internal: 70 };

export const HTTP_STATUS: Record<ErrorKind, 400 | 404 | 500 | 503> = {
  input: 400,
  'not-found': 404,
  data: 500,
  unavailable: 503,
  internal: 500,
};

export const HTTP_TITLE: Record<ErrorKind, string> = {
  input: 'Invalid request',
  'not-found': 'Not found',
  data: 'Stored data error',
  unavailable: 'Unavailable',
  internal: 'Internal error',
};

/** Typed image errors (decoding an upload, a DICOM, a file): the code says what went wrong, the message names no pixel content. */
export type ImageErrorCode = 'empty' | 'unsupported' | 'corrupt' | 'truncated' | 'too-large';

export class ImageError extends MedclipError {
  constructor(
    readonly code: ImageErrorCode,
    message: string,
  ) {
    super(message, 'input');
  }
}
