/**
 * Text anchors: exact candidate lists that let a text query find its true nearest images in an HNSW shard.
 *
 * A text embedding lies outside the images' cone (the modality gap), where HNSW's greedy descent stops early:
 * at 100k images, recall@10 of text -> image queries was 0.38 at ef 128 (image queries: 0.997). At build time each
 * image shard stores, for a fixed set of anchor texts (the findings-mode prompts and a seeded sample of the built-in
 * prompt templates, embedded by the bundle's model), the exact top ANCHOR_LIST images of each anchor. A text query
 * takes the lists of its ANCHORS_PER_QUERY nearest anchors plus its own HNSW hits as candidates and ranks them
 * exactly: recall@10 1.0 on the same set (docs/performance.md). Nearby texts rank images alike, which is why a few
 * hundred anchors cover report-like queries.
 */
import { FINDING_PROMPTS, BUILTIN_CLASS_NAMES, BUILTIN_TEMPLATES, expandTemplate } from '../model/index.ts';
import { type Observation, OBSERVATIONS } from '../labeler/index.ts';
import { Rng } from '../util/index.ts';

/**
 * Anchors per bundle, images kept per anchor (best first), anchors an unfiltered query takes and how deep: a filtered
 * one takes more anchors and whole lists, since the filter leaves fewer of each (measured: docs/performance.md).
 */
export const ANCHOR_COUNT = 256;
export const ANCHOR_LIST = 128;
export const ANCHORS_PER_QUERY = 4;
export const ANCHOR_DEPTH = 64;
/**
 * Format 2 also keeps lists per filter group (a finding, a source, a view: the values a filter can require): images
 * kept per anchor and group, the anchors a filtered query takes of those, and at most this many groups per shard.
 */
export const ANCHOR_GROUP_LIST = 32;
export const GROUP_ANCHORS_PER_QUERY = 8;
export const MAX_ANCHOR_GROUPS = 64;
/** The anchors file format written now (1: no per-group lists; still read). */
export const ANCHORS_FORMAT = 'medclip-anchors/2';

/** The anchor texts: every findings-mode prompt, then built-in template prompts drawn with a fixed seed. */
export function anchorTexts(count = ANCHOR_COUNT): string[] {
  const findings = Object.values(FINDING_PROMPTS).flatMap((p) => [...p.positive, ...p.negative]);
  const pool = [...new Set(BUILTIN_CLASS_NAMES.flatMap((c) => expandTemplate(BUILTIN_TEMPLATES[c]!)))].filter((t) => !findings.includes(t));
  const rng = new Rng(20261202);
  const out = findings.slice(0, count);
  while (out.length < count && pool.length) out.push(pool.splice(rng.int(pool.length), 1)[0]!);
  return out;
}

/**
 * Each anchor's exact top `m` among rows [from, to) of `vectors` (labels relative to `from`; -1 where a shard has
 * fewer than m rows), by inner product; deleted rows are left out. With `groups` (each row's filter groups, rows
 * relative to `from`), also each anchor's exact top `mGroup` among each group's rows: a filter against an anchor's
 * sense ("normal chest" with must Pneumonia) leaves few of its general list, but all of its list for that group.
 * One pass over the rows.
 */
export function anchorLists(
  vectors: Float32Array,
  dim: number,
  from: number,
  to: number,
  anchors: Float32Array,
  m = ANCHOR_LIST,
  deleted?: (i: number) => boolean,
  groups?: AnchorGroups,
  mGroup = ANCHOR_GROUP_LIST,
): ShardAnchorLists {
  const count = anchors.length / dim;
  // a small shard keeps no longer lists than it has rows
  m = Math.max(1, Math.min(m, to - from));
  mGroup = Math.max(1, Math.min(mGroup, to - from));
  const general = new TopLists(count, m);
  const perGroup = groups ? new TopLists(groups.keys.length * count, mGroup) : undefined;
  for (let i = from; i < to; i++) {
    if (deleted?.(i)) continue;
    const row = i * dim;
    const g0 = groups ? groups.starts[i - from]! : 0;
    const g1 = groups ? groups.starts[i - from + 1]! : 0;
    for (let a = 0; a < count; a++) {
      const q = a * dim;
      let s = 0;
      for (let d = 0; d < dim; d++) s += vectors[row + d]! * anchors[q + d]!;
      general.offer(a, s, i - from);
      for (let g = g0; g < g1; g++) perGroup!.offer(groups!.ids[g]! * count + a, s, i - from);
    }
  }
  return {
    lists: general.sorted(),
    m,
    ...(perGroup && groups ? { groups: { keys: groups.keys, lists: perGroup.sorted(), m: mGroup } } : {}),
  };
}

/** A shard's anchor lists: `m` per anchor, and (format 2) `groups.m` per group and anchor, group-major. */
export interface ShardAnchorLists {
  lists: Int32Array;
  m: number;
  groups?: { keys: string[]; lists: Int32Array; m: number };
}

