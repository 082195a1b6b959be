// The search page in a real browser (Debian's chromium driven by playwright-core): type a query, upload an
// X-ray, check the results, save screenshots under .test-output/browser/.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium, type BrowserContext } from 'playwright-core';
import { startServer } from '../api/server.ts';
import { DATA, outputDir } from './helpers/paths.ts';
import { tinyIndexBundle } from './helpers/tiny-model.ts';

const CHROMIUM = (process.env.CHROMIUM_PATH ? [process.env.CHROMIUM_PATH] : ['/usr/bin/chromium', '/usr/bin/chromium-browser']).find(
  existsSync,
);
const dir = outputDir('browser');
let server: Awaited<ReturnType<typeof startServer>> | undefined;
let browser: BrowserContext | undefined;
let xray: string;

before(async () => {
  if (!CHROMIUM) return;
  const { modelDir, indexDir, rows } = await tinyIndexBundle(dir, { images: 16, thumbnails: true });
  xray = join(DATA, rows[0]!.split(',')[0]!);
  server = await startServer({ model: modelDir, index: indexDir, port: 0, host: '127.0.0.1', log: () => {} });
  // a fresh profile (playwright passes it as --user-data-dir)
  browser = await chromium.launchPersistentContext(mkdtempSync(join(tmpdir(), 'medclip-chromium-')), {
    executablePath: CHROMIUM,
    headless: true,
    viewport: { width: 1280, height: 900 },
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      '--no-first-run',
    ],
  });
});

after(async () => {
  await browser?.close();
  await server?.close();
});

// In CI a missing browser is a failure (the page would go untested), elsewhere a visible skip.
if (!CHROMIUM && process.env.CI)
  throw new Error('CI=true but chromium is not installed: .ci/run must install it (apt-get install chromium)');

test('search page: a text query shows X-ray results; an uploaded X-ray shows similar images, reports and zero-shot bars', {
  skip: CHROMIUM ? false : 'chromium is not installed (.ci/run installs it)',
}, async () => {
  const page = await browser!.newPage();
  const errors: string[] = [];
  page.on('pageerror', (e) => errors.push(e.message));
  await page.goto(server!.url + '/');
  await page.fill('#query', 'small right pleural effusion');
  await page.click('button[type=submit]');
  await page.waitForSelector('#images .card');
  assert.equal(await page.locator('#images .card').count(), 12);
  await page.waitForFunction("[...document.querySelectorAll('#images img')].some((i) => i.naturalWidth > 0)");
  assert.match((await page.textContent('#status')) ?? '', /findings in the query: Pleural Effusion/);
  await page.screenshot({ path: join(dir, 'text-query.png'), fullPage: true });

  await page.setInputFiles('#file', xray);
  await page.waitForSelector('#classes .bar');
  await page.waitForSelector('#reports .report mark');
  assert.ok((await page.locator('#classes .bar').count()) >= 7);
  assert.equal(
    await page.locator('#images .card').first().getAttribute('data-id'),
    xray.slice(DATA.length + 1),
    'the X-ray itself is the closest image',
  );
  assert.ok((await page.locator('#reports .report').count()) >= 1);
  await page.screenshot({ path: join(dir, 'image-query.png'), fullPage: true });

  // an error is shown, not thrown: a file that is not an X-ray
  const notXray = join(dir, 'notes.png');
  writeFileSync(notXray, 'these are not pixels');
  await page.setInputFiles('#file', notXray);
  await page.waitForSelector('#error', { state: 'visible' });
  assert.match((await page.textContent('#error')) ?? '', /Unsupported image format/);
  await page.screenshot({ path: join(dir, 'error.png') });
  assert.deepEqual(errors, []);
});

test('API reference: Swagger UI from local assets renders every operation, with schemas and a link back', {
  skip: CHROMIUM ? false : 'chromium is not installed (.ci/run installs it)',
}, async () => {
  const page = await browser!.newPage();
  const errors: string[] = [];
  const external: string[] = [];
  page.on('pageerror', (e) => errors.push(e.message));
  page.on('request', (r) => {
    if (!r.url().startsWith(server!.url)) external.push(r.url());
  });
  await page.goto(server!.url + '/docs');
  await page.waitForSelector('.opblock');
  assert.equal(await page.locator('.opblock').count(), 6, 'health, text search, image search, classify, image preview, report');
  assert.equal(await page.locator('a[href="/"]').count(), 1);
  await page.screenshot({ path: join(dir, 'docs.png'), fullPage: false });
  assert.deepEqual(external, [], 'nothing is fetched from outside the server');
  assert.deepEqual(errors, []);
});
