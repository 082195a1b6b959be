/**
 * Findings mode: multi-label zero-shot over the 14 observations, as CheXzero does it. Each observation has a set
 * of positive prompts ("there is a right pleural effusion") and negative ones ("no pleural effusion"); an image's
 * probability that the finding is present is the softmax over the pair of its similarities to the two (mean,
 * re-normalised prompt embeddings), i.e. sigmoid(logitScale * (cos_pos - cos_neg) / temperature). Each finding is
 * independent: an image can have several, and "No Finding" is reported only when no positive finding is.
 * The temperature is fitted on val images (`fitFindingsTemperature`) and stored in the model manifest.
 */
import { OBSERVATIONS, type Observation } from '../labeler/index.ts';
import { createHash } from 'node:crypto';
import { BUILTIN_TEMPLATES, PromptError } from './prompts.ts';

export interface FindingPrompts {
  positive: string[];
  negative: string[];
}

/** Written like report sentences (the text encoder learned from IU reports), both polarities per observation. */
export const FINDING_PROMPTS: Record<Observation, FindingPrompts> = {
  'No Finding': {
    positive: ['no acute cardiopulmonary abnormality', 'the lungs are clear', 'normal chest radiograph', 'no active disease in the chest'],
    negative: [
      'acute cardiopulmonary abnormality',
      'abnormal chest radiograph',
      'there is active disease in the chest',
      'the lungs are not clear',
    ],
  },
  'Enlarged Cardiomediastinum': {
    positive: ['the mediastinum is widened', 'enlarged cardiomediastinal silhouette', 'mediastinal widening'],
    negative: ['the mediastinum is normal', 'normal cardiomediastinal silhouette', 'no mediastinal widening'],
  },
  Cardiomegaly: {
    positive: ['cardiomegaly', 'the heart is enlarged', 'enlarged cardiac silhouette', 'moderate cardiomegaly'],
    negative: ['no cardiomegaly', 'the heart is normal in size', 'normal heart size', 'heart size is within normal limits'],
  },
  'Lung Lesion': {
    positive: ['there is a pulmonary nodule', 'a mass in the right upper lobe', 'lung nodule', 'a pulmonary mass'],
    negative: ['no pulmonary nodule', 'no lung mass', 'no nodules or masses', 'no focal lung lesion'],
  },
  'Lung Opacity': {
    positive: [
      'there is an airspace opacity',
      'patchy opacities in the lung bases',
      'pulmonary infiltrate',
      'increased opacity in the right lower lobe',
    ],
    negative: ['no airspace opacity', 'no focal opacity', 'no pulmonary infiltrate', 'the lungs are clear without opacity'],
  },
  Edema: {
    positive: ['pulmonary edema', 'interstitial edema', 'vascular congestion with pulmonary edema', 'mild pulmonary edema'],
    negative: ['no pulmonary edema', 'no vascular congestion', 'no edema', 'no evidence of pulmonary edema'],
  },
  Consolidation: {
    positive: ['there is a focal consolidation', 'consolidation in the left lower lobe', 'airspace consolidation', 'lobar consolidation'],
    negative: ['no focal consolidation', 'no consolidation', 'no airspace consolidation', 'no evidence of consolidation'],
  },
  Pneumonia: {
    positive: ['pneumonia', 'right lower lobe pneumonia', 'findings consistent with pneumonia', 'multifocal pneumonia'],
    negative: ['no pneumonia', 'no evidence of pneumonia', 'no findings of pneumonia', 'pneumonia is not seen'],
  },
  Atelectasis: {
    positive: ['atelectasis', 'bibasilar atelectasis', 'subsegmental atelectasis at the left base', 'linear atelectasis'],
    negative: ['no atelectasis', 'no evidence of atelectasis', 'no collapse', 'no subsegmental atelectasis'],
  },
  Pneumothorax: {
    positive: ['there is a pneumothorax', 'right pneumothorax', 'small left apical pneumothorax', 'large pneumothorax'],
    negative: ['no pneumothorax', 'there is no pneumothorax', 'no evidence of pneumothorax', 'pneumothorax is not seen'],
  },
  'Pleural Effusion': {
    positive: [
      'there is a right pleural effusion',
      'small left pleural effusion',
      'bilateral pleural effusions',
      'moderate pleural effusion',
    ],
    negative: ['no pleural effusion', 'there is no pleural effusion', 'no effusion', 'no evidence of pleural effusion'],
  },
  'Pleural Other': {
    positive: [
      'pleural thickening',
      'apical pleural thickening',
      'pleural scarring',
      'blunting of the costophrenic angle from pleural thickening',
    ],
    negative: ['no pleural thickening', 'no pleural abnormality', 'the pleura is normal', 'no pleural scarring'],
  },
  Fracture: {
    positive: ['there is a rib fracture', 'healed rib fracture', 'acute fracture', 'compression fracture of a vertebral body'],
    negative: ['no fracture', 'no rib fracture', 'no acute bony abnormality', 'the bones are intact'],
  },
  'Support Devices': {
    positive: ['endotracheal tube in place', 'a central venous catheter', 'pacemaker leads in place', 'nasogastric tube in the stomach'],
    negative: ['no support devices', 'no tubes or lines', 'no catheters', 'no medical devices'],
  },
};

