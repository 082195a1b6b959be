// The search page and the API reference in a real browser (Debian's chromium driven by playwright-core), served by
// `startServer` with the shipped model and sample index, as `npm start` serves them. axe-core checks accessibility in
// every state; screenshots go to .test-output/browser/ (with MEDCLIP_SCREENSHOTS=docs/screenshots, to the README's).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium, type BrowserContext, type Page } from 'playwright-core';
import { startShippedServer } from './helpers/shipped-server.ts';
import { startServer } from '../api/server.ts';
import { buildIndex } from '../index-builder/build.ts';
import { DATA, outputDir, REPO } from './helpers/paths.ts';

const CHROMIUM = (process.env.CHROMIUM_PATH ? [process.env.CHROMIUM_PATH] : ['/usr/bin/chromium', '/usr/bin/chromium-browser']).find(
  existsSync,
);
const AXE = createRequire(import.meta.url).resolve('axe-core/axe.min.js');
const dir = outputDir('browser');
let server: Awaited<ReturnType<typeof startShippedServer>> | undefined;
let browser: BrowserContext | undefined;
/** An X-ray of the sample index (its own closest image) and a DICOM file. */
const XRAY = join(REPO, 'samples/corpus/images/nih/00005567_002.png');

before(async () => {
  if (!CHROMIUM) return;
  server = await startShippedServer();
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

/** axe-core in the page: violations of serious or critical impact (expected none). */
async function axe(page: Page, where: string): Promise<void> {
  // evaluated through the devtools protocol: the page's own CSP (no inline scripts) stays in force for the page
  if (!(await page.evaluate("'axe' in window"))) await page.evaluate(readFileSync(AXE, 'utf8'));
  const found = (await page.evaluate(
    'axe.run(document).then((r) => r.violations.map((v) => ({ id: v.id, impact: v.impact, nodes: v.nodes.length })))',
  )) as { id: string; impact: string; nodes: number }[];
  const bad = found.filter((v) => v.impact === 'serious' || v.impact === 'critical');
  assert.deepEqual(bad, [], `${where}: axe-core found ${JSON.stringify(bad)}`);
}

async function shot(page: Page, name: string, fullPage = false): Promise<void> {
  const file = join(dir, `${name}.png`);
  await page.screenshot({ path: file, fullPage });
  const docs = process.env.MEDCLIP_SCREENSHOTS;
  if (docs) {
    mkdirSync(join(REPO, docs), { recursive: true });
    copyFileSync(file, join(REPO, docs, `${name}.png`));
  }
}

/** Wait until a JS expression is true in the page. Evaluated through the devtools protocol: playwright's own
 * waitForFunction(string) evals in the page, which the page's CSP (no 'unsafe-eval') rightly refuses. */
async function until(page: Page, expression: string): Promise<void> {
  for (const t0 = Date.now(); Date.now() - t0 < 15_000; await new Promise((r) => setTimeout(r, 50)))
    if (await page.evaluate(expression)) return;
  const seen = await page.evaluate(
    "({ error: document.getElementById('error').textContent, status: document.getElementById('status').textContent })",
  );
  throw new Error(`timed out waiting for ${expression} (page: ${JSON.stringify(seen)})`);
}

/** A fresh page on the search page, collecting page errors (and console errors with `console`). */
async function openPage(o: { console?: boolean } = {}): Promise<{ page: Page; errors: string[] }> {
  const page = await browser!.newPage();
  const errors: string[] = [];
  page.on('pageerror', (e) => errors.push(e.message));
  if (o.console) page.on('console', (m) => m.type() === 'error' && errors.push(m.text()));
  await page.goto(server!.url + '/');
  return { page, errors };
}

const skip = CHROMIUM ? false : 'chromium is not installed (.ci/run installs it)';

test('search page, text query: cards with every label, an explanation, more on demand, an image viewer with window/level', {
  skip,
}, async () => {
  const { page, errors } = await openPage({ console: true });
  await page.waitForSelector('#status:has-text("200 X-rays and 297 reports indexed")');
  await axe(page, 'empty page');

  await page.fill('#query', 'small right pleural effusion');
  await page.keyboard.press('Enter');
  await page.waitForSelector('#images .card');
  assert.equal(await page.locator('#images .card').count(), 12);
  assert.match((await page.textContent('#query-read')) ?? '', /Pleural Effusion/);
  await until(page, "[...document.querySelectorAll('#images img')].filter((i) => i.naturalWidth > 0).length === 12");
  // every card shows all of the image's positive labels, the shared ones marked, and says why it was returned
  const api = (await (
    await fetch(server!.url + '/v1/search/text', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ query: 'small right pleural effusion', k: 12 }),
    })
  ).json()) as { hits: { id: string; labels: Record<string, number>; matched: string[] }[] };
  for (const [i, hit] of api.hits.entries()) {
    const card = page.locator('#images .card').nth(i);
    assert.equal(await card.getAttribute('data-id'), hit.id);
    const chips = await card.locator('.chip').allTextContents();
    const positives = Object.entries(hit.labels)
      .filter(([, v]) => v === 1)
      .map(([k]) => k);
    for (const p of positives)
      assert.ok(
        chips.some((c) => c.includes(p)),
        `${hit.id}: ${p} shown`,
      );
    assert.equal(await card.locator('.chip.matched').count(), hit.matched.length, `${hit.id}: matched marked`);
    assert.match((await card.locator('.why').textContent()) ?? '', hit.matched.length ? /shares Pleural Effusion/ : /no finding in common/);
  }
  await axe(page, 'text results');
  await shot(page, 'search-text', true);

  // more on demand: the sample holds 200 X-rays, so a second page of 12 comes, appended
  await page.click('#more-images');
  await until(page, "document.querySelectorAll('#images .card').length === 24");
  const ids = await page.locator('#images .card').evaluateAll((cards) => cards.map((c) => c.getAttribute('data-id')));
  assert.equal(new Set(ids).size, 24, 'no duplicates after "More"');
  assert.equal(await page.evaluate("document.activeElement?.getAttribute('data-id')"), ids[12], 'focus on the first new result');

  // the viewer: keyboard opens it, the arrow keys change window/level on the pixels, Escape closes it
  await page.locator('#images .card').first().focus();
  await page.keyboard.press('Enter');
  await page.waitForSelector('#viewer[open]');
  await page.waitForSelector('#viewer-wl:has-text("window 256 · level 128")');
  const mean = async () =>
    (await page.evaluate(`(() => {
      const c = document.getElementById('viewer-canvas');
      const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
      let s = 0;
      for (let i = 0; i < d.length; i += 4) s += d[i];
      return s / (d.length / 4);
    })()`)) as number;
  const before = await mean();
  await page.focus('#viewer-canvas');
  for (let i = 0; i < 8; i++) await page.keyboard.press('Shift+ArrowLeft'); // a narrower window: more contrast
  for (let i = 0; i < 2; i++) await page.keyboard.press('Shift+ArrowUp'); // a lower level: brighter
  assert.match((await page.textContent('#viewer-wl')) ?? '', /window 1 · level 64/);
  const after = await page.textContent('#viewer-wl');
  assert.ok((await mean()) > before + 30, `brighter after level down (${before.toFixed(1)} -> ${(await mean()).toFixed(1)}, ${after})`);
  // and with the mouse: drag right widens the window
  const box = (await page.locator('#viewer-canvas').boundingBox())!;
  await page.mouse.move(box.x + box.width / 2, box.y + box.height / 2);
  await page.mouse.down();
  await page.mouse.move(box.x + box.width / 2 + 200, box.y + box.height / 2, { steps: 5 });
  await page.mouse.up();
  assert.match((await page.textContent('#viewer-wl')) ?? '', /window 201 · level 64/);
  await axe(page, 'image viewer');
  await shot(page, 'viewer');
  await page.keyboard.press('Escape');
  await page.waitForSelector('#viewer', { state: 'hidden' });
  assert.deepEqual(errors, []);
});

