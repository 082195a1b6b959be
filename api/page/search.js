// The search page's script (served as /page/search.js; no framework, no outside assets, works under a strict CSP).
// Every value that comes from the API is inserted as text (textContent / createTextNode), never as HTML.

/** Results asked for per page, and the API's ceiling. */
const PAGE = 12;
const MAX_K = 100;
/** The API refuses bodies over 6 MB (Lambda's payload limit, core/util/limits.ts): say so before uploading. */
const MAX_UPLOAD = 6 * 1024 * 1024;

const $ = (id) => document.getElementById(id);

/** Create an element: props are attributes (class -> className), children strings or nodes (strings stay text). */
function el(tag, props = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(props)) {
    if (v === undefined || v === false) continue;
    if (k === 'class') e.className = v;
    else e.setAttribute(k, v === true ? '' : String(v));
  }
  for (const c of children) if (c !== undefined && c !== null) e.append(c);
  return e;
}

// ---- API access -------------------------------------------------------------------------------------------
const key = $('key');
key.value = sessionStorage.getItem('medclip-key') ?? '';
key.addEventListener('change', () => {
  sessionStorage.setItem('medclip-key', key.value);
  loadFacets();
});
const headers = (h = {}) => (key.value ? { ...h, 'x-api-key': key.value } : h);

async function call(path, init = {}) {
  let r;
  try {
    r = await fetch(path, { ...init, headers: headers(init.headers) });
  } catch {
    throw new Error('The server could not be reached. Check the connection and try again.');
  }
  const body = await r.json().catch(() => ({}));
  if (r.status === 401) throw new Error('This server needs an API key: enter it at the top right, then search again.');
  if (!r.ok) throw new Error(body.detail ? `${body.title}: ${body.detail}` : `The request failed (HTTP ${r.status}).`);
  return body;
}

/** Object URLs made for previews, released when the results are replaced. */
let objectUrls = [];
function remember(url) {
  objectUrls.push(url);
  return url;
}
function releaseUrls() {
  for (const u of objectUrls) URL.revokeObjectURL(u);
  objectUrls = [];
}

/** A preview as an object URL (the API key goes in a header, so an <img src> cannot fetch it directly). */
async function previewUrl(path) {
  const r = await fetch(path, { headers: headers() }).catch(() => undefined);
  if (!r?.ok) return undefined;
  return remember(URL.createObjectURL(await r.blob()));
}

// ---- filters ----------------------------------------------------------------------------------------------
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

