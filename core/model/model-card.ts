/**
 * A model's card (`card.json` in its bundle, listed in the manifest with its sha256): what it was trained on and, per
 * observation, how well its findings mode separates that finding on held-out validation images — ROC AUC with a 95%
 * bootstrap interval and the counts, per source and pooled over the adult sources (an archive's mix). A finding is
 * *validated* when the pooled interval's lower bound reaches the card's threshold; every answer that shows a finding
 * says whether it is, and ranking uses only validated findings.
 *
 *   const card = model.card;                     // undefined for a model without one: nothing is validated
 *   findingValidity(card, 'Pneumonia');          // { validated: true, auc: 0.91 }
 */
import { readFile, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { createHash } from 'node:crypto';
import { OBSERVATIONS } from '../labeler/index.ts';
import { MedclipError } from '../errors.ts';

export const CARD_FORMAT = 'medclip-card/1';
export const CARD_FILE = 'card.json';
/** The pooled lower 95% bound a finding's AUC must reach to be marked validated. */
export const VALIDATION_THRESHOLD = 0.7;

export interface FindingEvidence {
  auc?: number;
  /** 95% bootstrap interval of the AUC. */
  ci95?: [number, number];
  positives: number;
  negatives: number;
}

export interface CardFinding extends FindingEvidence {
  /** The pooled lower bound reaches the card's threshold. */
  validated: boolean;
  bySource: Record<string, FindingEvidence>;
}

export interface ModelCard {
  format: string;
  model: string;
  createdAt: string;
  threshold: number;
  /** The rule, in words, for anyone reading the card without this code. */
  rule: string;
  evaluatedOn: { images: string; split?: string; pool: string[]; pooled: number; bySource: Record<string, number> };
  trainedOn?: unknown;
  findings: Record<string, CardFinding>;
}

/** Whether a finding is validated by a card, with its pooled AUC; anything the card does not vouch for is not. */
export interface Validity {
  validated: boolean;
  auc?: number;
}

export function findingValidity(card: ModelCard | undefined, name: string): Validity {
  const f = card?.findings[name];
  if (!f) return { validated: false };
  return { validated: f.validated, ...(f.auc !== undefined ? { auc: Math.round(f.auc * 1000) / 1000 } : {}) };
}

class CardError extends MedclipError {
  constructor(message: string) {
    super(message, 'data');
  }
}

/** A card read from a bundle, checked for the fields the API relies on. */
export function parseCard(text: string, where: string): ModelCard {
  let raw: Partial<ModelCard>;
  try {
    raw = JSON.parse(text) as Partial<ModelCard>;
  } catch {
    throw new CardError(`${where}: not valid JSON`);
  }
  if (raw?.format !== CARD_FORMAT)
    throw new CardError(`${where}: unsupported card format "${String(raw?.format)}" (expected ${CARD_FORMAT})`);
  if (!raw.findings || typeof raw.findings !== 'object') throw new CardError(`${where}: no findings`);
  for (const [name, f] of Object.entries(raw.findings)) {
    if (!(OBSERVATIONS as readonly string[]).includes(name)) throw new CardError(`${where}: unknown finding "${name}"`);
    if (typeof f?.validated !== 'boolean') throw new CardError(`${where}: ${name} has no validated flag`);
  }
  return raw as ModelCard;
}

/**
 * Write a card into a model bundle and list it in the manifest (the manifest is replaced by rename). The manifest's
 * sha256 is the model's identity: index bundles built before are rebuilt against it.
 */
export async function writeModelCard(dir: string, card: ModelCard): Promise<void> {
  const text = JSON.stringify(card, null, 2) + '\n';
  const cardTmp = join(dir, `${CARD_FILE}.tmp-${process.pid}`);
  await writeFile(cardTmp, text);
  await rename(cardTmp, join(dir, CARD_FILE));
  const file = join(dir, 'manifest.json');
  const manifest = JSON.parse(await readFile(file, 'utf8')) as { card?: string; sha256: Record<string, string> };
  manifest.card = CARD_FILE;
  manifest.sha256 = { ...manifest.sha256, [CARD_FILE]: createHash('sha256').update(text).digest('hex') };
  const tmp = `${file}.tmp-${process.pid}`;
  await writeFile(tmp, JSON.stringify(manifest, null, 2) + '\n');
  await rename(tmp, file);
}
