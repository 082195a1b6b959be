/**
 * DICOM Part 10 (and ACR-NEMA) -> 8-bit grey pixels: parse the data set (`dicom-dataset.ts`), decode the first
 * frame's samples (`dicom-pixels.ts`: native or RLE, JPEG baseline/extended/lossless, JPEG-LS, JPEG 2000), then
 * map them for display (`dicom-display.ts`: modality LUT, VOI LUT or window, colour as luminance). Only the first
 * frame of a multi-frame file is used. Conformance with pydicom + GDCM is a test (test/dicom-conformance.test.ts).
 */
import { parseDataSet, readPixelModule, SUPPORTED_SYNTAXES } from './dataset.ts';
import { displayPixels } from './display.ts';
import { decodeFrame, firstFrameBytes } from './pixels.ts';
import { ImageError } from '../errors.ts';
import type { ImageLimits } from '../util/index.ts';

export { isAcrNema, isDicom, parseDataSet, TRANSFER_SYNTAX } from './dataset.ts';
export { codestreamSize } from './pixels.ts';

export interface GreyImage {
  width: number;
  height: number;
  /** One byte per pixel, row-major. */
  data: Uint8Array;
}

export async function decodeDicom(bytes: Uint8Array, limits: ImageLimits): Promise<GreyImage> {
  const ds = parseDataSet(bytes);
  const pm = readPixelModule(ds, limits);
  if (!SUPPORTED_SYNTAXES.has(pm.transferSyntax))
    throw new ImageError('unsupported', `DICOM transfer syntax ${pm.transferSyntax} is not supported`);
  // the data set's own bytes: for a deflated file that is the inflated copy, not the input
  const frame = await decodeFrame(firstFrameBytes(ds, ds.byteArray, pm), pm);
  return { width: pm.columns, height: pm.rows, data: displayPixels(ds, frame, pm) };
}
