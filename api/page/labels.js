// Labels and explanations shown on results, in the query panel and in the dialogs: finding chips with polarity,
// why a hit was returned, the relevance badge.
import { el } from './dom.js';

const POLARITY = { 1: 'positive', 0: 'negative', '-1': 'uncertain' };

/** Chips for labels: positives and uncertain ones (and negatives with `withNegatives`); shared findings marked. */
export function labelChips(labels, matched, withNegatives = false) {
  const list = el('ul', { class: 'chips', 'aria-label': 'labels' });
  const entries = Object.entries(labels).sort(([, a], [, b]) => b - a);
  for (const [name, value] of entries) {
    const polarity = POLARITY[value];
    if (polarity === 'negative' && !withNegatives) continue;
    const isMatched = matched.includes(name);
    const text = polarity === 'positive' ? name : polarity === 'negative' ? `no ${name}` : `${name}?`;
    const chip = el(
      'li',
      {
        class: `chip ${polarity}${isMatched ? ' matched' : ''}`,
        title: `${name}: ${polarity}${isMatched ? ', shared with the query' : ''}`,
      },
      isMatched ? `✓ ${text}` : text,
    );
    if (isMatched) chip.append(el('span', { class: 'sr-only' }, ' (shared with the query)'));
    list.append(chip);
  }
  if (!list.children.length) list.append(el('li', { class: 'chip' }, 'no labels'));
  return list;
}

export function queryFindingText(f) {
  return f.polarity === 'positive' ? f.name : f.polarity === 'negative' ? `no ${f.name}` : `${f.name}?`;
}

export function explainImage(hit) {
  const parts = [`similarity ${hit.score.toFixed(3)}`];
  if (hit.evidence) parts.push(`its report is relevant (${Math.round((hit.relevance ?? 0) * 100)}%)`);
  if (hit.labelSource === 'report') parts.push("labels from the study's report");
  parts.push(hit.matched.length ? `shares ${hit.matched.join(', ')} with the query` : 'no finding in common with the query');
  return parts.join(' · ');
}

export function relevanceBadge(relevance) {
  const pct = Math.round(relevance * 100);
  const level = relevance >= 0.7 ? 'high' : relevance < 0.3 ? 'low' : '';
  return el('span', { class: `badge ${level}`, title: 'calibrated probability that this report is relevant' }, `relevance ${pct}%`);
}
