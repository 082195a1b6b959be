// The README's first screen, run verbatim: every curl example against `medclip serve` with the shipped model and
// sample index (the same as `npm start`, on a free port), checking the status and the shape the README shows.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startShippedServer } from './helpers/shipped-server.ts';
import { DATA, REPO } from './helpers/paths.ts';

let server: Awaited<ReturnType<typeof startShippedServer>>;

before(async () => {
  server = await startShippedServer();
});
after(async () => server.close());

/** The curl commands of the "Every endpoint" block (continuation lines joined), each with the comment after it. */
function readmeExamples(): { command: string; shown: string }[] {
  const readme = readFileSync(join(REPO, 'README.md'), 'utf8');
  const block = readme.slice(readme.indexOf('Every endpoint, as `npm start` answers it'));
  const code = block.slice(block.indexOf('```bash') + 7, block.indexOf('```', block.indexOf('```bash') + 7));
  const lines = code.split('\n');
  const out: { command: string; shown: string }[] = [];
  for (let i = 0; i < lines.length; i++) {
    if (!lines[i]!.startsWith('curl ')) continue;
    let command = lines[i]!;
    while (/\\\s*$/.test(command.split('#')[0]!)) command = command.replace(/\\\s*$/, ' ') + lines[++i]!.trim();
    const shown = lines[i + 1]?.startsWith('#') ? lines[i + 1]! : '';
    out.push({ command: command.replace(/\s+#\s.*$/, ''), shown });
  }
  return out;
}

function run(command: string, cwd: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) =>
    execFile('sh', ['-c', `${command} -w '\\n%{http_code}'`], { cwd, maxBuffer: 16 << 20 }, (err, stdout) => {
      if (err) return reject(new Error(`${command}: ${err.message}`));
      const cut = stdout.lastIndexOf('\n');
      resolve({ status: Number(stdout.slice(cut + 1)), body: stdout.slice(0, cut) });
    }),
  );
}

test('every curl example of the README answers as shown, against the shipped model and sample index', async () => {
  const examples = readmeExamples();
  assert.ok(examples.length >= 12, `found ${examples.length} examples`);
  const scratch = mkdtempSync(join(tmpdir(), 'medclip-readme-'));
  let ran = 0;
  for (const { command, shown } of examples) {
    // the README's files are relative to the repository; -o writes into a scratch folder
    const local = command
      .replaceAll('localhost:8787', server.url.replace('http://', ''))
      .replace(/ -o \/tmp\/(\S+)/, ` -o ${scratch}/$1`)
      .replaceAll('@samples/', `@${REPO}/samples/`)
      .replaceAll('base64 -w0 samples/', `base64 -w0 ${REPO}/samples/`)
      .replaceAll('@../shared/data/', `@${DATA}/`);
    const r = await run(local, scratch);
    ran++;
    const expected = /^# (\d{3}) /.exec(shown)?.[1];
    assert.equal(r.status, expected ? Number(expected) : 200, command);
    if (/ -o /.test(command)) {
      assert.ok(statSync(join(scratch, / -o \/tmp\/(\S+)/.exec(command)![1]!)).size > 0, command);
      continue;
    }
    if (command.includes('/openapi.json')) {
      assert.equal((JSON.parse(r.body) as { openapi: string }).openapi, '3.1.0');
      continue;
    }
    const body = JSON.parse(r.body) as Record<string, unknown>;
    // the top-level fields the README shows are fields the server sends
    for (const k of ['status', 'target', 'query', 'mode', 'hits', 'classes', 'title', 'detail', 'tookMs', 'model', 'index'])
      if (shown.includes(`"${k}":`)) assert.ok(k in body, `${command}: "${k}" is shown but not sent`);
  }
  assert.equal(ran, examples.length, 'every example ran');
});
