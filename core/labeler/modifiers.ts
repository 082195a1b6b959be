/**
 * Modifiers of a finding in a query or a report sentence: laterality, extent (size and severity), change over time and
 * location. "Small left pleural effusion" -> { side: ['left'], extent: ['small'] }; "bibasilar atelectasis" ->
 * { side: ['bilateral'], location: ['base'] }; "RLL pneumonia" -> { side: ['right'], location: ['lower lobe'] }.
 * Report search ranks a sentence that agrees with the query's modifiers first and demotes one that contradicts them
 * (left for right, small for large); `agreementOfModifiers` gives that agreement in [-1, 1].
 *
 *   extractModifiers('Interval increase in moderate right pleural effusion');
 *   // { side: ['right'], extent: ['moderate'], change: ['increased'] }
 */

export const MODIFIER_KINDS = ['side', 'extent', 'change', 'location'] as const;
export type ModifierKind = (typeof MODIFIER_KINDS)[number];
/** Values per kind, in a fixed order (each list sorted as declared below). */
export type Modifiers = Partial<Record<ModifierKind, string[]>>;

/** Word patterns (lower case) and the values they stand for, per kind. */
const RULES: Record<ModifierKind, [RegExp, string[]][]> = {
  side: [
    [/\b(?:bilateral(?:ly)?|both|bibasilar|bibasal|bibasally|biapical)\b/, ['bilateral']],
    [/\bleft\b(?!\s*(?:upper|lower)\s*quadrant)|\bl[lu]l\b/, ['left']],
    [/\bright\b(?!\s*(?:upper|lower)\s*quadrant)|\br[lmu]l\b/, ['right']],
  ],
  extent: [
    [/\b(?:small|tiny|trace|minimal|minimally)\b/, ['small']],
    [/\bmild(?:ly)?\b/, ['mild']],
    [/\bmoderate(?:ly)?\b/, ['moderate']],
    [/\b(?:large|massive|extensive)\b/, ['large']],
    [/\bsevere(?:ly)?\b/, ['severe']],
  ],
  change: [
    [/\bnew(?:ly)?\b/, ['new']],
    [/\b(?:increas(?:ed|ing|e)|enlarg(?:ed|ing)|worse(?:ned|ning)?|progress(?:ed|ing|ion))\b/, ['increased']],
    [/\b(?:decreas(?:ed|ing|e)|smaller|improv(?:ed|ing|ement)|diminish(?:ed|ing))\b/, ['decreased']],
    [/\b(?:stable|unchanged|persistent|persists|no (?:\w+ ){0,2}change)\b/, ['stable']],
    [/\b(?:resolv(?:ed|ing)|resolution|cleared)\b/, ['resolved']],
  ],
  location: [
    [/\b(?:upper lobes?|upper lung|[lr]ul)\b/, ['upper lobe']],
    [/\b(?:middle lobe|rml)\b/, ['middle lobe']],
    [/\b(?:lower lobes?|lower lung|[lr]ll)\b/, ['lower lobe']],
    [/\b(?:bases?|basilar|basal|bibasilar|bibasal|bibasally)\b/, ['base']],
    [/\b(?:apex|apices|apical|biapical)\b/, ['apex']],
    [/\blingula(?:r)?\b/, ['lingula']],
    [/\bretrocardiac\b/, ['retrocardiac']],
    [/\bperihilar\b/, ['perihilar']],
  ],
};

/** Words that set extent values apart for agreement: small/mild and large/severe are the same end of the scale. */
const EXTENT_LEVEL: Record<string, number> = { small: 0, mild: 0, moderate: 1, large: 2, severe: 2 };

/** The modifiers a text states (a query, or one report sentence); kinds it does not state are left out. */
export function extractModifiers(text: string): Modifiers {
  const lower = text.toLowerCase().replace(/–/g, ' ');
  const out: Modifiers = {};
  for (const kind of MODIFIER_KINDS) {
    const values: string[] = [];
    for (const [re, vs] of RULES[kind]) if (re.test(lower)) for (const v of vs) if (!values.includes(v)) values.push(v);
    // "bilateral" already says both sides
    if (kind === 'side' && values.includes('bilateral')) values.splice(0, values.length, 'bilateral');
    if (values.length) out[kind] = values;
  }
  return out;
}

/** Whether a modifier set states anything. */
export function hasModifiers(m: Modifiers | undefined): boolean {
  return m !== undefined && MODIFIER_KINDS.some((k) => (m[k]?.length ?? 0) > 0);
}

/**
 * How a sentence's modifiers agree with a query's, in [-1, 1]: per kind the query states, +1 when the sentence
 * states a matching value, -1 when it states only conflicting ones (left for right; small for large), 0 when it is
 * silent; averaged over the query's kinds. Also the query's values the sentence matched, for the hit to name.
 */
export function agreementOfModifiers(query: Modifiers, sentence: Modifiers | undefined): { agreement: number; matched: string[] } {
  const kinds = MODIFIER_KINDS.filter((k) => query[k]?.length);
  if (!kinds.length || !sentence) return { agreement: 0, matched: [] };
  let total = 0;
  const matched: string[] = [];
  for (const k of kinds) {
    const want = query[k]!;
    const have = sentence[k];
    if (!have?.length) continue;
    const same = want.filter((v) => have.includes(v) || (k === 'extent' && have.some((h) => EXTENT_LEVEL[h] === EXTENT_LEVEL[v])));
    if (same.length) {
      total += 1;
      matched.push(...same);
    } else if (k === 'side' && (want.includes('bilateral') || have.includes('bilateral'))) {
      // one side against both sides: neither agreement nor contradiction
    } else if (k === 'change' || k === 'location') {
      // another location or time course is not a contradiction of the finding (a lobe and its base can both hold it)
      total += 0;
    } else total -= 1;
  }
  return { agreement: total / kinds.length, matched };
}
