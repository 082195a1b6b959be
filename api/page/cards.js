// One card per hit: an X-ray with its preview, labels and why it matched; a report with the matched sentence marked.
// A card asks for a dialog by event (the page's entry opens it), so cards know nothing of the dialogs.
import { call, previewUrl } from './api.js';
import { el, showError } from './dom.js';
import { explainImage, labelChips, relevanceBadge } from './labels.js';

/** Events a card sends on document: detail is the hit to show. */
export const OPEN_IMAGE = 'medclip:open-image';
export const OPEN_REPORT = 'medclip:open-report';

export function imageCard(hit) {
  const thumb = el('div', { class: 'thumb' }, 'loading preview…');
  if (hit.thumbnail)
    previewUrl(hit.thumbnail).then((url) => {
      if (url) thumb.replaceChildren(el('img', { src: url, alt: `X-ray ${hit.id}` }));
      else thumb.textContent = 'no preview stored for this X-ray';
    });
  else thumb.textContent = 'no preview stored for this X-ray';
  const where = [hit.source, hit.view].filter(Boolean).join(' · ');
  const button = el(
    'button',
    { type: 'button', class: 'card', 'data-id': hit.id },
    thumb,
    el(
      'div',
      { class: 'meta' },
      el('div', {}, where || 'X-ray'),
      labelChips(hit.labels, hit.matched),
      hit.evidence
        ? el(
            'p',
            { class: 'evidence' },
            el('span', { class: 'muted' }, "In this study's report: "),
            el('mark', {}, hit.evidence.sentence.text),
          )
        : undefined,
      el('p', { class: 'why' }, explainImage(hit)),
    ),
  );
  button.addEventListener('click', () => document.dispatchEvent(new CustomEvent(OPEN_IMAGE, { detail: hit })));
  return el('li', {}, button, archiveLinks(hit));
}

/** Links back to the archive for a hit read from DICOM: the study in the configured viewer, the study's own report. */
function archiveLinks(hit) {
  const links = el('p', { class: 'links' });
  if (hit.viewerUrl) links.append(el('a', { href: hit.viewerUrl, target: '_blank', rel: 'noopener noreferrer' }, 'Open study in viewer'));
  if (hit.studyReport) {
    const b = el('button', { type: 'button', class: 'secondary small' }, 'Report of this study');
    b.addEventListener('click', () =>
      call(`/v1/reports/${encodeURIComponent(hit.studyReport)}`)
        .then((r) =>
          document.dispatchEvent(
            new CustomEvent(OPEN_REPORT, { detail: { id: r.id, report: r.text, labels: r.labels, matched: [], sentence: { text: '' } } }),
          ),
        )
        .catch((err) => showError(err.message)),
    );
    links.append(b);
  }
  return links.children.length ? links : undefined;
}

/** The report field that holds the matched sentence, with the sentence marked. */
function excerpt(hit) {
  const p = el('p', { class: 'excerpt' });
  const sentence = hit.sentence.text;
  for (const [field, text] of Object.entries(hit.report)) {
    const at = text.indexOf(sentence);
    if (at < 0) continue;
    p.append(el('span', { class: 'muted' }, `${field}: `), text.slice(0, at), el('mark', {}, sentence), text.slice(at + sentence.length));
    return p;
  }
  p.append(el('mark', {}, sentence));
  return p;
}

export function reportCard(hit) {
  const open = el('button', { type: 'button', class: 'secondary small', 'aria-label': `Open report ${hit.id}` }, 'Open report');
  open.addEventListener('click', () => document.dispatchEvent(new CustomEvent(OPEN_REPORT, { detail: hit })));
  const why = hit.matched.length ? `the sentence states ${hit.matched.join(', ')} as the query does` : 'matched by similarity of the text';
  return el(
    'li',
    { class: 'report', 'data-id': hit.id },
    el(
      'header',
      {},
      el('h3', {}, `Report ${hit.id}`),
      hit.relevance !== undefined ? relevanceBadge(hit.relevance) : undefined,
      el('span', { class: 'muted small' }, `similarity ${hit.score.toFixed(3)}`),
      open,
    ),
    archiveLinks(hit),
    labelChips(hit.labels, hit.matched, true),
    excerpt(hit),
    hit.sentence.reports > 1
      ? el(
          'p',
          { class: 'why' },
          `This exact sentence is in ${hit.sentence.reports} reports` +
            (hit.collapsed.length ? `; ${hit.collapsed.length} more of them matched and are folded into this result.` : '.'),
        )
      : undefined,
    el('p', { class: 'why' }, `Why: ${why}.`),
  );
}
