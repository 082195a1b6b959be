/** AWS Lambda's synchronous request (and response) payload limit: the API's body limit and the worker fan-out's request budget. */
export const LAMBDA_PAYLOAD_LIMIT = 6 * 1024 * 1024;
