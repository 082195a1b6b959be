/**
 * The relevance calibration: a logistic regression of the judged hits' relevance on their ranking features, fitted
 * by Newton's method (`medclip eval --task search --fit-relevance`).
 */

import { RELEVANCE as SHIPPED_RELEVANCE, type RELEVANCE } from '../core/search/index.ts';
import type { SearchEval } from './search-judgements.ts';

/**
 * Logistic regression of relevance on (dense cosine, agreements, BM25), by Newton's method on the judged hits:
 * the coefficients `reportRelevance` uses. Features are centred on the dense mean so the fit is well conditioned.
 */
export function fitRelevance(judged: SearchEval['judged']): typeof RELEVANCE {
  const denseCenter = judged.reduce((s, j) => s + j.dense, 0) / Math.max(1, judged.length);
  const X = judged.map((j) => [1, (j.dense - denseCenter) * 100, j.agreement, j.reportAgreement, j.lexical]);
  const y = judged.map((j) => (j.relevant ? 1 : 0));
  const n = 5;
  let w = new Array<number>(n).fill(0);
  for (let it = 0; it < 50; it++) {
    const g = new Array<number>(n).fill(0);
    const H = Array.from({ length: n }, () => new Array<number>(n).fill(0));
    X.forEach((x, i) => {
      const p = 1 / (1 + Math.exp(-x.reduce((s, v, a) => s + v * w[a]!, 0)));
      for (let a = 0; a < n; a++) {
        g[a]! += (p - y[i]!) * x[a]!;
        for (let b = 0; b < n; b++) H[a]![b]! += p * (1 - p) * x[a]! * x[b]!;
      }
    });
    for (let a = 0; a < n; a++) H[a]![a]! += 1e-3; // a touch of ridge: separable data stays finite
    const step = solve(H, g);
    w = w.map((v, a) => v - step[a]!);
  }
  const r = (x: number) => Math.round(x * 10000) / 10000;
  return {
    bias: r(w[0]!),
    dense: r(w[1]! * 100),
    agreement: r(w[2]!),
    reportAgreement: r(w[3]!),
    lexical: r(w[4]!),
    // the judged finding queries state no modifiers: their weight is the shipped one (chosen on the modifier queries)
    modifiers: SHIPPED_RELEVANCE.modifiers,
    denseCenter: r(denseCenter),
  };
}

/** Gaussian elimination with partial pivoting (the Newton step). */
export function solve(A: number[][], b: number[]): number[] {
  const n = b.length;
  const m = A.map((row, i) => [...row, b[i]!]);
  for (let c = 0; c < n; c++) {
    let p = c;
    for (let r = c + 1; r < n; r++) if (Math.abs(m[r]![c]!) > Math.abs(m[p]![c]!)) p = r;
    [m[c], m[p]] = [m[p]!, m[c]!];
    for (let r = 0; r < n; r++) {
      if (r === c) continue;
      const f = m[r]![c]! / m[c]![c]!;
      for (let k = c; k <= n; k++) m[r]![k]! -= f * m[c]![k]!;
    }
  }
  return m.map((row, i) => row[n]! / row[i]!);
}
