/** Small shared tools: bounded caches, retries, environment, limits, seeded randomness, file hashing, worker threads, vector maths. The only way in from outside this folder. */
export * from './cache.ts';
export * from './env.ts';
export * from './file-hash.ts';
export * from './fs-errors.ts';
export * from './limits.ts';
export * from './random.ts';
export * from './read-whole.ts';
export * from './retry.ts';
export * from './simd-dots.ts';
export * from './vectors.ts';
export * from './worker-thread.ts';
