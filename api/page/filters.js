// The filters panel: a present/absent/any selector per observation and the views and sources of the index, with
// the counts its facets give.
import { call } from './api.js';
import { $, el } from './dom.js';

let facets;
const findingSelects = new Map();

/** One present/absent/any selector per observation, in the order the index's facets list them (most frequent first). */
function buildFindingFilters(findings) {
  const box = $('filter-findings');
  for (const { name, count } of findings) {
    if (findingSelects.has(name)) {
      box.querySelector(`[data-count="${CSS.escape(name)}"]`).textContent = ` (${count})`;
      continue;
    }
    const id = `f-${name.replace(/\W+/g, '-').toLowerCase()}`;
    const select = el(
      'select',
      { id },
      el('option', { value: '' }, 'any'),
      el('option', { value: 'must' }, 'present'),
      el('option', { value: 'mustNot' }, 'absent'),
    );
    select.addEventListener('change', updateFilterCount);
    findingSelects.set(name, select);
    box.append(
      el(
        'div',
        { class: 'finding-filter' },
        el('label', { for: id }, name, el('span', { class: 'muted', 'data-count': name }, ` (${count})`)),
        select,
      ),
    );
  }
}

function checkboxes(fieldset, name, values) {
  for (const old of fieldset.querySelectorAll('label')) old.remove();
  if (!values.length) fieldset.append(el('label', {}, el('span', { class: 'muted' }, 'none stored in this index')));
  for (const { value, count } of values) {
    const box = el('input', { type: 'checkbox', name, value });
    box.addEventListener('change', updateFilterCount);
    fieldset.append(el('label', {}, box, ` ${value} `, el('span', { class: 'muted' }, `(${count})`)));
  }
}

export async function loadFacets() {
  try {
    facets = await call('/v1/facets');
  } catch {
    return; // the status line and a search will say what is wrong (for example a missing API key)
  }
  buildFindingFilters(facets.findings);
  checkboxes($('filter-views'), 'view', facets.views);
  checkboxes($('filter-sources'), 'source', facets.sources);
}

function checked(name) {
  return [...document.querySelectorAll(`input[name=${name}]:checked`)].map((b) => b.value);
}

/** The filter for a target: reports carry findings only (they have no view or source). */
export function currentFilter(target) {
  const filter = {};
  for (const [name, select] of findingSelects) {
    if (!select.value) continue;
    filter[select.value] ??= [];
    filter[select.value].push(name);
  }
  if (target === 'images') {
    const view = checked('view');
    const source = checked('source');
    if (view.length) filter.view = view;
    if (source.length) filter.source = source;
  }
  return Object.keys(filter).length ? filter : undefined;
}

function updateFilterCount() {
  const n = [...findingSelects.values()].filter((s) => s.value).length + checked('view').length + checked('source').length;
  $('filter-count').textContent = n ? `(${n} active)` : '';
}

$('clear-filters').addEventListener('click', () => {
  for (const s of findingSelects.values()) s.value = '';
  for (const b of document.querySelectorAll('#filters input[type=checkbox]')) b.checked = false;
  updateFilterCount();
});
