/**
 * Zero-shot class prompts in MedCLIP's style: each class is a template of severity x subtype x location phrases,
 * expanded to sentences like a radiologist would write; `samplePrompts` draws n per class with a seed.
 * Callers may bring their own classes as `{ name, prompts[] }`.
 */
import { Rng } from '../util/index.ts';
import { MedclipError } from '../errors.ts';

export interface PromptTemplate {
  severity: string[];
  subtype: string[];
  location: string[];
}

export interface ClassPrompts {
  name: string;
  prompts: string[];
}

export const BUILTIN_TEMPLATES: Record<string, PromptTemplate> = {
  Atelectasis: {
    severity: ['', 'mild', 'minimal', 'patchy'],
    subtype: [
      'subsegmental atelectasis',
      'linear atelectasis',
      'platelike atelectasis',
      'bibasilar atelectasis',
      'retrocardiac atelectasis',
      'discoid atelectasis',
      'residual atelectasis',
    ],
    location: [
      '',
      'at the lung bases',
      'at the left lung base',
      'at the right lung base',
      'in the left lower lobe',
      'in the right lower lobe',
      'in the lingula',
      'at the mid lung zone',
    ],
  },
  Cardiomegaly: {
    severity: ['', 'mild', 'moderate', 'marked'],
    subtype: [
      'cardiomegaly',
      'enlargement of the cardiac silhouette',
      'enlarged heart size',
      'enlarged cardiac contour',
      'stable cardiomegaly',
      'prominent cardiac silhouette',
    ],
    location: [''],
  },
  Consolidation: {
    severity: ['', 'focal', 'patchy', 'dense', 'increased'],
    subtype: ['consolidation', 'airspace consolidation', 'lobar consolidation', 'alveolar consolidation'],
    location: [
      '',
      'in the right lower lobe',
      'in the left lower lobe',
      'in the right upper lobe',
      'in the right middle lobe',
      'at the lung bases',
      'in the left lung base',
      'in the retrocardiac region',
    ],
  },
  Edema: {
    severity: ['', 'mild', 'moderate', 'severe', 'improving', 'persistent'],
    subtype: [
      'pulmonary edema',
      'interstitial edema',
      'alveolar edema',
      'vascular congestion',
      'pulmonary vascular congestion with interstitial edema',
      'perihilar edema',
    ],
    location: ['', 'bilaterally', 'in both lungs'],
  },
  'Pleural Effusion': {
    severity: ['', 'small', 'moderate', 'large', 'trace', 'layering'],
    subtype: ['pleural effusion', 'pleural effusions', 'pleural fluid', 'effusion with blunting of the costophrenic angle'],
    location: ['', 'on the left', 'on the right', 'bilaterally', 'at the left base', 'at the right base'],
  },
  Pneumonia: {
    severity: ['', 'focal', 'patchy', 'multifocal', 'developing', 'round'],
    subtype: [
      'pneumonia',
      'airspace opacity consistent with pneumonia',
      'consolidation compatible with pneumonia',
      'pneumonic infiltrate',
      'bronchopneumonia',
    ],
    location: [
      '',
      'in the right lower lobe',
      'in the left lower lobe',
      'in the right middle lobe',
      'in the lung bases',
      'in both lungs',
      'in the perihilar regions',
    ],
  },
  'COVID-19': {
    severity: ['', 'patchy', 'multifocal', 'bilateral', 'peripheral'],
    subtype: [
      'ground-glass opacities',
      'airspace opacities consistent with viral pneumonia',
      'opacities typical of covid-19 pneumonia',
      'consolidation and ground-glass opacity',
      'atypical pneumonia',
    ],
    location: ['', 'in both lungs', 'in the lower lung zones', 'in a peripheral distribution', 'in the lung periphery bilaterally'],
  },
  'No Finding': {
    severity: [''],
    subtype: [
      'no acute cardiopulmonary abnormality',
      'the lungs are clear',
      'normal chest radiograph',
      'heart size is normal and the lungs are clear',
      'no focal consolidation, pleural effusion or pneumothorax',
      'the cardiomediastinal silhouette is within normal limits',
      'no active disease in the chest',
    ],
    location: [''],
  },
};

export const BUILTIN_CLASS_NAMES = Object.keys(BUILTIN_TEMPLATES);

/** The classes exclusive classification uses by default: every built-in one but COVID-19, which no training image
 * shows (a class the model never saw would take probability from the others at random). */
export const DEFAULT_CLASS_NAMES = BUILTIN_CLASS_NAMES.filter((c) => c !== 'COVID-19');

/** All sentences of a template, in a fixed order. */
export function expandTemplate(t: PromptTemplate): string[] {
  const out: string[] = [];
  for (const sev of t.severity) {
    for (const sub of t.subtype) {
      for (const loc of t.location) out.push([sev, sub, loc].filter(Boolean).join(' '));
    }
  }
  return [...new Set(out)];
}

export class PromptError extends MedclipError {
  constructor(message: string) {
    super(message, 'input');
  }
}

/** Up to `n` prompts per built-in class (all when fewer), chosen with a seed: same seed, same prompts. */
export function samplePrompts(className: string, n: number, seed = 0): string[] {
  const template = BUILTIN_TEMPLATES[className];
  if (!template) throw new PromptError(`unknown built-in class "${className}"; built-in classes: ${BUILTIN_CLASS_NAMES.join(', ')}`);
  if (!Number.isInteger(n) || n < 1) throw new PromptError(`number of prompts must be a positive integer, got ${n}`);
  const all = expandTemplate(template);
  return new Rng(seed).shuffle(all).slice(0, n);
}

export const MAX_PROMPTS_PER_CLASS = 64;
export const MAX_PROMPT_LENGTH = 300;

/**
 * Resolve a class list: built-in names become sampled prompts, custom `{ name, prompts }` are checked and kept.
 * Class names must be unique.
 */
/** Prompts sampled per built-in class and the sampling seed: the same prompt set at every start (repeatable answers). */
export const PROMPTS_PER_CLASS = 10;
export const PROMPT_SEED = 0;

export function resolveClasses(
  classes: (string | ClassPrompts)[],
  promptsPerClass = PROMPTS_PER_CLASS,
  seed = PROMPT_SEED,
): ClassPrompts[] {
  if (classes.length < 2) throw new PromptError('zero-shot classification needs at least two classes');
  const seen = new Set<string>();
  return classes.map((c) => {
    const resolved = typeof c === 'string' ? { name: c, prompts: samplePrompts(c, promptsPerClass, seed) } : c;
    if (!resolved.name || typeof resolved.name !== 'string') throw new PromptError('a class needs a non-empty name');
    if (seen.has(resolved.name)) throw new PromptError(`class "${resolved.name}" is listed twice`);
    seen.add(resolved.name);
    if (!Array.isArray(resolved.prompts) || resolved.prompts.length === 0)
      throw new PromptError(`class "${resolved.name}" needs at least one prompt`);
    if (resolved.prompts.length > MAX_PROMPTS_PER_CLASS)
      throw new PromptError(`class "${resolved.name}" has ${resolved.prompts.length} prompts; at most ${MAX_PROMPTS_PER_CLASS}`);
    for (const p of resolved.prompts) {
      if (typeof p !== 'string' || !p.trim()) throw new PromptError(`class "${resolved.name}" has an empty prompt`);
      if (p.length > MAX_PROMPT_LENGTH) throw new PromptError(`class "${resolved.name}" has a prompt over ${MAX_PROMPT_LENGTH} characters`);
    }
    return { name: resolved.name, prompts: resolved.prompts.map((p) => p.trim()) };
  });
}
