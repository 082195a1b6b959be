/**
 * Text reports stored as DICOM Structured Reports (Basic, Enhanced, Comprehensive Text SR): the content tree's TEXT
 * items, sorted into `findings` and `impression` when their section (a CONTAINER) or the item itself is coded as
 * such (DCM 121070/121071 Findings/Finding, DCM 121072/121073 Impressions/Impression, LOINC 59776-5 Findings,
 * 19005-8 Impression; the code meaning as a fallback), else every text item as `text`.
 */
import type dicomParser from 'dicom-parser';
import { headerOf, TEXT_SR_CLASSES, type DicomUids } from './header.ts';
import { isDicom, parseDataSet } from './decode.ts';
import { MedclipError } from '../errors.ts';

export interface SrReport {
  uids: DicomUids;
  studyDate?: string;
  /** findings / impression, or text when no section is coded. */
  text: Record<string, string>;
}

type Section = 'findings' | 'impression';

const SECTION_CODES: Record<string, Section> = {
  'DCM:121070': 'findings',
  'DCM:121071': 'findings',
  'LN:59776-5': 'findings',
  'LN:18782-3': 'findings', // Radiology Study observation (findings)
  'DCM:121072': 'impression',
  'DCM:121073': 'impression',
  'LN:19005-8': 'impression',
};

/** Decode a text element with the data set's character set (UTF-8 for ISO_IR 192, Latin-1 for ISO_IR 100, else ASCII). */
function decodeText(ds: dicomParser.DataSet, tag: string, charset: string): string | undefined {
  const el = ds.elements[tag];
  if (!el || el.length === 0) return undefined;
  const raw = ds.byteArray.subarray(el.dataOffset, el.dataOffset + el.length);
  const encoding = /ISO_IR 192/.test(charset) ? 'utf-8' : /ISO_IR 100/.test(charset) ? 'latin1' : 'utf-8';
  return new TextDecoder(encoding).decode(raw).replace(/\0/g, '').trim();
}

function sectionOf(item: dicomParser.DataSet): Section | undefined {
  const code = item.elements.x0040a043?.items?.[0]?.dataSet;
  if (!code) return undefined;
  const key = `${code.string('x00080102')?.trim()}:${code.string('x00080100')?.trim()}`;
  if (SECTION_CODES[key]) return SECTION_CODES[key];
  const meaning = code.string('x00080104')?.toLowerCase() ?? '';
  if (/impression|conclusion/.test(meaning)) return 'impression';
  if (/finding/.test(meaning)) return 'findings';
  return undefined;
}

export class SrError extends MedclipError {
  constructor(message: string) {
    super(message, 'input');
  }
}

/** Extract the report text of a text SR; throws SrError for other objects or an SR without text. */
export function readTextReport(bytes: Uint8Array): SrReport {
  if (!isDicom(bytes)) throw new SrError('not a DICOM object');
  let ds: dicomParser.DataSet;
  try {
    ds = parseDataSet(bytes);
  } catch {
    throw new SrError('structured report could not be parsed');
  }
  const header = headerOf(ds);
  if (!header) throw new SrError('not a DICOM object with study, series and instance UIDs');
  if (!TEXT_SR_CLASSES.has(header.sopClass)) throw new SrError(`SOP class ${header.sopClass} is not a text structured report`);
  const charset = ds.string('x00080005') ?? '';
  const parts: Record<Section | 'text', string[]> = { findings: [], impression: [], text: [] };
  const walk = (items: dicomParser.Element['items'], section: Section | undefined, depth: number) => {
    if (!items || depth > 50) return;
    for (const { dataSet: item } of items) {
      if (!item) continue;
      const type = item.string('x0040a040')?.trim();
      const own = sectionOf(item) ?? section;
      if (type === 'TEXT') {
        const value = decodeText(item, 'x0040a160', charset);
        if (value) parts[own ?? 'text'].push(value);
      }
      walk(item.elements.x0040a730?.items, own, depth + 1);
    }
  };
  walk(ds.elements.x0040a730?.items, sectionOf(ds), 0);
  const text: Record<string, string> = {};
  if (parts.findings.length || parts.impression.length) {
    text.findings = parts.findings.join(' ');
    text.impression = parts.impression.join(' ');
  } else if (parts.text.length) text.text = parts.text.join(' ');
  else throw new SrError('structured report holds no text');
  return { uids: { study: header.study, series: header.series, instance: header.instance }, studyDate: header.studyDate, text };
}
