// The layout the README promises, checked on the sources themselves: core packages are entered only through their
// door (index.ts), no import circle between files or between packages, stages import core only (the evaluation
// stage may build a bundle with the index builder; the CLI is where stages meet), and no source file grows past
// 400 lines unless its header says why.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, normalize, relative } from 'node:path';
import { REPO } from './helpers/paths.ts';

const SOURCE_ROOTS = ['core', 'api', 'cli', 'index-builder', 'train', 'eval', 'infra', 'bench'];
const STAGES_MAY_IMPORT: Record<string, string[]> = {
  eval: ['index-builder'],
  cli: ['api', 'eval', 'index-builder', 'train'],
  bench: ['api', 'eval', 'index-builder', 'infra', 'train'],
};

function sources(dir: string): string[] {
  return readdirSync(join(REPO, dir)).flatMap((name) => {
    const rel = join(dir, name);
    if (statSync(join(REPO, rel)).isDirectory()) return sources(rel);
    return /\.(ts|mjs)$/.test(name) ? [rel] : [];
  });
}

const IMPORT = /(?:import|export)\s[^'";]*?from\s+['"](\.[^'"]+)['"]|import\(\s*['"](\.[^'"]+)['"]\s*\)/g;

/** Every source file's relative imports, as repository paths. */
function importGraph(): Map<string, string[]> {
  const graph = new Map<string, string[]>();
  for (const file of SOURCE_ROOTS.flatMap(sources)) {
    const text = readFileSync(join(REPO, file), 'utf8');
    graph.set(
      file,
      [...text.matchAll(IMPORT)].map((m) => normalize(join(dirname(file), m[1] ?? m[2]!))),
    );
  }
  return graph;
}

/** `core/<package>` for a file inside a core package, `core/errors` for core/errors.ts, else the stage folder. */
function unit(file: string): string {
  const parts = file.split('/');
  if (parts[0] !== 'core') return parts[0]!;
  return parts.length > 2 ? `core/${parts[1]}` : `core/${parts[1]!.replace(/\.ts$/, '')}`;
}

function cycles(graph: Map<string, Iterable<string>>): string[][] {
  const found: string[][] = [];
  const state = new Map<string, 'open' | 'done'>();
  const visit = (node: string, path: string[]) => {
    state.set(node, 'open');
    path.push(node);
    for (const next of graph.get(node) ?? []) {
      if (state.get(next) === 'open') found.push([...path.slice(path.indexOf(next)), next]);
      else if (!state.has(next)) visit(next, path);
    }
    path.pop();
    state.set(node, 'done');
  };
  for (const node of graph.keys()) if (!state.has(node)) visit(node, []);
  return found;
}

const graph = importGraph();

test('core packages are entered only through their door (index.ts)', () => {
  const behind: string[] = [];
  for (const [file, targets] of graph)
    for (const target of targets) {
      const parts = target.split('/');
      const inPackage = parts[0] === 'core' && parts.length > 2;
      if (inPackage && unit(file) !== unit(target) && parts[2] !== 'index.ts') behind.push(`${file} -> ${target}`);
    }
  assert.deepEqual(behind, []);
});

test('no import circle between files, nor between core packages', () => {
  assert.deepEqual(cycles(graph), [], 'file circles');
  const packages = new Map<string, Set<string>>();
  for (const [file, targets] of graph)
    for (const target of targets)
      if (unit(file).startsWith('core/') && unit(target).startsWith('core/') && unit(file) !== unit(target))
        packages.set(unit(file), (packages.get(unit(file)) ?? new Set()).add(unit(target)));
  assert.deepEqual(cycles(packages), [], 'package circles');
});

test('stages import core, not each other (eval may build a bundle; the CLI and the benches compose stages)', () => {
  const wrong: string[] = [];
  for (const [file, targets] of graph) {
    const from = unit(file);
    if (from.startsWith('core/')) {
      for (const t of targets) if (!unit(t).startsWith('core/')) wrong.push(`${file} -> ${t} (core imports a stage)`);
      continue;
    }
    for (const t of targets) {
      const to = unit(t);
      if (to === from || to.startsWith('core/')) continue;
      if (!(STAGES_MAY_IMPORT[from] ?? []).includes(to)) wrong.push(`${file} -> ${t}`);
    }
  }
  assert.deepEqual(wrong, []);
});

test('no source file over 400 lines unless its header says why', () => {
  const long = [...graph.keys()].filter((file) => {
    const text = readFileSync(join(REPO, file), 'utf8');
    const header = /^\/\*\*[\s\S]*?\*\//.exec(text)?.[0] ?? '';
    return text.split('\n').length > 400 && !header.includes('longer than 400 lines');
  });
  assert.deepEqual(
    long.map((f) => relative(REPO, join(REPO, f))),
    [],
  );
});
