/**
 * An index bundle's manifest (DESIGN.md): format, collections and their shards, the model that made the vectors,
 * the sha256 of every file; and the live version's manifest read without loading the bundle.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { currentVersion } from './versioned-dir.ts';
import { MedclipError, type ErrorKind } from '../errors.ts';

/**
 * v2 stores each sentence's text at build time and records the labeler and prompt versions, so serving never
 * re-splits a report (a changed labeler would have highlighted the wrong sentence in every older bundle).
 * A v1 bundle is refused, with how to upgrade it (`medclip index --upgrade --out DIR`).
 */
export const INDEX_FORMAT = 'medclip-index/2';

export const INDEX_FORMAT_V1 = 'medclip-index/1';

export const COLLECTIONS = ['images', 'reports'] as const;

export type CollectionName = (typeof COLLECTIONS)[number];

/** A bundle that cannot be used (data), or a search asked wrongly (input). */
export class IndexError extends MedclipError {
  constructor(message: string, kind: ErrorKind = 'data') {
    super(message, kind);
  }
}

export interface ShardManifest {
  /** HNSW file and its metadata file (one JSON line per vector, label = line number). */
  file: string;
  meta: string;
  count: number;
  /** Filter bitsets (core/bundle/filter-bitsets.ts); absent in bundles written before them (filters then read the metadata). */
  filters?: string;
  /** Text anchors with their exact image lists (core/bundle/anchors.ts), for text queries; image shards written since. */
  anchors?: string;
  /**
   * Where each line of `meta` starts (core/bundle/lazy-lines.ts): count + 1 u32 little-endian byte offsets, the last
   * the file's length. A load reads it instead of the metadata (which is read in the background from the first use);
   * absent in bundles written before it (the load then reads the metadata whole).
   */
  metaIndex?: string;
}

export interface CollectionManifest {
  count: number;
  deleted: number;
  dim: number;
  space: 'ip';
  M: number;
  efConstruction: number;
  efSearch: number;
  shards: ShardManifest[];
}

/** Where a PACS-built bundle came from and how far it got (no credentials). */
export interface DicomwebCursor {
  url: string;
  /** The latest StudyDate indexed (YYYYMMDD): the next `--append` run asks for studies from this date on. */
  studyDate?: string;
  allModalities: boolean;
  updatedAt: string;
}

export interface IndexManifest {
  format: string;
  version: number;
  createdAt: string;
  model: { name: string; sha256: string; embedDim: number };
  collections: Partial<Record<CollectionName, CollectionManifest>>;
  /** Reports, one JSON line each: { id, text: { findings, impression, ... }, labels }. */
  reports?: string;
  /** Items that could not be indexed: { collection, id, reason }. */
  errors?: string;
  /** Folder of image thumbnails (`thumbnailName(id)`), when the builder made them. */
  thumbnails?: string;
  /** Versions of what labelled and split the sentences, and of the built-in prompts (format v2). */
  labeler?: { version: string };
  prompts?: { version: string };
  /**
   * One vector per distinct live sentence text (HNSW + metadata lines), so report search ranks wordings and
   * collapses identical sentences without fetching thousands of copies; absent in older bundles (`--upgrade`).
   */
  texts?: {
    file: string;
    meta: string;
    count: number;
    dim: number;
    M: number;
    efConstruction: number;
    efSearch: number;
    /** Whether each text carries its hubness against this bundle's images (`TextMeta.hub`). */
    hubs?: boolean;
    /** Whether each text carries its modifiers (`TextMeta.modifiers`); `--upgrade` adds them. */
    modifiers?: boolean;
  };
  /** BM25 over the distinct sentence texts (core/bundle/lexical.ts), read on the first text query; absent in older bundles. */
  lexical?: { file: string; version: number };
  /** A bundle built from a DICOMweb server: where from, and the cursor an `--append` run continues from. */
  dicomweb?: DicomwebCursor;
  /** How many live images name their report (`ImageMeta.reportId`); absent in older bundles (read from the metadata). */
  pairs?: number;
  sha256: Record<string, string>;
}

/** The live version's manifest of a bundle location, unverified and unloaded (for writers deciding what to do and
 * tools that only report it); undefined where there is no bundle. */
export async function readLiveManifest(location: string): Promise<IndexManifest | undefined> {
  const dir = await currentVersion(location, 'manifest.json').catch(() => undefined);
  if (!dir) return undefined;
  try {
    return JSON.parse(await readFile(join(dir, 'manifest.json'), 'utf8')) as IndexManifest;
  } catch {
    throw new IndexError(`${dir}: manifest.json is not valid JSON`, 'data');
  }
}