async function loadFacets() {
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
function currentFilter(target) {
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

// ---- page state -------------------------------------------------------------------------------------------
/** What is on screen: the query (text, or an uploaded file), how many hits of each kind were asked for. */
const state = { mode: undefined, query: '', target: 'images', file: undefined, k: { images: PAGE, reports: PAGE }, shown: {} };

function status(text) {
  $('status').textContent = text;
}
function showError(message) {
  $('error').textContent = message;
  $('error').hidden = false;
  status('');
}

function reset() {
  releaseUrls();
  for (const id of ['images', 'reports', 'class-bars', 'query-image', 'query-read']) $(id).replaceChildren();
  for (const id of ['images-title', 'reports-title', 'images-empty', 'reports-empty', 'more-images', 'more-reports', 'classes', 'error'])
    $(id).hidden = true;
  $('query-panel').hidden = true;
  state.shown = { images: new Map(), reports: new Map() };
  state.k = { images: PAGE, reports: PAGE };
}

// ---- labels, findings and explanations --------------------------------------------------------------------
const POLARITY = { 1: 'positive', 0: 'negative', '-1': 'uncertain' };

/** Chips for labels: positives and uncertain ones (and negatives with `withNegatives`); shared findings marked. */
function labelChips(labels, matched, withNegatives = false) {
  const list = el('ul', { class: 'chips', 'aria-label': 'labels' });
  const entries = Object.entries(labels).sort(([, a], [, b]) => b - a);
  for (const [name, value] of entries) {
    const polarity = POLARITY[value];
    if (polarity === 'negative' && !withNegatives) continue;
    const isMatched = matched.includes(name);
    const text = polarity === 'positive' ? name : polarity === 'negative' ? `no ${name}` : `${name}?`;
    const chip = el(
      'li',
      {
        class: `chip ${polarity}${isMatched ? ' matched' : ''}`,
        title: `${name}: ${polarity}${isMatched ? ', shared with the query' : ''}`,
      },
      isMatched ? `✓ ${text}` : text,
    );
    if (isMatched) chip.append(el('span', { class: 'sr-only' }, ' (shared with the query)'));
    list.append(chip);
  }
  if (!list.children.length) list.append(el('li', { class: 'chip' }, 'no labels'));
  return list;
}

function queryFindingText(f) {
  return f.polarity === 'positive' ? f.name : f.polarity === 'negative' ? `no ${f.name}` : `${f.name}?`;
}

function explainImage(hit) {
  const parts = [`similarity ${hit.score.toFixed(3)}`];
  parts.push(hit.matched.length ? `shares ${hit.matched.join(', ')} with the query` : 'no finding in common with the query');
  return parts.join(' · ');
}

function relevanceBadge(relevance) {
  const pct = Math.round(relevance * 100);
  const level = relevance >= 0.7 ? 'high' : relevance < 0.3 ? 'low' : '';
  return el('span', { class: `badge ${level}`, title: 'calibrated probability that this report is relevant' }, `relevance ${pct}%`);
}

// ---- image results ----------------------------------------------------------------------------------------
function imageCard(hit) {
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
      el('p', { class: 'why' }, explainImage(hit)),
    ),
  );
  button.addEventListener('click', () => openViewer(hit));
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
        .then((r) => openReport({ id: r.id, report: r.text, labels: r.labels, matched: [], sentence: { text: '' } }))
        .catch((err) => showError(err.message)),
    );
    links.append(b);
  }
  return links.children.length ? links : undefined;
}

function showImages(hits, asked) {
  return showHits(
    'images',
    hits,
    asked,
    imageCard,
    'No X-ray matches these filters. Loosen the filters (Filters, above) to see more.',
    'This index holds no X-rays.',
  );
}

// ---- report results ---------------------------------------------------------------------------------------
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

