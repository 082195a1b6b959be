/** AWS Lambda's synchronous request (and response) payload limit: the API's body limit and the worker fan-out's request budget. */
export const LAMBDA_PAYLOAD_LIMIT = 6 * 1024 * 1024;

/**
 * The most hits one search returns (the API's `k`, the CLI's `--k`). Every ranking is computed to this depth
 * whatever `k` asks, so the first k hits of a request are the first k of a request for any larger k.
 */
export const MAX_HITS = 100;
