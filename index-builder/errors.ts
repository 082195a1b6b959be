/** A build, append or delete that cannot go ahead; the message names the file, row or item id, never content. */
import { MedclipError, type ErrorKind } from '../core/errors.ts';
/** A build that cannot go ahead as asked (input), or whose stored state is broken (data). */
export class IndexBuildError extends MedclipError {
  constructor(message: string, kind: ErrorKind = 'input') {
    super(message, kind);
  }
}
