// The page's DOM helpers: find by id, make elements (every value inserted as text, never as HTML), the status line.

export const $ = (id) => document.getElementById(id);

/** Create an element: props are attributes (class -> className), children strings or nodes (strings stay text). */
export function el(tag, props = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(props)) {
    if (v === undefined || v === false) continue;
    if (k === 'class') e.className = v;
    else e.setAttribute(k, v === true ? '' : String(v));
  }
  for (const c of children) if (c !== undefined && c !== null) e.append(c);
  return e;
}

export function status(text) {
  $('status').textContent = text;
}

export function showError(message) {
  $('error').textContent = message;
  $('error').hidden = false;
  status('');
}
