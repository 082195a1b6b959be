/**
 * The build's streaming plumbing: batches of a corpus, embedded several at a time and committed strictly in order,
 * with the input counted alongside.
 */
/** Count an input's items while the build runs; `count` is set once the whole input has been read. */
export function countInBackground(items: AsyncIterable<unknown>): { count: number | undefined; done: Promise<void> } {
  const counter: { count: number | undefined; done: Promise<void> } = { count: undefined, done: Promise.resolve() };
  counter.done = (async () => {
    let n = 0;
    for await (const _ of items) n++;
    counter.count = n;
  })();
  counter.done.catch(() => {}); // the build reads the same input and reports its errors
  return counter;
}

export async function* batches<T>(source: AsyncIterable<T>, size: number): AsyncGenerator<T[]> {
  let batch: T[] = [];
  for await (const item of source) {
    batch.push(item);
    if (batch.length >= size) {
      yield batch;
      batch = [];
    }
  }
  if (batch.length) yield batch;
}

/** Run `work` over batches with up to `inFlight` at once, committing results strictly in order. */
export async function pipeline<T, R>(
  source: AsyncIterable<T[]>,
  inFlight: number,
  work: (b: T[]) => Promise<R>,
  commit: (b: T[], r: R) => Promise<void>,
): Promise<void> {
  const pending: { batch: T[]; result: Promise<R> }[] = [];
  for await (const batch of source) {
    const result = work(batch);
    result.catch(() => {}); // surfaced when committed
    pending.push({ batch, result });
    if (pending.length >= inFlight) {
      const p = pending.shift()!;
      await commit(p.batch, await p.result);
    }
  }
  while (pending.length) {
    const p = pending.shift()!;
    await commit(p.batch, await p.result);
  }
}
