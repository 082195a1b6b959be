// API access from the page: the API key (kept for the tab in sessionStorage, sent as a header), JSON calls whose
// errors read as sentences, and previews as object URLs released when the results are replaced.
import { $ } from './dom.js';

/** The API refuses bodies over 6 MB (Lambda's payload limit, core/util/limits.ts): say so before uploading. */
export const MAX_UPLOAD = 6 * 1024 * 1024;

export const key = $('key');
key.value = sessionStorage.getItem('medclip-key') ?? '';
key.addEventListener('change', () => sessionStorage.setItem('medclip-key', key.value));

export const headers = (h = {}) => (key.value ? { ...h, 'x-api-key': key.value } : h);

export async function call(path, init = {}) {
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
export function remember(url) {
  objectUrls.push(url);
  return url;
}
export function releaseUrls() {
  for (const u of objectUrls) URL.revokeObjectURL(u);
  objectUrls = [];
}

/** A preview as an object URL (the API key goes in a header, so an <img src> cannot fetch it directly). */
export async function previewUrl(path) {
  const r = await fetch(path, { headers: headers() }).catch(() => undefined);
  if (!r?.ok) return undefined;
  return remember(URL.createObjectURL(await r.blob()));
}

/** A DICOM query as the server decodes it (browsers cannot display DICOM); undefined if that fails. */
export async function dicomPreview(bytes) {
  const init = { method: 'POST', headers: headers({ 'content-type': 'application/dicom' }), body: bytes };
  const r = await fetch('/v1/preview', init).catch(() => undefined);
  return r?.ok ? remember(URL.createObjectURL(await r.blob())) : undefined;
}
