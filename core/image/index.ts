export * from './errors.ts';
export * from './spec.ts';
export * from './decode.ts';
export { decodeDicom, isAcrNema, isDicom, parseDataSet, TRANSFER_SYNTAX, type GreyImage } from './dicom.ts';
export * from './thumbnail.ts';
