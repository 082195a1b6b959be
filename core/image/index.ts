export { ImageError, type ImageErrorCode } from '../errors.ts';
export { checkDimensions, DEFAULT_IMAGE_LIMITS, type ImageLimits } from '../util/index.ts';
export * from './spec.ts';
export * from './decode.ts';
export { decodeDicom, isAcrNema, isDicom, parseDataSet, TRANSFER_SYNTAX, type GreyImage } from '../dicom/index.ts';
export * from './thumbnail.ts';
