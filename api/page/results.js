// The results: X-ray and report lists that grow page by page (hits already shown are kept), the query panel (what
// was read from the query) and the findings bars of an X-ray query.
import { imageCard, reportCard } from './cards.js';
import { $, el } from './dom.js';
import { queryFindingText } from './labels.js';
import { MAX_K, state } from './state.js';

export function showImages(hits, asked) {
  return showHits(
    'images',
    hits,
    asked,
    imageCard,
    'No X-ray matches these filters. Loosen the filters (Filters, above) to see more.',
    'This index holds no X-rays.',
  );
}

export function showReports(hits, asked) {
  return showHits(
    'reports',
    hits,
    asked,
    reportCard,
    'No report matches these filters. Loosen the filters to see more.',
    'This index holds no reports.',
  );
}

/** Append the hits not shown yet (by id), then the empty state and the "More" button; returns the first new item. */
function showHits(kind, hits, asked, card, emptyFiltered, emptyIndex) {
  $(`${kind}-title`).hidden = false;
  let first;
  for (const h of hits) {
    if (state.shown[kind].has(h.id)) continue;
    state.shown[kind].set(h.id, h);
    const item = card(h);
    first ??= item;
    $(kind).append(item);
  }
  const empty = $(`${kind}-empty`);
  empty.hidden = state.shown[kind].size > 0;
  empty.textContent = state.filtered ? emptyFiltered : emptyIndex;
  $(`more-${kind}`).hidden = hits.length < asked || asked >= MAX_K;
  return first;
}

export function showQueryRead(query) {
  const box = $('query-read');
  box.replaceChildren();
  if (query.corrected) box.append(el('p', { class: 'small' }, 'Searched for: ', el('strong', {}, query.corrected)));
  const findings = el('ul', { class: 'chips', 'aria-label': 'findings read from the query' });
  for (const f of query.findings) findings.append(el('li', { class: `chip ${f.polarity}` }, queryFindingText(f)));
  box.append(el('h3', {}, state.mode === 'image' ? 'Findings of the X-ray' : 'Findings in the query'));
  box.append(query.findings.length ? findings : el('p', { class: 'muted small' }, 'none recognised'));
  for (const w of query.warnings ?? []) box.append(el('p', { class: 'small', role: 'note' }, `⚠ ${w}`));
  $('query-panel').hidden = false;
}

export function showClasses(classes) {
  const list = $('class-bars');
  list.replaceChildren();
  for (const c of [...classes].sort((a, b) => b.probability - a.probability)) {
    const pct = `${(c.probability * 100).toFixed(0)}%`;
    const fill = el('div', { class: 'fill' });
    fill.style.width = `${(c.probability * 100).toFixed(1)}%`;
    list.append(
      el(
        'li',
        { class: `bar${c.probability >= 0.5 ? ' likely' : ''}`, 'data-class': c.name },
        el('span', {}, c.name),
        el('div', { class: 'track', role: 'img', 'aria-label': `${c.name} ${pct}` }, fill),
        el('span', {}, pct),
      ),
    );
  }
  $('classes').hidden = false;
}
