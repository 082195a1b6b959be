/** Search: the one SearchService (text and image queries, classification), query understanding, hybrid report ranking, shard fan-out, and a live source that follows a bundle's versions. The only way in from outside this folder. */
export * from './live-search.ts';
export * from './query-terms.ts';
export * from './rank.ts';
export * from './report-search.ts';
export * from './report-sentences.ts';
export * from './search-service.ts';
export * from './shard-fanout.ts';
export * from './image-hits.ts';
