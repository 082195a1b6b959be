/**
 * Report text -> sentences -> clauses.
 *
 * Reports are free text with habits of their own: numbered lists ("1. ... 2. ..."), the IU de-identification
 * token `XXXX`, decimals ("2.5 cm"), abbreviations ("approx.", "Dr."), and missing final periods.
 */

const ABBREVIATIONS = ['approx', 'dr', 'vs', 'e.g', 'i.e', 'etc', 'no', 'pt', 'st', 'mr', 'mrs', 'ms', 'fig', 'cf'];
const ABBREV_RE = new RegExp(`\\b(${ABBREVIATIONS.map((a) => a.replace('.', '\\.')).join('|')})\\.(?=\\s+[a-z0-9])`, 'gi');

/** Normalise whitespace and the de-identification token; keeps case. */
export function normaliseReportText(text: string): string {
  return text
    .replace(/\r\n?/g, '\n')
    .replace(/\bX{2,}\b/g, 'XXXX')
    .replace(/[ \t\u00a0]+/g, ' ')
    .trim();
}

/**
 * Split a report into sentences. Numbered-list markers become sentence breaks and are dropped,
 * decimals and a few abbreviations do not end a sentence.
 */
export function splitSentences(text: string): string[] {
  let t = normaliseReportText(text);
  if (!t) return [];
  // Protect decimals and abbreviations.
  t = t.replace(/(\d)\.(\d)/g, '$1\u2024$2');
  t = t.replace(ABBREV_RE, (m) => m.replace('.', '\u2024'));
  // Numbered list markers at start or after a break: "1. ", "2) ", "(3) ".
  t = t.replace(/(^|[\n.;:]\s*|\s)\(?\d{1,2}[.)]\s+(?=[A-Za-z])/g, (_m, pre: string) => `${pre.trim() ? pre.trimEnd() : ''}\n`);
  const parts = t.split(/(?<=[.!?])\s+|\n+|(?<=[.!?])(?=[A-Z])/);
  const out: string[] = [];
  for (const part of parts) {
    const s = part
      .replace(/\u2024/g, '.')
      .replace(/^[\s\-*•.,;:]+/, '')
      .replace(/\s+/g, ' ')
      .trim();
    if (/[A-Za-z]{2,}/.test(s)) out.push(s);
  }
  return out;
}

/** Words that end the reach of a negation or uncertainty cue, like NegEx's terminators. */
const CLAUSE_BREAKS = [
  /;/,
  /\s+but\s+/,
  /,?\s+however,?\s+/,
  /\s+although\s+/,
  /\s+though\s+/,
  /,?\s+except\s+(?:for\s+)?/,
  /,?\s+aside from\s+/,
  /,?\s+apart from\s+/,
  /,?\s+other than\s+/,
  /,?\s+which\s+/,
  /,?\s+whereas\s+/,
  /,?\s+while\s+/,
  /,?\s+otherwise\s+/,
  /,?\s+with the exception of\s+/,
  /\s+and\s+(?=(?:there|the|a|an|mild|moderate|severe|small|large|minimal|stable|new|persistent|chronic|increased|decreased|slight|trace|tiny|possible|probable|likely|left|right|bilateral|bibasilar)\b)/,
  /,\s*(?=(?:there|the|a|an|possible|probable|likely|consistent|compatible|suggest\w*|may|could|which|this|these|it|is|are)\b)/,
  /\s+with\s+(?=(?:mild|moderate|severe|small|large|minimal|stable|new|persistent|chronic|increased|slight|trace|tiny|possible|probable|likely|bibasilar|left|right|bilateral|associated)\b)/,
];
const CLAUSE_BREAK_RE = new RegExp(CLAUSE_BREAKS.map((r) => r.source).join('|'), 'g');

/** Lowercase a sentence and split it into clauses that bound cue scope. */
export function splitClauses(sentence: string): string[] {
  const s = ` ${sentence.toLowerCase().replace(/[.!?]+$/, '')} `;
  return s
    .split(CLAUSE_BREAK_RE)
    .map((c) => c.trim())
    .filter((c) => c.length > 0);
}