/** Observation names, matched case-insensitively ("pleural effusion" -> "Pleural Effusion"). */
export function resolveFindingNames(names: string[] | undefined): Observation[] {
  if (!names || names.length === 0) return [...OBSERVATIONS];
  const byLower = new Map(OBSERVATIONS.map((o) => [o.toLowerCase(), o]));
  const out: Observation[] = [];
  for (const n of names) {
    const o = typeof n === 'string' ? byLower.get(n.trim().toLowerCase()) : undefined;
    if (!o) throw new PromptError(`unknown finding "${String(n)}" (findings mode knows: ${OBSERVATIONS.join(', ')})`);
    if (out.includes(o)) throw new PromptError(`finding "${o}" is listed twice`);
    out.push(o);
  }
  return out;
}

const sigmoid = (x: number) => 1 / (1 + Math.exp(-x));

/** P(present) for one finding from its positive-minus-negative cosine margin. */
export function findingProbability(margin: number, logitScale: number, temperature: number): number {
  return sigmoid((logitScale * margin) / temperature);
}

/**
 * The temperature that minimises the negative log-likelihood of known labels (golden-section search over log T),
 * given each labelled case's cosine margin. Unknown labels are left out by the caller.
 */
export function fitFindingsTemperature(
  cases: { margin: number; present: boolean }[],
  logitScale: number,
): { temperature: number; nll: number } {
  const nll = (logT: number) => {
    const t = Math.exp(logT);
    let s = 0;
    for (const c of cases) {
      const p = Math.min(1 - 1e-7, Math.max(1e-7, findingProbability(c.margin, logitScale, t)));
      s -= c.present ? Math.log(p) : Math.log(1 - p);
    }
    return s / Math.max(1, cases.length);
  };
  let [a, b] = [Math.log(0.05), Math.log(50)];
  const g = (Math.sqrt(5) - 1) / 2;
  for (let i = 0; i < 80; i++) {
    const c = b - g * (b - a);
    const d = a + g * (b - a);
    if (nll(c) < nll(d)) b = d;
    else a = c;
  }
  const logT = (a + b) / 2;
  return { temperature: Math.exp(logT), nll: nll(logT) };
}

/** A fingerprint of every built-in prompt (classes and findings), recorded in index bundles. */
export const PROMPTS_VERSION = createHash('sha256')
  .update(JSON.stringify([BUILTIN_TEMPLATES, FINDING_PROMPTS]))
  .digest('hex')
  .slice(0, 12);
