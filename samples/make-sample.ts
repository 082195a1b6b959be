/**
 * Regenerates `samples/corpus/` from ../shared/data: every NIH val image (114), 86 Kermany val images (half
 * NORMAL, half PNEUMONIA), and the first 300 IU val reports, copied unchanged with their table rows.
 *
 *   node --import tsx samples/make-sample.ts [../shared/data]
 */
import { copyFile, mkdir, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { readTable } from '../core/tables/index.ts';

const data = process.argv[2] ?? join(import.meta.dirname, '../../shared/data');
const out = join(import.meta.dirname, 'corpus');

const quote = (v: string) => (/[",\n\r]/.test(v) ? `"${v.replace(/"/g, '""')}"` : v);
const csv = (rows: Record<string, string>[]) => {
  const cols = Object.keys(rows[0]!);
  return [cols.join(','), ...rows.map((r) => cols.map((c) => quote(r[c] ?? '')).join(','))].join('\n') + '\n';
};

const images: Record<string, string>[] = [];
const kermany = { NORMAL: 0, PNEUMONIA: 0 } as Record<string, number>;
for await (const { record } of readTable(join(data, 'images.csv'))) {
  if (record.split !== 'val') continue;
  if (record.source === 'nih') images.push(record);
  else if (record.source === 'kermany') {
    const cls = record.Pneumonia === '1' ? 'PNEUMONIA' : 'NORMAL';
    if (kermany[cls]! < 43) {
      kermany[cls]!++;
      images.push(record);
    }
  }
}
for (const r of images) {
  await mkdir(dirname(join(out, r.path!)), { recursive: true });
  await copyFile(join(data, r.path!), join(out, r.path!));
}
await writeFile(join(out, 'images.csv'), csv(images));

const reports: Record<string, string>[] = [];
for await (const { record } of readTable(join(data, 'reports/iu_reports.csv'))) {
  if (record.split === 'val' && reports.length < 300) reports.push(record);
}
await writeFile(join(out, 'reports.csv'), csv(reports));
console.log(`samples/corpus: ${images.length} images, ${reports.length} reports`);
