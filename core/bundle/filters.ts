/**
 * Search filters: what a filter may name, and whether an item passes one.
 */
import { OBSERVATIONS, isObservation, type Observation } from '../labeler/index.ts';
import type { ImageMeta, ItemMeta } from './items.ts';
import { IndexError } from './manifest.ts';

export interface SearchFilter {
  /** Findings that must be positive (1). */
  must?: string[];
  /** Findings that must not be positive. */
  mustNot?: string[];
  /** Allowed views / sources (case-insensitive); images only. */
  view?: string[];
  source?: string[];
}

export function checkFilter(filter: SearchFilter | undefined): void {
  for (const name of [...(filter?.must ?? []), ...(filter?.mustNot ?? [])])
    if (!isObservation(name)) throw new IndexError(`unknown finding "${name}" in filter (choose from ${OBSERVATIONS.join(', ')})`, 'input');
}

/** Whether an item passes a filter (labels, and view / source for images; case-insensitive). */
export function filterPredicate(filter: SearchFilter | undefined): (m: ItemMeta) => boolean {
  if (!filter) return () => true;
  const views = filter.view?.map((v) => v.toLowerCase());
  const sources = filter.source?.map((s) => s.toLowerCase());
  return (m) => {
    const labels = m.labels;
    if (filter.must?.some((f) => labels[f as Observation] !== 1)) return false;
    if (filter.mustNot?.some((f) => labels[f as Observation] === 1)) return false;
    if (views && !views.includes(((m as ImageMeta).view ?? '').toLowerCase())) return false;
    if (sources && !sources.includes(((m as ImageMeta).source ?? '').toLowerCase())) return false;
    return true;
  };
}
