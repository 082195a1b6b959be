/**
 * Where image queries are answered: one interface over the local bundle (`localReader`) and the Lambda shard
 * fan-out (core/search/shard-fanout.ts), so the search service, the API and the CLI never care which. Reports are always
 * served from the local bundle (a report archive fits one function; images are what grows).
 */
import { readFile } from 'node:fs/promises';
import type { Hit, ImageMeta } from './items.ts';
import type { ImageFacets } from './facets.ts';
import type { SearchFilter } from './filters.ts';
import type { IndexBundle } from './index-bundle.ts';

export interface IndexReader {
  /** Whether the images are the local bundle's (their pairs with reports can be read); false for shard fan-out. */
  readonly local?: boolean;
  /** Images that can be found (deleted ones excluded). */
  count(): number;
  /** The bundle version (with shards: the highest of theirs). */
  version(): number;
  /** `crossModal`: a text query (core/bundle/anchors.ts: candidates from the shards' text anchors). */
  search(vector: Float32Array, k: number, filter?: SearchFilter, crossModal?: boolean): Promise<Hit<ImageMeta>[]>;
  get(id: string): Promise<ImageMeta | undefined>;
  /** A stored JPEG preview of an image, if the bundle has one. */
  preview(id: string): Promise<Uint8Array | undefined>;
  /** Views, sources and findings with counts, for filters. */
  facets(): Promise<ImageFacets>;
}

export function localReader(index: IndexBundle): IndexReader {
  return {
    local: true,
    count: () => index.count('images'),
    version: () => index.manifest.version,
    search: async (vector, k, filter, crossModal) => index.search('images', vector, { k, filter, ...(crossModal ? { crossModal } : {}) }),
    get: async (id) => index.image(id),
    preview: async (id) => {
      const file = index.thumbnailFile(id);
      return file ? readFile(file).catch(() => undefined) : undefined;
    },
    facets: async () => index.facets(),
  };
}
