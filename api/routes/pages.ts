/** The search page and the API reference viewer (both from local files; no CDN). */
import { type Context, Hono } from 'hono';
import { docsAsset } from '../docs-assets.ts';
import { renderDocsPage } from '../docs-page.ts';
import { HttpProblem } from '../problem.ts';
import type { Env } from '../router.ts';
import { PAGE_CSP, pageAsset } from '../search-page.ts';

export function pageRoutes() {
  const app = new Hono<Env>();
  const page = async (c: Context, name: string) => {
    const asset = await pageAsset(name);
    if (!asset) throw new HttpProblem(404, 'Not found', 'no such file of the search page');
    return c.body(asset.body, 200, {
      'content-type': asset.type,
      'cache-control': name === 'index.html' ? 'no-cache' : 'public, max-age=300',
      'content-security-policy': PAGE_CSP,
      'x-content-type-options': 'nosniff',
      'referrer-policy': 'no-referrer',
    });
  };
  app.get('/', (c) => page(c, 'index.html'));
  app.get('/page/:asset', (c) => page(c, c.req.param('asset')));
  app.get('/docs', (c) => c.html(renderDocsPage('/openapi.json')));
  app.get('/docs/:asset', async (c) => {
    const asset = await docsAsset(c.req.param('asset'));
    if (!asset) throw new HttpProblem(404, 'Not found', 'no such file of the API reference');
    return c.body(asset.body, 200, { 'content-type': asset.type, 'cache-control': 'public, max-age=86400' });
  });
  app.get('/favicon.ico', async (c) => {
    const icon = (await docsAsset('favicon-32x32.png'))!;
    return c.body(icon.body, 200, { 'content-type': icon.type, 'cache-control': 'public, max-age=86400' });
  });
  return app;
}
