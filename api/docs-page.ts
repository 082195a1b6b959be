/** A self-contained API reference page rendered from /openapi.json in the browser (no CDN: works offline). */
export function renderDocsPage(specUrl: string): string {
  return `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>medclip-search API</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>body{font:15px/1.5 system-ui,sans-serif;max-width:960px;margin:2rem auto;padding:0 1rem;color:#1b1f24}
h2{margin-top:2rem;border-bottom:1px solid #ddd}code,pre{background:#f5f5f7;border-radius:4px}pre{padding:.75rem;overflow:auto}
.m{display:inline-block;min-width:4.5em;font-weight:600}.get{color:#0a7}.post{color:#06c}</style></head>
<body><h1>medclip-search API</h1><p>Machine-readable: <a href="${specUrl}">${specUrl}</a> (OpenAPI 3.1).</p><div id="ops">Loading…</div>
<script type="module">
const spec = await (await fetch(${JSON.stringify(specUrl)})).json();
const el = document.getElementById('ops'); el.textContent = '';
const esc = (s) => String(s ?? '').replace(/[&<>]/g, (ch) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;' })[ch]);
for (const [path, ops] of Object.entries(spec.paths)) for (const [method, op] of Object.entries(ops)) {
  const sec = document.createElement('section');
  const body = op.requestBody ? Object.keys(op.requestBody.content).join(', ') : '';
  sec.innerHTML = '<h2><span class="m ' + method + '">' + method.toUpperCase() + '</span> <code>' + esc(path) + '</code></h2><p>' + esc(op.summary) + '</p>' +
    (op.description ? '<p>' + esc(op.description) + '</p>' : '') + (body ? '<p>Body: <code>' + esc(body) + '</code></p>' : '') +
    '<p>Responses: ' + Object.keys(op.responses).map((s) => '<code>' + s + '</code>').join(' ') + '</p>';
  el.append(sec);
}
</script></body></html>`;
}
