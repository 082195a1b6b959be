/**
 * A stored report's sentences, split exactly as the index builder split them (the labeler's sentence split), so a
 * sentence hit's `index` finds its text. Only format-1 bundles need it (format 2 stores each sentence's text):
 * `medclip index --upgrade` and the fallback of report hits. Split once per report, within the 'report-sentences'
 * budget.
 */
import { boundedCache, stringBytes } from '../util/index.ts';
import { labelReport } from '../labeler/index.ts';
import { reportText } from '../tables/index.ts';

export class ReportSentences {
  private readonly cache = boundedCache<string, string[]>(
    'report-sentences',
    (v, k) => stringBytes(k) + v.reduce((n, x) => n + stringBytes(x) + 16, 0),
  );

  of(report: { id: string; text: Record<string, string> }): string[] {
    let s = this.cache.get(report.id);
    if (!s) {
      s = labelReport(reportText({ id: report.id, text: report.text, meta: {} })).sentences.map((x) => x.text);
      this.cache.set(report.id, s);
    }
    return s;
  }

  /** The text of sentence `index` of a report ('' if the report has fewer). */
  text(report: { id: string; text: Record<string, string> }, index: number): string {
    return this.of(report)[index] ?? '';
  }
}
