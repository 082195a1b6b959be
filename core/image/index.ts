export { ImageError, type ImageErrorCode } from '../errors.ts';
export { checkDimensions, DEFAULT_IMAGE_LIMITS, type ImageLimits } from '../util/limits.ts';
export * from './spec.ts';
export * from './decode.ts';
export { decodeDicom, isAcrNema, isDicom, parseDataSet, TRANSFER_SYNTAX, type GreyImage } from '../dicom/decode.ts';
export * from './thumbnail.ts';
