/**
 * The project's one retry policy for calls to other functions (Lambda shards and embedding workers): p-retry with
 * exponential backoff. A failure is retried `retries` times, waiting backoffMs, 2 x backoffMs, ... between tries
 * (no jitter by default: tests stay deterministic; the AWS SDK's own retry already spreads throttling retries).
 */
import pRetry from 'p-retry';

export interface RetryPolicy {
  /** Retries after the first try (total tries = retries + 1). */
  retries: number;
  /** Wait before the first retry, doubled for each next one. */
  backoffMs: number;
  /** Whether an error is worth another try (default: every error). */
  shouldRetry?: (error: Error) => boolean;
}

/** Two retries, 200 ms then 400 ms: a cold or throttled Lambda usually answers by then; a broken one fails fast. */
export const DEFAULT_RETRY: RetryPolicy = { retries: 2, backoffMs: 200 };

/** Run `attempt` under the policy; `onFailure` sees each failed try (1-based) and its error. The last error is thrown. */
export function withRetry<T>(
  attempt: () => Promise<T>,
  policy: Partial<RetryPolicy> = {},
  onFailure?: (tryNumber: number, error: Error) => void,
): Promise<T> {
  const p = { ...DEFAULT_RETRY, ...policy };
  return pRetry(attempt, {
    retries: p.retries,
    minTimeout: p.backoffMs,
    factor: 2,
    randomize: false,
    onFailedAttempt: ({ error, attemptNumber }) => onFailure?.(attemptNumber, error),
    shouldRetry: p.shouldRetry ? ({ error }) => p.shouldRetry!(error) : undefined,
  });
}
