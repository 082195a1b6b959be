// The search page's entry (served as /page/search.js with its modules beside it; no framework, no outside assets,
// works under a strict CSP): text and X-ray searches, paging, upload, and the wiring of the other modules.
// Every value that comes from the API is inserted as text (textContent / createTextNode), never as HTML.
import { call, dicomPreview, key, MAX_UPLOAD, remember } from './api.js';
import { OPEN_IMAGE, OPEN_REPORT } from './cards.js';
import { openReport, openViewer } from './dialogs.js';
import { $, el, showError, status } from './dom.js';
import { currentFilter, loadFacets } from './filters.js';
import { showClasses, showImages, showQueryRead, showReports } from './results.js';
import { MAX_K, PAGE, reset, state } from './state.js';

async function textSearch(target, k) {
  const body = { query: state.query, target, k };
  const filter = currentFilter(target);
  if (filter) body.filter = filter;
  return call('/v1/search/text', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
}

async function imageSearch(target, k) {
  const params = new URLSearchParams({ target, k: String(k) });
  const filter = currentFilter(target);
  if (filter) params.set('filter', JSON.stringify(filter));
  return call(`/v1/search/image?${params}`, { method: 'POST', headers: { 'content-type': state.file.type }, body: state.file.bytes });
}

$('text-form').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  const query = $('query').value.trim();
  reset();
  if (!query) return showError('Type a finding to search for, for example "pleural effusion".');
  Object.assign(state, {
    mode: 'text',
    query,
    target: $('target').value,
    file: undefined,
    filtered: Boolean(currentFilter($('target').value)),
  });
  status('Searching…');
  try {
    const r = await textSearch(state.target, state.k[state.target]);
    showQueryRead(r.query);
    $('query-image').replaceChildren(el('p', {}, el('strong', {}, `“${query}”`)));
    (state.target === 'images' ? showImages : showReports)(r.hits, state.k[state.target]);
    status(`${r.hits.length} ${state.target === 'images' ? 'X-rays' : 'reports'} · ${r.tookMs} ms`);
  } catch (e) {
    showError(e.message);
  }
});

function mediaType(file) {
  if (file.type === 'image/png' || file.type === 'image/jpeg') return file.type;
  return 'application/dicom';
}

async function searchWithImage(file) {
  reset();
  $('query').value = '';
  if (file.size === 0) return showError(`${file.name} is empty.`);
  if (file.size > MAX_UPLOAD) return showError(`${file.name} is larger than 6 MB, the upload limit.`);
  const type = mediaType(file);
  const bytes = await file.arrayBuffer();
  Object.assign(state, {
    mode: 'image',
    target: 'images',
    file: { name: file.name, type, bytes },
    filtered: Boolean(currentFilter('images')),
  });
  status(`Reading ${file.name}…`);
  try {
    const [images, reports, classes, queryUrl] = await Promise.all([
      imageSearch('images', state.k.images),
      imageSearch('reports', 5),
      call('/v1/classify?mode=findings', { method: 'POST', headers: { 'content-type': type }, body: bytes }),
      type === 'application/dicom' ? dicomPreview(bytes) : remember(URL.createObjectURL(file)),
    ]);
    state.queryUrl = queryUrl;
    state.k.reports = 5;
    $('query-image').replaceChildren(queryImage());
    showQueryRead(images.query);
    showClasses(classes.classes);
    showImages(images.hits, state.k.images);
    showReports(reports.hits, state.k.reports);
    status(`Similar X-rays and reports for ${file.name} · ${Math.round(images.tookMs + reports.tookMs)} ms`);
  } catch (e) {
    showError(e.message);
  }
}

function queryImage() {
  if (state.queryUrl) return el('img', { src: state.queryUrl, alt: `Your X-ray, ${state.file.name}` });
  return el('div', { class: 'placeholder' }, `${state.file.name}: no preview could be made`);
}

/** Ask for a bigger page and append what is new; focus moves to the first new result. */
async function more(target) {
  const k = Math.min(MAX_K, state.k[target] + PAGE);
  state.k[target] = k;
  status('Loading more…');
  try {
    const r = state.mode === 'image' ? await imageSearch(target, k) : await textSearch(target, k);
    const first = (target === 'images' ? showImages : showReports)(r.hits, k);
    first?.querySelector('button')?.focus();
    status(`${state.shown[target].size} ${target === 'images' ? 'X-rays' : 'reports'} shown`);
  } catch (e) {
    showError(e.message);
  }
}
$('more-images').addEventListener('click', () => more('images'));
$('more-reports').addEventListener('click', () => more('reports'));

const drop = $('drop');
$('pick').addEventListener('click', () => $('file').click());
$('file').addEventListener('change', () => {
  const f = $('file').files[0];
  if (f) searchWithImage(f);
  $('file').value = '';
});
drop.addEventListener('dragover', (e) => {
  e.preventDefault();
  drop.classList.add('over');
});
drop.addEventListener('dragleave', () => drop.classList.remove('over'));
drop.addEventListener('drop', (e) => {
  e.preventDefault();
  drop.classList.remove('over');
  const f = e.dataTransfer.files[0];
  if (f) searchWithImage(f);
});

// ---- dialogs, asked for by the cards ------------------------------------------------------------------------
document.addEventListener(OPEN_IMAGE, (e) => openViewer(e.detail, state.mode === 'image' ? queryImage() : undefined));
document.addEventListener(OPEN_REPORT, (e) => openReport(e.detail));

key.addEventListener('change', () => loadFacets());
status('Loading…');
call('/v1/health')
  .then((h) => status(`${h.index.images} X-rays and ${h.index.reports} reports indexed. Type a finding, or choose an X-ray.`))
  .catch((e) => showError(e.message));
loadFacets();
