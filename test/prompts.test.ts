import { test } from 'node:test';
import assert from 'node:assert/strict';
import { BUILTIN_CLASS_NAMES, BUILTIN_TEMPLATES, expandTemplate, PromptError, resolveClasses, samplePrompts } from '../core/model/index.ts';
import { COMPETITION_CLASSES, OBSERVATIONS, type Observation, labelSentence } from '../core/labeler/index.ts';

test('built-in classes: the five CheXpert competition classes, Pneumonia, COVID-19 and No Finding', () => {
  for (const c of [...COMPETITION_CLASSES, 'Pneumonia', 'COVID-19', 'No Finding']) assert.ok(BUILTIN_CLASS_NAMES.includes(c), c);
});

test('templates expand severity x subtype x location without duplicates', () => {
  const t = BUILTIN_TEMPLATES.Atelectasis!;
  const all = expandTemplate(t);
  assert.equal(all.length, new Set(all).size);
  assert.ok(all.length > 50);
  assert.ok(all.includes('mild subsegmental atelectasis at the lung bases'));
  assert.ok(all.every((p) => p === p.trim() && !p.includes('  ')));
});

test('seeded sampling: same seed same prompts, another seed other prompts', () => {
  const a = samplePrompts('Pleural Effusion', 10, 42);
  assert.deepEqual(a, samplePrompts('Pleural Effusion', 10, 42));
  assert.notDeepEqual(a, samplePrompts('Pleural Effusion', 10, 43));
  assert.equal(a.length, 10);
  assert.equal(new Set(a).size, 10);
  assert.equal(samplePrompts('No Finding', 1000, 1).length, expandTemplate(BUILTIN_TEMPLATES['No Finding']!).length);
  assert.throws(() => samplePrompts('Tuberculosis', 5), PromptError);
  assert.throws(() => samplePrompts('Edema', 0), PromptError);
});

test('our own labeler reads each built-in CheXpert prompt as its class', () => {
  for (const name of [...COMPETITION_CLASSES, 'Pneumonia'] as Observation[]) {
    const i = OBSERVATIONS.indexOf(name);
    for (const p of expandTemplate(BUILTIN_TEMPLATES[name]!)) assert.equal(labelSentence(p)[i], 1, `${name}: "${p}"`);
  }
  for (const p of expandTemplate(BUILTIN_TEMPLATES['No Finding']!)) assert.equal(labelSentence(p)[0], 1, `No Finding: "${p}"`);
});

test('custom classes are checked: names unique, prompts present and bounded', () => {
  const r = resolveClasses(['Edema', { name: 'Hernia', prompts: [' hiatal hernia '] }], 3, 7);
  assert.equal(r.length, 2);
  assert.equal(r[0]!.prompts.length, 3);
  assert.deepEqual(r[1], { name: 'Hernia', prompts: ['hiatal hernia'] });
  assert.throws(() => resolveClasses(['Edema']), /at least two/);
  assert.throws(() => resolveClasses(['Edema', 'Edema']), /twice/);
  assert.throws(() => resolveClasses(['Edema', { name: 'X', prompts: [] }]), /at least one prompt/);
  assert.throws(() => resolveClasses(['Edema', { name: 'X', prompts: ['  '] }]), /empty prompt/);
  assert.throws(() => resolveClasses(['Edema', { name: 'X', prompts: ['a'.repeat(301)] }]), /300/);
});
