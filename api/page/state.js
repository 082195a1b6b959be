// What is on screen: the query (text, or an uploaded file), which hits of each kind are shown, how many were asked.
import { releaseUrls } from './api.js';
import { $ } from './dom.js';

/** Results asked for per page, and the API's ceiling. */
export const PAGE = 12;
export const MAX_K = 100;

/** What is on screen: the query (text, or an uploaded file), how many hits of each kind were asked for. */
export const state = { mode: undefined, query: '', target: 'images', file: undefined, k: { images: PAGE, reports: PAGE }, shown: {} };

export function reset() {
  releaseUrls();
  for (const id of ['images', 'reports', 'class-bars', 'query-image', 'query-read']) $(id).replaceChildren();
  for (const id of ['images-title', 'reports-title', 'images-empty', 'reports-empty', 'more-images', 'more-reports', 'classes', 'error'])
    $(id).hidden = true;
  $('query-panel').hidden = true;
  state.shown = { images: new Map(), reports: new Map() };
  state.k = { images: PAGE, reports: PAGE };
}
