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
import { FINDING_PROMPTS } from './findings.ts';
import { BUILTIN_CLASS_NAMES, BUILTIN_TEMPLATES, expandTemplate } from './prompts.ts';
import { Rng } from './random.ts';

/**
 * Anchors per bundle, images kept per anchor (best first), anchors an unfiltered query takes and how deep: a filtered
 * one takes more anchors and whole lists, since the filter leaves fewer of each (measured: docs/performance.md).
 */
export const ANCHOR_COUNT = 256;
export const ANCHOR_LIST = 128;
export const ANCHORS_PER_QUERY = 4;
export const ANCHOR_DEPTH = 64;

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
 * fewer than m rows), by inner product; deleted rows are left out. One pass over the rows, all anchors at once.
 */
export function anchorLists(
  vectors: Float32Array,
  dim: number,
  from: number,
  to: number,
  anchors: Float32Array,
  m = ANCHOR_LIST,
  deleted?: (i: number) => boolean,
): Int32Array {
  const count = anchors.length / dim;
  const best = new Float32Array(count * m).fill(Number.NEGATIVE_INFINITY);
  const labels = new Int32Array(count * m).fill(-1);
  const worstAt = new Int32Array(count);
  const worst = new Float32Array(count).fill(Number.NEGATIVE_INFINITY);
  for (let i = from; i < to; i++) {
    if (deleted?.(i)) continue;
    const row = i * dim;
    for (let a = 0; a < count; a++) {
      const q = a * dim;
      let s = 0;
      for (let d = 0; d < dim; d++) s += vectors[row + d]! * anchors[q + d]!;
      if (s <= worst[a]!) continue;
      // replace this anchor's worst kept row, then find the new worst (m is small)
      const base = a * m;
      best[base + worstAt[a]!] = s;
      labels[base + worstAt[a]!] = i - from;
      let w = 0;
      for (let t = 1; t < m; t++) if (best[base + t]! < best[base + w]!) w = t;
      worstAt[a] = w;
      worst[a] = best[base + w]!;
    }
  }
  // each list best first, so a query can take a prefix
  for (let a = 0; a < count; a++) {
    const base = a * m;
    const order = Array.from({ length: m }, (_, t) => t).sort((x, y) => best[base + y]! - best[base + x]!);
    const sorted = order.map((t) => labels[base + t]!);
    labels.set(sorted, base);
  }
  return labels;
}

/** A shard's anchors file: a small JSON header line, then the anchor vectors (float32) and the lists (int32). */
export function serializeAnchors(anchors: Float32Array, dim: number, lists: Int32Array, m: number): Uint8Array {
  return Buffer.concat([
    Buffer.from(`${JSON.stringify({ format: 'medclip-anchors/1', count: anchors.length / dim, dim, m })}\n`),
    Buffer.from(anchors.buffer, anchors.byteOffset, anchors.byteLength),
    Buffer.from(lists.buffer, lists.byteOffset, lists.byteLength),
  ]);
}

export class AnchorLists {
  private constructor(
    private readonly anchors: Float32Array,
    private readonly lists: Int32Array,
    readonly count: number,
    readonly dim: number,
    readonly m: number,
  ) {}

  static parse(bytes: Uint8Array): AnchorLists {
    const nl = bytes.indexOf(0x0a);
    const header = JSON.parse(Buffer.from(bytes.subarray(0, nl)).toString('utf8')) as {
      format: string;
      count: number;
      dim: number;
      m: number;
    };
    if (header.format !== 'medclip-anchors/1') throw new Error(`unknown anchors format ${header.format}`);
    const start = nl + 1;
    const body = new Uint8Array(bytes.subarray(start)); // an aligned copy (a Buffer's slice() would be a view)
    const vectorBytes = header.count * header.dim * 4;
    if (body.byteLength !== vectorBytes + header.count * header.m * 4) throw new Error('anchors file has the wrong length');
    return new AnchorLists(
      new Float32Array(body.buffer, body.byteOffset, header.count * header.dim),
      new Int32Array(body.buffer, body.byteOffset + vectorBytes, header.count * header.m),
      header.count,
      header.dim,
      header.m,
    );
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
    // the nearest `limit` anchors, best first (a small insertion-sorted selection: no sort of all of them)
    const limit = Math.min(this.count, o.allow ? Math.max(a, o.maxAnchors ?? a) : a);
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
