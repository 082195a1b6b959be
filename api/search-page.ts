/** The search page at `/` (placeholder until the full page lands; see issue 5). */
export function renderSearchPage(): string {
  return `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>medclip-search</title></head>
<body><h1>medclip-search</h1><p>API reference: <a href="/docs">/docs</a></p></body></html>`;
}
