/**
 * The API reference: Swagger UI (from the `swagger-ui-dist` package, served locally by `/docs/*`: no CDN, so it works
 * offline) over `/openapi.json`, with "try it out", the request and response schemas, and examples recorded from
 * real responses. A link leads back to the search page.
 */
export function renderDocsPage(specUrl: string): string {
  return `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>medclip-search API</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="icon" href="/favicon.ico"><link rel="stylesheet" href="/docs/swagger-ui.css">
<style>body{margin:0;font:15px/1.5 system-ui,sans-serif}header{padding:.75rem 1.25rem;border-bottom:1px solid #ddd;display:flex;gap:1rem;align-items:center}
header a{color:#06c}</style></head>
<body><header><strong>medclip-search API</strong><a href="/">← search page</a><a href="${specUrl}">${specUrl}</a></header>
<main id="ui" aria-label="API reference"></main>
<script src="/docs/swagger-ui-bundle.js"></script>
<script>window.ui = SwaggerUIBundle({ url: ${JSON.stringify(specUrl)}, dom_id: '#ui', deepLinking: true, tryItOutEnabled: false, defaultModelsExpandDepth: 0 });</script>
</body></html>`;
}
