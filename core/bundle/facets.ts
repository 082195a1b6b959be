/**
 * Facets of an image collection (views, sources, findings with counts), for building filters.
 */
import { OBSERVATIONS } from '../labeler/index.ts';
import type { ImageMeta } from './items.ts';

/** What an image collection holds, for building filters: values seen with their counts, most frequent first. */
export interface ImageFacets {
  images: number;
  views: { value: string; count: number }[];
  sources: { value: string; count: number }[];
  /** Every observation with the number of images positive (1) for it (0 included), most frequent first. */
  findings: { name: string; count: number }[];
}

/** Facets of a set of image metadata (deleted items skipped). */
export function imageFacets(items: Iterable<ImageMeta>): ImageFacets {
  const views = new Map<string, number>();
  const sources = new Map<string, number>();
  const findings = new Map<string, number>();
  let images = 0;
  for (const m of items) {
    if (m.deleted) continue;
    images++;
    if (m.view) views.set(m.view, (views.get(m.view) ?? 0) + 1);
    if (m.source) sources.set(m.source, (sources.get(m.source) ?? 0) + 1);
    for (const [name, v] of Object.entries(m.labels)) if (v === 1) findings.set(name, (findings.get(name) ?? 0) + 1);
  }
  const sorted = (m: Map<string, number>) =>
    [...m].map(([value, count]) => ({ value, count })).sort((a, b) => b.count - a.count || a.value.localeCompare(b.value));
  for (const name of OBSERVATIONS) if (!findings.has(name)) findings.set(name, 0);
  return {
    images,
    views: sorted(views),
    sources: sorted(sources),
    findings: sorted(findings).map(({ value, count }) => ({ name: value, count })),
  };
}

/** Facets from several shards' facets (counts added). */
export function mergeFacets(parts: ImageFacets[]): ImageFacets {
  const flat = (pick: (f: ImageFacets) => { value: string; count: number }[]) => {
    const m = new Map<string, number>();
    for (const p of parts) for (const { value, count } of pick(p)) m.set(value, (m.get(value) ?? 0) + count);
    return [...m].map(([value, count]) => ({ value, count })).sort((a, b) => b.count - a.count || a.value.localeCompare(b.value));
  };
  return {
    images: parts.reduce((s, p) => s + p.images, 0),
    views: flat((f) => f.views),
    sources: flat((f) => f.sources),
    findings: flat((f) => f.findings.map((x) => ({ value: x.name, count: x.count }))).map(({ value, count }) => ({ name: value, count })),
  };
}
