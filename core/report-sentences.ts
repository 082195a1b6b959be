/**
 * A stored report's sentences, split exactly as the index builder split them (the labeler's sentence split), so a
 * sentence hit's `index` finds its text. Split once per report and kept within the 'report-sentences' budget.
 */
import { boundedCache, stringBytes } from './cache.ts';
import { labelReport } from './labeler/labeler.ts';
import { OBSERVATIONS } from './labels.ts';
import { reportText } from './reports.ts';
import type { StoredLabels } from './index.ts';

interface Split {
  sentences: string[];
  /** The labeler's labels of the whole report (for ranking: does the report as a whole affirm a finding). */
  labels: StoredLabels;
}

export class ReportSentences {
  private readonly cache = boundedCache<string, Split>(
    'report-sentences',
    (v, k) => stringBytes(k) + 256 + v.sentences.reduce((n, x) => n + stringBytes(x) + 16, 0),
  );

  private split(report: { id: string; text: Record<string, string> }): Split {
    let s = this.cache.get(report.id);
    if (!s) {
      const labelled = labelReport(reportText({ id: report.id, text: report.text, meta: {} }));
      const labels: StoredLabels = {};
      labelled.labels.forEach((v, i) => {
        if (v !== null) labels[OBSERVATIONS[i]!] = v;
      });
      s = { sentences: labelled.sentences.map((x) => x.text), labels };
      this.cache.set(report.id, s);
    }
    return s;
  }

  of(report: { id: string; text: Record<string, string> }): string[] {
    return this.split(report).sentences;
  }

  /** The text of sentence `index` of a report ('' if the report has fewer). */
  text(report: { id: string; text: Record<string, string> }, index: number): string {
    return this.of(report)[index] ?? '';
  }
}