test('search page, filters and reports: must/must-not/source filters, an empty state, a report view with the sentence and polarity', {
  skip,
}, async () => {
  const { page, errors } = await openPage();
  await page.waitForSelector('#filter-sources input[value=nih]', { state: 'attached' });
  await page.click('#filters summary');
  await page.selectOption('#f-pneumonia', 'mustNot');
  await page.check('#filter-sources input[value=nih]');
  assert.equal(await page.textContent('#filter-count'), '(2 active)');
  await page.fill('#query', 'pleural effusion');
  await page.click('button[type=submit]');
  await page.waitForSelector('#images .card');
  const cards = page.locator('#images .card');
  assert.ok((await cards.count()) > 0);
  for (const text of await cards.locator('.meta').allTextContents()) {
    assert.match(text, /^nih/, 'source filter');
    assert.doesNotMatch(text, /(^|[^o] )Pneumonia/, 'Pneumonia absent');
  }
  await axe(page, 'filters open');
  await shot(page, 'filters', true);

  // nothing matches: a clear empty state, not a blank page
  await page.selectOption('#f-fracture', 'must');
  await page.click('button[type=submit]');
  await page.waitForSelector('#images-empty', { state: 'visible' });
  assert.match((await page.textContent('#images-empty')) ?? '', /No X-ray matches these filters/);
  await page.click('#clear-filters');
  assert.equal(await page.textContent('#filter-count'), '');

  // reports: relevance, polarity chips, the sentence marked; the report view
  await page.selectOption('#target', 'reports');
  await page.fill('#query', 'pneumothorax');
  await page.click('button[type=submit]');
  await page.waitForSelector('#reports .report mark');
  const first = page.locator('#reports .report').first();
  assert.match((await first.textContent()) ?? '', /relevance \d+%/);
  assert.equal(await first.locator('.chip.matched').count(), 1);
  assert.match((await first.locator('.chip.matched').textContent()) ?? '', /✓ Pneumothorax/);
  await first.getByRole('button', { name: /Open report/ }).click();
  await page.waitForSelector('#report-view[open]');
  const mark = (await page.textContent('#report-view mark')) ?? '';
  assert.match(mark, /pneumothorax/i);
  assert.ok((await page.locator('#report-view .chip').count()) >= 1);
  await axe(page, 'report view');
  await shot(page, 'report');
  await page.keyboard.press('Escape');
  await page.fill('#query', 'no pneumothorax');
  await page.click('button[type=submit]');
  await page.waitForSelector('#query-read .chip.negative:has-text("no Pneumothorax")');
  // identical sentences are one result, with the count: "No pneumothorax." is in 29 sample reports
  const texts = await page.locator('#reports mark').allTextContents();
  assert.equal(new Set(texts).size, texts.length, 'no sentence twice');
  assert.match((await page.locator('#reports .report').first().textContent()) ?? '', /This exact sentence is in \d+ reports; \d+ more/);
  assert.deepEqual(errors, []);
});

