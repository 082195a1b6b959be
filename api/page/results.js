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
  for (const f of query.findings) {
    // an X-ray's findings come from the model: say which of them it is validated for
    const unvalidated = state.mode === 'image' && f.validated === false;
    findings.append(
      el(
        'li',
        {
          class: `chip ${f.polarity}${unvalidated ? ' unvalidated' : ''}`,
          title: unvalidated
            ? 'the model is not validated for this finding'
            : f.auc
              ? `validated: held-out AUC ${f.auc.toFixed(2)}`
              : undefined,
        },
        queryFindingText(f),
        unvalidated ? el('span', { class: 'sr-only' }, ' (not validated)') : undefined,
        unvalidated ? ' ?' : undefined,
      ),
    );
  }
  box.append(el('h3', {}, state.mode === 'image' ? 'Findings of the X-ray' : 'Findings in the query'));
  box.append(query.findings.length ? findings : el('p', { class: 'muted small' }, 'none recognised'));
  if (state.mode === 'image') box.append(...validationNotes(query.findings));
  for (const w of query.warnings ?? []) box.append(el('p', { class: 'small', role: 'note' }, `⚠ ${w}`));
  $('query-panel').hidden = false;
}

/**
 * In words, what the model can judge: the findings it is validated for (held-out AUC, model card), and a caveat for
 * each one it reads but is not validated for (those never rank the results).
 */
export function validationNotes(findings) {
  const validated = findings.filter((f) => f.validated);
  const notes = [];
  if (validated.length)
    notes.push(
      el(
        'p',
        { class: 'small validated-note' },
        `Validated: ${validated.map((f) => `${f.name} (held-out AUC ${f.auc?.toFixed(2) ?? '?'})`).join(', ')}. Results are ranked by ${validated.length > 1 ? 'these' : 'it'}.`,
      ),
    );
  const unvalidated = findings.filter((x) => x.validated === false).map((f) => f.name);
  if (unvalidated.length === 1)
    notes.push(
      el(
        'p',
        { class: 'small caveat', role: 'note' },
        `Not validated for ${unvalidated[0]}: its score means nothing yet (it did not separate on held-out X-rays), so it does not rank the results.`,
      ),
    );
  else if (unvalidated.length > 1)
    notes.push(
      el(
        'p',
        { class: 'small caveat', role: 'note' },
        `Not validated for ${unvalidated.join(', ')}: their scores mean nothing yet (they did not separate on held-out X-rays), so they do not rank the results.`,
      ),
    );
  return notes;
}

export function showClasses(classes) {
  const list = $('class-bars');
  list.replaceChildren();
  const caveats = $('class-caveat');
  caveats.replaceChildren();
  const unvalidated = classes.filter((c) => c.validated === false).map((c) => c.name);
  if (unvalidated.length)
    caveats.append(
      `Marked ?: not validated (${unvalidated.length} of ${classes.length}); those probabilities did not separate on held-out X-rays, read them as noise.`,
    );
  for (const c of [...classes].sort((a, b) => b.probability - a.probability)) {
    const pct = `${(c.probability * 100).toFixed(0)}%`;
    const fill = el('div', { class: 'fill' });
    fill.style.width = `${(c.probability * 100).toFixed(1)}%`;
    list.append(
      el(
        'li',
        {
          class: `bar${c.probability >= 0.5 ? ' likely' : ''}${c.validated === false ? ' unvalidated' : ''}`,
          'data-class': c.name,
          'data-validated': String(c.validated === true),
        },
        el('span', {}, c.validated === false ? `${c.name} ?` : c.name),
        el('div', { class: 'track', role: 'img', 'aria-label': `${c.name} ${pct}${c.validated === false ? ', not validated' : ''}` }, fill),
        el('span', {}, pct),
      ),
    );
  }
  $('classes').hidden = false;
}
