/**
 * The search page at `/`: type a finding, or drop/pick an X-ray (PNG, JPEG, DICOM); image hits as a grid of
 * previews with the findings they share with the query, report hits with the matching sentence highlighted,
 * and zero-shot probabilities as bars. Plain HTML + JS, no external assets (works offline and under a strict
 * CSP); every value from the API is inserted as text, never as HTML.
 */
export function renderSearchPage(): string {
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>medclip-search</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
:root{--fg:#1b1f24;--muted:#5b6470;--line:#d8dde3;--accent:#0b63c5;--bg:#f7f8fa}
*{box-sizing:border-box}body{margin:0;font:15px/1.45 system-ui,-apple-system,sans-serif;color:var(--fg);background:var(--bg)}
header{padding:1rem 1.5rem;background:#fff;border-bottom:1px solid var(--line);display:flex;gap:1rem;align-items:baseline;flex-wrap:wrap}
header h1{font-size:1.2rem;margin:0}header a{color:var(--muted);font-size:.9rem}
main{max-width:1200px;margin:0 auto;padding:1rem 1.5rem}
form{display:flex;gap:.5rem;flex-wrap:wrap;align-items:center}
input[type=search]{flex:1 1 380px;padding:.6rem .8rem;font-size:1rem;border:1px solid var(--line);border-radius:6px}
select,button,input[type=number]{padding:.55rem .7rem;font-size:.95rem;border:1px solid var(--line);border-radius:6px;background:#fff}
button{background:var(--accent);color:#fff;border-color:var(--accent);cursor:pointer}
#drop{margin-top:.8rem;padding:1.2rem;border:2px dashed var(--line);border-radius:8px;text-align:center;color:var(--muted);background:#fff;cursor:pointer}
#drop.over{border-color:var(--accent);color:var(--accent)}
#error{display:none;margin-top:1rem;padding:.7rem 1rem;border-radius:6px;background:#fdecea;color:#8a1c12;border:1px solid #f5c2bd}
#status{color:var(--muted);margin:.8rem 0}
.cols{display:grid;grid-template-columns:2fr 1fr;gap:1.2rem}@media(max-width:800px){.cols{grid-template-columns:1fr}}
.grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(170px,1fr));gap:.8rem}
.card{background:#fff;border:1px solid var(--line);border-radius:8px;overflow:hidden}
.card img{width:100%;aspect-ratio:1;object-fit:contain;background:#000;display:block}
.card .meta{padding:.4rem .5rem;font-size:.8rem}
.chip{display:inline-block;padding:0 .4rem;margin:.1rem .2rem 0 0;border-radius:10px;background:#e7f0fb;color:#0b4f9c;font-size:.75rem}
.report{background:#fff;border:1px solid var(--line);border-radius:8px;padding:.6rem .8rem;margin-bottom:.6rem;font-size:.9rem}
.report mark{background:#fff3b0;padding:0 .1rem}
.bar{display:flex;align-items:center;gap:.5rem;margin:.25rem 0;font-size:.85rem}
.bar span:first-child{width:9rem}.bar .track{flex:1;background:#e9ecef;border-radius:4px;height:.8rem}
.bar .fill{background:var(--accent);height:100%;border-radius:4px}
h2{font-size:1rem;margin:1.2rem 0 .6rem}
</style></head>
<body>
<header><h1>medclip-search</h1><span>chest X-rays and radiology reports</span><a href="/docs">API</a>
<label style="margin-left:auto;font-size:.85rem">API key <input id="key" type="password" autocomplete="off" size="14"></label></header>
<main>
<form id="text-form">
  <input id="query" type="search" name="query" placeholder="Describe a finding, e.g. right lower lobe pneumonia" maxlength="1000" aria-label="query">
  <select id="target" aria-label="search for"><option value="images">X-rays</option><option value="reports">reports</option></select>
  <input id="k" type="number" min="1" max="100" value="12" aria-label="number of results">
  <button type="submit">Search</button>
</form>
<div id="drop" tabindex="0">Drop an X-ray here (PNG, JPEG or DICOM), or click to pick one
  <input id="file" type="file" accept=".png,.jpg,.jpeg,.dcm,.dicom,image/png,image/jpeg,application/dicom" hidden></div>
<div id="error" role="alert"></div>
<div id="status" aria-live="polite"></div>
<div class="cols"><section><h2 id="images-title" hidden>X-rays</h2><div id="images" class="grid"></div>
<h2 id="reports-title" hidden>Reports</h2><div id="reports"></div></section>
<section><h2 id="classes-title" hidden>Zero-shot</h2><div id="classes"></div></section></div>
</main>
<script type="module">
const $ = (id) => document.getElementById(id);
const key = $('key');
key.value = sessionStorage.getItem('medclip-key') ?? '';
key.addEventListener('change', () => sessionStorage.setItem('medclip-key', key.value));
const headers = (h = {}) => (key.value ? { ...h, 'x-api-key': key.value } : h);
function el(tag, props = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(props)) if (k === 'class') e.className = v; else e.setAttribute(k, v);
  for (const c of children) e.append(c);
  return e;
}
function clear() { for (const id of ['images', 'reports', 'classes']) $(id).replaceChildren(); for (const id of ['images-title', 'reports-title', 'classes-title']) $(id).hidden = true; $('error').style.display = 'none'; }
function showError(msg) { $('error').textContent = msg; $('error').style.display = 'block'; $('status').textContent = ''; }
async function call(path, init) {
  const r = await fetch(path, { ...init, headers: headers(init.headers) });
  const body = await r.json().catch(() => ({}));
  if (!r.ok) throw new Error(body.detail ? body.title + ': ' + body.detail : 'request failed (' + r.status + ')');
  return body;
}
function chips(list) { const d = el('div'); for (const f of list) d.append(el('span', { class: 'chip' }, f)); return d; }
function showImages(hits) {
  $('images-title').hidden = hits.length === 0;
  for (const h of hits) {
    const img = el('img', { alt: 'X-ray ' + h.id, loading: 'lazy' });
    fetch(h.thumbnail, { headers: headers() }).then((r) => (r.ok ? r.blob() : null)).then((b) => { if (b) img.src = URL.createObjectURL(b); });
    const positives = Object.entries(h.labels).filter(([, v]) => v === 1).map(([k]) => k);
    $('images').append(el('div', { class: 'card', 'data-id': h.id }, img, el('div', { class: 'meta' }, el('div', {}, 'score ' + h.score.toFixed(3) + (h.source ? ' · ' + h.source : '') + (h.view ? ' · ' + h.view : '')),
      h.matched.length ? chips(h.matched.map((m) => '✓ ' + m)) : el('div', { class: 'muted' }, positives.join(', ') || '—'))));
  }
}
function showReports(hits) {
  $('reports-title').hidden = hits.length === 0;
  for (const h of hits) {
    const text = Object.values(h.report).join('\\n');
    const at = text.indexOf(h.sentence.text);
    const p = el('p');
    if (at >= 0) p.append(text.slice(0, at), el('mark', {}, h.sentence.text), text.slice(at + h.sentence.text.length));
    else p.append(text);
    $('reports').append(el('div', { class: 'report', 'data-id': h.id }, el('div', {}, 'report ' + h.id + ' · score ' + h.score.toFixed(3)), chips(h.matched.map((m) => '✓ ' + m)), p));
  }
}
function showClasses(classes) {
  $('classes-title').hidden = false;
  for (const c of classes) {
    const fill = el('div', { class: 'fill' }); fill.style.width = (c.probability * 100).toFixed(1) + '%';
    $('classes').append(el('div', { class: 'bar', 'data-class': c.name }, el('span', {}, c.name), el('div', { class: 'track' }, fill), el('span', {}, (c.probability * 100).toFixed(1) + '%')));
  }
}
$('text-form').addEventListener('submit', async (ev) => {
  ev.preventDefault(); clear();
  const query = $('query').value.trim();
  if (!query) return showError('Type a finding to search for.');
  $('status').textContent = 'Searching…';
  try {
    const target = $('target').value;
    const r = await call('/v1/search/text', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ query, target, k: Number($('k').value) || 10 }) });
    (target === 'images' ? showImages : showReports)(r.hits);
    $('status').textContent = r.hits.length + ' results' + (r.query.findings.length ? ' · findings in the query: ' + r.query.findings.map((f) => (f.polarity === 'positive' ? f.name : f.name + ' (' + f.polarity + ')')).join(', ') : '') + ' · ' + r.tookMs + ' ms';
  } catch (e) { showError(e.message); }
});
function typeOf(file) { if (file.type === 'image/png' || file.type === 'image/jpeg') return file.type; return 'application/dicom'; }
async function searchImage(file) {
  clear();
  if (file.size > 6 * 1024 * 1024) return showError('This file is larger than 6 MB, the upload limit.');
  $('status').textContent = 'Reading the X-ray…';
  try {
    const body = await file.arrayBuffer();
    const type = typeOf(file);
    const k = Number($('k').value) || 10;
    const [images, reports, classes] = await Promise.all([
      call('/v1/search/image?target=images&k=' + k, { method: 'POST', headers: { 'content-type': type }, body }),
      call('/v1/search/image?target=reports&k=5', { method: 'POST', headers: { 'content-type': type }, body }),
      call('/v1/classify', { method: 'POST', headers: { 'content-type': type }, body }),
    ]);
    showImages(images.hits); showReports(reports.hits); showClasses(classes.classes);
    $('status').textContent = 'Similar X-rays and reports for ' + file.name + ' · zero-shot findings: ' + (images.query.findings.map((f) => f.name).join(', ') || '—');
  } catch (e) { showError(e.message); }
}
const drop = $('drop');
drop.addEventListener('click', () => $('file').click());
drop.addEventListener('keydown', (e) => { if (e.key === 'Enter' || e.key === ' ') $('file').click(); });
$('file').addEventListener('change', () => { const f = $('file').files[0]; if (f) searchImage(f); });
drop.addEventListener('dragover', (e) => { e.preventDefault(); drop.classList.add('over'); });
drop.addEventListener('dragleave', () => drop.classList.remove('over'));
drop.addEventListener('drop', (e) => { e.preventDefault(); drop.classList.remove('over'); const f = e.dataTransfer.files[0]; if (f) searchImage(f); });
</script></body></html>`;
}