test('search page, X-ray query: the query beside its findings (multi-label), similar X-rays with itself first, reports; errors shown', {
  skip,
}, async () => {
  const { page, errors } = await openPage();
  await page.fill('#query', 'stale text');
  await page.setInputFiles('#file', XRAY);
  await page.waitForSelector('#class-bars .bar');
  await page.waitForSelector('#reports .report mark');
  assert.equal(await page.inputValue('#query'), '', 'the old text query is cleared');
  assert.equal(await page.locator('#class-bars .bar').count(), 14, 'findings mode: every observation');
  await until(page, "document.querySelector('#query-image img')?.naturalWidth === 256");
  assert.equal(
    await page.locator('#images .card').first().getAttribute('data-id'),
    'images/nih/00005567_002.png',
    'the X-ray itself first',
  );
  const read = (await page.textContent('#query-read')) ?? '';
  assert.ok(!(/No Finding/.test(read) && /Pneumonia|Effusion|Edema|Opacity/.test(read)), `no contradictory findings: ${read}`);
  // what the model can judge, in words, from its card: every bar says whether it is validated, and each finding read
  // from the X-ray that is not validated gets its caveat
  const card = JSON.parse(readFileSync(join(REPO, 'models/medclip-tiny/card.json'), 'utf8')) as {
    findings: Record<string, { validated: boolean }>;
  };
  const bars = await page.$$eval('#class-bars .bar', (els) =>
    els.map((e) => [e.getAttribute('data-class'), e.getAttribute('data-validated')]),
  );
  for (const [name, validated] of bars) assert.equal(validated, String(card.findings[name!]!.validated), `${name}`);
  const unvalidated = Object.entries(card.findings)
    .filter(([, f]) => !f.validated)
    .map(([n]) => n);
  assert.match((await page.textContent('#class-caveat')) ?? '', new RegExp(`Marked \\?: not validated \\(${unvalidated.length} of 14\\)`));
  const chips = await page.$$eval('#query-read .chip', (els) => els.map((e) => e.textContent ?? ''));
  const caveat = (await page.textContent('#query-read .caveat')) ?? '';
  for (const chip of chips) {
    const name = chip.replace(/ \(not validated\)| \?$/g, '').trim();
    if (card.findings[name] && !card.findings[name]!.validated)
      assert.ok(caveat.includes(name), `${name} is named in the caveat: ${caveat}`);
  }
  assert.match(caveat, /^Not validated for .*: (its score means|their scores mean) nothing yet/);
  assert.equal(await page.locator('#reports .report').count(), 5);
  await axe(page, 'image query');
  await shot(page, 'search-image', true);
  // side by side in the viewer
  await page.locator('#images .card').nth(1).click();
  await page.waitForSelector('#viewer[open]');
  assert.equal(await page.locator('#viewer-query-pane').isVisible(), true);
  await page.waitForSelector('#viewer-wl:has-text("window 256")');
  await shot(page, 'viewer-side-by-side');
  await page.keyboard.press('Escape');

  // a DICOM query: the browser cannot show DICOM, so the page shows the server's decoding of it (POST /v1/preview)
  await page.setInputFiles('#file', join(DATA, 'samples/dicom/nih-secondary-capture-test2.dcm'));
  await until(page, "document.querySelector('#query-image img')?.naturalWidth === 768");
  await page.waitForSelector('#images .card');

  // an error is shown, not thrown: a file that is not an X-ray
  const notXray = join(dir, 'notes.png');
  writeFileSync(notXray, 'these are not pixels');
  await page.setInputFiles('#file', notXray);
  await page.waitForSelector('#error', { state: 'visible' });
  assert.match((await page.textContent('#error')) ?? '', /Unsupported image format/);
  await axe(page, 'error');
  assert.deepEqual(errors, []);
});

