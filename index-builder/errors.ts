/** A build, append or delete that cannot go ahead; the message names the file, row or item id, never content. */
export class IndexBuildError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'IndexBuildError';
  }
}