/** `lists` exact top-`m` lists of (score, label), kept unsorted (m is small: the worst is found by a scan). */
class TopLists {
  private readonly best: Float32Array;
  private readonly labels: Int32Array;
  private readonly worstAt: Int32Array;
  private readonly worst: Float32Array;
  constructor(
    private readonly lists: number,
    private readonly m: number,
  ) {
    this.best = new Float32Array(lists * m).fill(Number.NEGATIVE_INFINITY);
    this.labels = new Int32Array(lists * m).fill(-1);
    this.worstAt = new Int32Array(lists);
    this.worst = new Float32Array(lists).fill(Number.NEGATIVE_INFINITY);
  }

  offer(list: number, score: number, label: number): void {
    if (score <= this.worst[list]!) return;
    // replace this list's worst kept row, then find the new worst
    const base = list * this.m;
    this.best[base + this.worstAt[list]!] = score;
    this.labels[base + this.worstAt[list]!] = label;
    let w = 0;
    for (let t = 1; t < this.m; t++) if (this.best[base + t]! < this.best[base + w]!) w = t;
    this.worstAt[list] = w;
    this.worst[list] = this.best[base + w]!;
  }

  /** Each list best first, so a query can take a prefix (-1 labels, unfilled places, last). */
  sorted(): Int32Array {
    for (let l = 0; l < this.lists; l++) {
      const base = l * this.m;
      const order = Array.from({ length: this.m }, (_, t) => t).sort((x, y) => this.best[base + y]! - this.best[base + x]!);
      this.labels.set(
        order.map((t) => this.labels[base + t]!),
        base,
      );
    }
    return this.labels;
  }
}

/** Rows' filter groups (rows in order; compressed: row i's group ids are ids[starts[i]..starts[i+1])). */
export interface AnchorGroups {
  keys: string[];
  starts: Int32Array;
  ids: Uint8Array;
}

/** A filter group's key: `finding:`, `source:` or `view:` and the value, lower case (filters are case-insensitive). */
export const groupKey = (kind: 'finding' | 'source' | 'view', value: string) => `${kind}:${value.toLowerCase()}`;

/**
 * Each row's filter groups: its positive findings, its source and its view. The first MAX_ANCHOR_GROUPS keys get
 * lists (findings first: at most 14); a filter on a value left out falls back to the general lists. A shard stores
 * lists only for the groups it has items in (`shardGroups`).
 */
export function anchorGroups(items: { labels: Partial<Record<Observation, number>>; source?: string; view?: string }[]): AnchorGroups {
  const index = new Map<string, number>(OBSERVATIONS.map((o, i) => [groupKey('finding', o), i]));
  const starts = new Int32Array(items.length + 1);
  const ids: number[] = [];
  const add = (key: string) => {
    let g = index.get(key);
    if (g === undefined && index.size < MAX_ANCHOR_GROUPS) {
      g = index.size;
      index.set(key, g);
    }
    if (g !== undefined) ids.push(g);
  };
  items.forEach((item, i) => {
    starts[i] = ids.length;
    for (const o of OBSERVATIONS) if (item.labels[o] === 1) add(groupKey('finding', o));
    if (item.source) add(groupKey('source', item.source));
    if (item.view) add(groupKey('view', item.view));
  });
  starts[items.length] = ids.length;
  return { keys: [...index.keys()], starts, ids: Uint8Array.from(ids) };
}

/** Rows [from, to) of a collection's groups (for one shard), keeping only the groups some of those rows are in. */
export function shardGroups(groups: AnchorGroups, from: number, to: number): AnchorGroups {
  const base = groups.starts[from]!;
  const ids = groups.ids.slice(base, groups.starts[to]!);
  const present = [...new Set(ids)].sort((a, b) => a - b);
  const remap = new Map(present.map((g, i) => [g, i]));
  return {
    keys: present.map((g) => groups.keys[g]!),
    starts: Int32Array.from(groups.starts.subarray(from, to + 1), (s) => s - base),
    ids: ids.map((g) => remap.get(g)!),
  };
}

/**
 * A shard's anchors file: a small JSON header line, then the anchor vectors (float32), the lists (int32) and, in
 * format 2, the per-group lists (int32, group-major, then anchor; header `groups` names them).
 */
export function serializeAnchors(anchors: Float32Array, dim: number, lists: ShardAnchorLists): Uint8Array {
  const count = anchors.length / dim;
  const g = lists.groups;
  const header = g
    ? { format: ANCHORS_FORMAT, count, dim, m: lists.m, groups: g.keys, mGroup: g.m }
    : { format: 'medclip-anchors/1', count, dim, m: lists.m };
  const bytes = (a: Float32Array | Int32Array) => Buffer.from(a.buffer, a.byteOffset, a.byteLength);
  return Buffer.concat([Buffer.from(`${JSON.stringify(header)}\n`), bytes(anchors), bytes(lists.lists), ...(g ? [bytes(g.lists)] : [])]);
}

