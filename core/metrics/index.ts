/** Evaluation metrics shared by training (validation) and the eval stage: zero-shot scoring, ROC AUC, per-class reports. The only way in from outside this folder. */
export * from './zeroshot.ts';
export * from './auc-interval.ts';