function reportCard(hit) {
  const open = el('button', { type: 'button', class: 'secondary small', 'aria-label': `Open report ${hit.id}` }, 'Open report');
  open.addEventListener('click', () => openReport(hit));
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

function showReports(hits, asked) {
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

// ---- the query panel --------------------------------------------------------------------------------------
function showQueryRead(query) {
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

function showClasses(classes) {
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

// ---- searches ---------------------------------------------------------------------------------------------
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

/** A DICOM query as the server decodes it (browsers cannot display DICOM); undefined if that fails. */
async function dicomPreview(bytes) {
  const init = { method: 'POST', headers: headers({ 'content-type': 'application/dicom' }), body: bytes };
  const r = await fetch('/v1/preview', init).catch(() => undefined);
  return r?.ok ? remember(URL.createObjectURL(await r.blob())) : undefined;
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

// ---- upload -----------------------------------------------------------------------------------------------
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

// ---- the image viewer: window/level on the preview, side by side with the query X-ray ------------------------
const viewer = {
  canvas: $('viewer-canvas'),
  grey: undefined,
  width: 256,
  level: 128,
};

function drawWindowed() {
  const { canvas, grey } = viewer;
  if (!grey) return;
  const ctx = canvas.getContext('2d');
  const img = ctx.createImageData(canvas.width, canvas.height);
  const lo = viewer.level - viewer.width / 2;
  const scale = 255 / Math.max(1, viewer.width);
  for (let i = 0, p = 0; i < grey.length; i++, p += 4) {
    const v = Math.max(0, Math.min(255, (grey[i] - lo) * scale));
    img.data[p] = v;
    img.data[p + 1] = v;
    img.data[p + 2] = v;
    img.data[p + 3] = 255;
  }
  ctx.putImageData(img, 0, 0);
  $('viewer-wl').textContent = `window ${Math.round(viewer.width)} · level ${Math.round(viewer.level)}`;
}

function setWindow(width, level) {
  viewer.width = Math.max(1, Math.min(512, width));
  viewer.level = Math.max(-128, Math.min(384, level));
  drawWindowed();
}

async function loadIntoViewer(url) {
  const image = new Image();
  image.src = url;
  await image.decode();
  const { canvas } = viewer;
  canvas.width = image.naturalWidth;
  canvas.height = image.naturalHeight;
  const ctx = canvas.getContext('2d', { willReadFrequently: true });
  ctx.drawImage(image, 0, 0);
  const rgba = ctx.getImageData(0, 0, canvas.width, canvas.height).data;
  viewer.grey = new Uint8ClampedArray(rgba.length / 4);
  for (let i = 0; i < viewer.grey.length; i++) viewer.grey[i] = rgba[i * 4];
  setWindow(256, 128);
}

let drag;
viewer.canvas.addEventListener('pointerdown', (e) => {
  drag = { x: e.clientX, y: e.clientY, width: viewer.width, level: viewer.level };
  viewer.canvas.setPointerCapture(e.pointerId);
});
viewer.canvas.addEventListener('pointermove', (e) => {
  if (drag) setWindow(drag.width + (e.clientX - drag.x), drag.level + (e.clientY - drag.y));
});
viewer.canvas.addEventListener('pointerup', () => {
  drag = undefined;
});
viewer.canvas.addEventListener('keydown', (e) => {
  const step = e.shiftKey ? 32 : 8;
  const moves = { ArrowLeft: [-step, 0], ArrowRight: [step, 0], ArrowUp: [0, -step], ArrowDown: [0, step] };
  const m = moves[e.key];
  if (!m) return;
  e.preventDefault();
  setWindow(viewer.width + m[0], viewer.level + m[1]);
});
$('viewer-reset').addEventListener('click', () => setWindow(256, 128));

async function openViewer(hit) {
  const dialog = $('viewer');
  $('viewer-title').textContent = `X-ray ${hit.id}`;
  viewer.canvas.setAttribute('aria-label', `X-ray ${hit.id}`);
  viewer.grey = undefined;
  const pane = $('viewer-query-pane');
  pane.hidden = state.mode !== 'image';
  if (state.mode === 'image') $('viewer-query').replaceChildren(queryImage());
  $('viewer-info').replaceChildren(
    el('p', {}, [hit.source, hit.view].filter(Boolean).join(' · ') || ''),
    labelChips(hit.labels, hit.matched, true),
    el('p', { class: 'why' }, explainImage(hit)),
  );
  dialog.showModal();
  const url = hit.thumbnail ? await previewUrl(hit.thumbnail) : undefined;
  if (url) await loadIntoViewer(url);
  else $('viewer-wl').textContent = 'No preview is stored for this X-ray.';
}

function openReport(hit) {
  $('report-title').textContent = `Report ${hit.id}`;
  const body = $('report-body');
  body.replaceChildren();
  const head = el('p', {});
  if (hit.relevance !== undefined) head.append(relevanceBadge(hit.relevance), ' ');
  if (hit.score !== undefined) head.append(el('span', { class: 'muted small' }, `similarity ${hit.score.toFixed(3)}`));
  body.append(head, el('h3', {}, 'Findings (labeler, with polarity)'), labelChips(hit.labels, hit.matched, true));
  for (const [field, text] of Object.entries(hit.report)) {
    const p = el('p');
    const at = hit.sentence.text ? text.indexOf(hit.sentence.text) : -1;
    if (at >= 0) p.append(text.slice(0, at), el('mark', {}, hit.sentence.text), text.slice(at + hit.sentence.text.length));
    else p.append(text);
    body.append(el('section', {}, el('h3', {}, field), p));
  }
  $('report-view').showModal();
}

for (const b of document.querySelectorAll('[data-close]')) b.addEventListener('click', () => b.closest('dialog').close());
for (const d of document.querySelectorAll('dialog'))
  d.addEventListener('click', (e) => {
    if (e.target === d) d.close(); // a click on the backdrop
  });

status('Loading…');
call('/v1/health')
  .then((h) => status(`${h.index.images} X-rays and ${h.index.reports} reports indexed. Type a finding, or choose an X-ray.`))
  .catch((e) => showError(e.message));
loadFacets();