test('API reference: Swagger UI from local assets renders every operation, with schemas and a link back', { skip }, async () => {
  const page = await browser!.newPage();
  const errors: string[] = [];
  const external: string[] = [];
  page.on('pageerror', (e) => errors.push(e.message));
  page.on('request', (r) => {
    if (!r.url().startsWith(server!.url)) external.push(r.url());
  });
  await page.goto(server!.url + '/docs');
  await page.waitForSelector('.opblock');
  assert.equal(
    await page.locator('.opblock').count(),
    8,
    'health, facets, text search, image search, classify, upload preview, image preview, report',
  );
  assert.equal(await page.locator('a[href="/"]').count(), 1);
  await shot(page, 'docs');
  assert.deepEqual(external, [], 'nothing is fetched from outside the server');
  assert.deepEqual(errors, []);
});

test('search page over DICOM files: each card links to its study in the configured viewer', { skip }, async () => {
  // an index of the archive samples (DICOM files keep their UIDs), served with a viewer URL template
  const out = join(dir, 'dicom-index');
  rmSync(out, { recursive: true, force: true });
  await buildIndex({ model: join(REPO, 'models/medclip-tiny'), imageDir: join(DATA, 'samples/dicom'), out, thumbnails: true });
  const viewer = await startServer({
    model: join(REPO, 'models/medclip-tiny'),
    index: out,
    port: 0,
    host: '127.0.0.1',
    viewerUrl: 'https://viewer.example/viewer?StudyInstanceUIDs={StudyInstanceUID}',
    log: () => {},
  });
  const page = await browser!.newPage();
  try {
    await page.goto(`${viewer.url}/`);
    await page.waitForSelector('#status:has-text("X-rays")');
    await page.fill('#query', 'chest x-ray');
    await page.keyboard.press('Enter');
    await page.waitForSelector('#images .card');
    const links = page.locator('#images a:has-text("Open study in viewer")');
    assert.equal(await links.count(), await page.locator('#images .card').count(), 'every DICOM hit links to its study');
    const href = (await links.first().getAttribute('href')) ?? '';
    assert.match(href, /^https:\/\/viewer\.example\/viewer\?StudyInstanceUIDs=[0-9.]+$/);
    assert.equal(await links.first().getAttribute('rel'), 'noopener noreferrer');
    await axe(page, 'DICOM results with viewer links');
  } finally {
    await page.close();
    await viewer.close();
  }
});
