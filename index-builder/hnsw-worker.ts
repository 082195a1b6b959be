/** Worker-thread task of `buildShardFiles` (run by piscina): build one shard's HNSW index and write its file. */
import { buildHnsw, type ShardTask } from './hnsw-build.ts';

export default function run(task: ShardTask): true {
  const n = task.deleted.length;
  const index = buildHnsw(task.vectors, task.dim, 0, n, task.params, (i) => task.deleted[i] === 1);
  index.writeIndexSync(task.file);
  return true;
}