export class AnchorLists {
  private constructor(
    private readonly anchors: Float32Array,
    private readonly lists: Int32Array,
    readonly count: number,
    readonly dim: number,
    readonly m: number,
    /** Format 2: each filter group's lists (group-major), `m` long, by group key. */
    private readonly byGroup?: { lists: Int32Array; m: number; index: Map<string, number> },
  ) {}

  static parse(bytes: Uint8Array): AnchorLists {
    const nl = bytes.indexOf(0x0a);
    const header = JSON.parse(Buffer.from(bytes.subarray(0, nl)).toString('utf8')) as {
      format: string;
      count: number;
      dim: number;
      m: number;
      groups?: string[];
      mGroup?: number;
    };
    if (header.format !== 'medclip-anchors/1' && header.format !== ANCHORS_FORMAT)
      throw new Error(`unknown anchors format ${header.format}`);
    const start = nl + 1;
    const body = new Uint8Array(bytes.subarray(start)); // an aligned copy (a Buffer's slice() would be a view)
    const vectorBytes = header.count * header.dim * 4;
    const listBytes = header.count * header.m * 4;
    const groups = header.format === ANCHORS_FORMAT ? (header.groups ?? []) : [];
    const mGroup = header.mGroup ?? 0;
    const groupBytes = groups.length * header.count * mGroup * 4;
    if (body.byteLength !== vectorBytes + listBytes + groupBytes) throw new Error('anchors file has the wrong length');
    return new AnchorLists(
      new Float32Array(body.buffer, body.byteOffset, header.count * header.dim),
      new Int32Array(body.buffer, body.byteOffset + vectorBytes, header.count * header.m),
      header.count,
      header.dim,
      header.m,
      header.format === ANCHORS_FORMAT
        ? {
            lists: new Int32Array(body.buffer, body.byteOffset + vectorBytes + listBytes, groupBytes / 4),
            m: mGroup,
            index: new Map(groups.map((key, i) => [key, i])),
          }
        : undefined,
    );
  }

  /** Whether the file has per-group lists (format 2), and whether it has them for this group key. */
  get grouped(): boolean {
    return this.byGroup !== undefined;
  }

  hasGroup(key: string): boolean {
    return this.byGroup?.index.has(key) ?? false;
  }

  /**
   * Candidates for a query under a filter that requires one of `keys` (a finding's single key, or a source or view
   * clause's values): the whole group lists of its `a` nearest anchors, allowed labels only (`allow` applies the
   * rest of the filter).
   */
  groupCandidates(query: Float32Array, keys: string[], a: number, allow: (label: number) => boolean): number[] {
    if (!this.byGroup) return [];
    const { lists, m, index } = this.byGroup;
    const groups = keys.map((k) => index.get(k)).filter((g) => g !== undefined);
    const out = new Set<number>();
    for (const i of this.nearest(query, a))
      for (const g of groups) {
        const base = (g * this.count + i) * m;
        for (let j = 0; j < m; j++) {
          const label = lists[base + j]!;
          if (label >= 0 && allow(label)) out.add(label);
        }
      }
    return [...out];
  }

  /** The `limit` anchors nearest to a query, best first (a small insertion-sorted selection: no sort of all). */
  private nearest(query: Float32Array, limit: number): number[] {
    limit = Math.min(this.count, limit);
    const order: number[] = [];
    const best: number[] = [];
    for (let i = 0; i < this.count; i++) {
      let s = 0;
      const off = i * this.dim;
      for (let d = 0; d < this.dim; d++) s += this.anchors[off + d]! * query[d]!;
      if (order.length === limit && s <= best[limit - 1]!) continue;
      let at = order.length === limit ? limit - 1 : order.length;
      while (at > 0 && best[at - 1]! < s) {
        best[at] = best[at - 1]!;
        order[at] = order[at - 1]!;
        at--;
      }
      best[at] = s;
      order[at] = i;
    }
    return order;
  }

  /**
   * Candidate labels for a query: the first `depth` of the lists of its `a` nearest anchors (by inner product). With
   * `allow` (a filter), only allowed labels, and further anchors (nearest first, up to `maxAnchors`) until `enough`
   * allowed candidates are found: a filter against the query's sense ("normal chest" with must Pneumonia) empties
   * the nearest lists.
   */
  candidates(
    query: Float32Array,
    o: { a?: number; depth?: number; allow?: (label: number) => boolean; enough?: number; maxAnchors?: number } = {},
  ): number[] {
    const depth = Math.min(o.depth ?? this.m, this.m);
    const a = o.a ?? ANCHORS_PER_QUERY;
    const order = this.nearest(query, o.allow ? Math.max(a, o.maxAnchors ?? a) : a);
    const out = new Set<number>();
    for (let r = 0; r < order.length; r++) {
      if (r >= a && (!o.allow || out.size >= (o.enough ?? 0) || r >= (o.maxAnchors ?? a))) break;
      const i = order[r]!;
      for (let j = 0; j < depth; j++) {
        const label = this.lists[i * this.m + j]!;
        if (label >= 0 && (!o.allow || o.allow(label))) out.add(label);
      }
    }
    return [...out];
  }
}
