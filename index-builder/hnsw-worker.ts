/** Worker-thread task of `buildShardFiles` (run by piscina): build one shard's HNSW index and write its file. */
import { anchorLists, type ShardAnchorLists } from '../core/bundle/index.ts';
import { buildHnsw, type ShardTask } from './hnsw-build.ts';

/** Builds the shard's HNSW file; returns the text anchors' lists over the shard when anchors were given. */
export default function run(task: ShardTask): ShardAnchorLists | undefined {
  const n = task.deleted.length;
  const deleted = (i: number) => task.deleted[i] === 1;
  const index = buildHnsw(task.vectors, task.dim, 0, n, task.params, deleted);
  index.writeIndexSync(task.file);
  return task.anchors ? anchorLists(task.vectors, task.dim, 0, n, task.anchors, undefined, deleted, task.groups) : undefined;
}
