/** The 14 CheXpert observations and the rule-based report labeler (sentences, phrases, negation and uncertainty). The only way in from outside this folder. */
export * from './evaluate.ts';
export * from './labeler.ts';
export * from './labels.ts';
export * from './phrases.ts';
export * from './sentences.ts';
export * from './modifiers.ts';
