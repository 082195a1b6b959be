/**
 * What an index needs from a DICOM instance's header: its UIDs (study, series, SOP instance and class), modality,
 * body part, view and study date. Parsed up to the pixel data, so a 50 MB X-ray is not walked twice.
 */
import type dicomParser from 'dicom-parser';
import { isDicom, parseDataSet } from './decode.ts';

export interface DicomUids {
  study: string;
  series: string;
  instance: string;
}

export interface DicomHeader extends DicomUids {
  sopClass: string;
  modality?: string;
  bodyPart?: string;
  viewPosition?: string;
  /** YYYYMMDD */
  studyDate?: string;
}

/** SOP classes that hold no image (structured reports, presentation states, key objects, raw data, PDFs, waveforms). */
export function isNonImageSopClass(uid: string): boolean {
  return (
    uid.startsWith('1.2.840.10008.5.1.4.1.1.88.') || // structured reports, key object selection
    uid.startsWith('1.2.840.10008.5.1.4.1.1.11.') || // presentation states
    uid.startsWith('1.2.840.10008.5.1.4.1.1.9.') || // waveforms
    uid.startsWith('1.2.840.10008.5.1.4.1.1.104.') || // encapsulated documents
    uid === '1.2.840.10008.5.1.4.1.1.66' || // raw data
    uid.startsWith('1.2.840.10008.5.1.4.1.1.481.') // RT plans, structures, doses (not X-rays)
  );
}

/** Text SR SOP classes the report extractor reads: Basic, Enhanced and Comprehensive SR (and 3D). */
export const TEXT_SR_CLASSES = new Set([
  '1.2.840.10008.5.1.4.1.1.88.11',
  '1.2.840.10008.5.1.4.1.1.88.22',
  '1.2.840.10008.5.1.4.1.1.88.33',
  '1.2.840.10008.5.1.4.1.1.88.34',
]);

const text = (ds: dicomParser.DataSet, tag: string) => ds.string(tag)?.replace(/\0/g, '').trim() || undefined;

/** The header of a DICOM file, or undefined when the bytes are not DICOM or lack the UIDs. */
export function readDicomHeader(bytes: Uint8Array): DicomHeader | undefined {
  if (!isDicom(bytes)) return undefined;
  try {
    return headerOf(parseDataSet(bytes, 'x7fe00010'));
  } catch {
    return undefined;
  }
}

/** The header fields of a parsed data set, or undefined without its UIDs. */
export function headerOf(ds: dicomParser.DataSet): DicomHeader | undefined {
  const study = text(ds, 'x0020000d');
  const series = text(ds, 'x0020000e');
  const instance = text(ds, 'x00080018');
  if (!study || !series || !instance) return undefined;
  return {
    study,
    series,
    instance,
    sopClass: text(ds, 'x00080016') ?? '',
    modality: text(ds, 'x00080060')?.toUpperCase(),
    bodyPart: text(ds, 'x00180015')?.toUpperCase(),
    viewPosition: text(ds, 'x00185101')?.toUpperCase(),
    studyDate: text(ds, 'x00080020'),
  };
}
