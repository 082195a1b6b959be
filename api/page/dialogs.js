// The dialogs: the image viewer (window/level on the preview by drag or arrow keys, beside the query X-ray) and the
// report view (every field, the matched sentence marked).
import { previewUrl } from './api.js';
import { $, el } from './dom.js';
import { explainImage, labelChips, relevanceBadge } from './labels.js';

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

/** Show an X-ray hit in the viewer; `query`, an element showing the query X-ray, goes beside it (image queries). */
export async function openViewer(hit, query) {
  const dialog = $('viewer');
  $('viewer-title').textContent = `X-ray ${hit.id}`;
  viewer.canvas.setAttribute('aria-label', `X-ray ${hit.id}`);
  viewer.grey = undefined;
  const pane = $('viewer-query-pane');
  pane.hidden = !query;
  if (query) $('viewer-query').replaceChildren(query);
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

export function openReport(hit) {
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
