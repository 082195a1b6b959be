/** DICOM: datasets, pixel data (every transfer syntax the archive samples use), display (rescale, VOI, MONOCHROME1), headers, text SR reports, and a DICOMweb client. The only way in from outside this folder. */
export * from './codecs.ts';
export * from './dataset.ts';
export * from './decode.ts';
export * from './dicomweb.ts';
export * from './display.ts';
export * from './header.ts';
export * from './jpeg-extended.ts';
export * from './pixels.ts';
export * from './rle.ts';
export * from './sr.ts';
