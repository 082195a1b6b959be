/** Small JPEG previews of X-rays (any supported input, DICOM included), for result grids. */
import { createHash } from 'node:crypto';
import { decodeGrey } from './decode.ts';
import { loadSharp } from './sharp.ts';
import { DEFAULT_IMAGE_LIMITS, type ImageLimits } from '../util/index.ts';

export const THUMBNAIL_SIZE = 256;

/** Grey JPEG fitting in size x size (aspect kept). Throws `ImageError` for bad input. */
export async function thumbnailJpeg(bytes: Uint8Array, size = THUMBNAIL_SIZE, limits: ImageLimits = DEFAULT_IMAGE_LIMITS): Promise<Buffer> {
  const grey = await decodeGrey(bytes, limits);
  const sharp = await loadSharp();
  return sharp(grey.data, { raw: { width: grey.width, height: grey.height, channels: 1 } })
    .resize({ width: size, height: size, fit: 'inside', withoutEnlargement: true })
    .toColourspace('b-w') // one channel: X-rays are grey (sharp would write three)
    .jpeg({ quality: 80 })
    .toBuffer();
}

/** File name of an item's thumbnail inside a bundle's `thumbs/` folder (ids may hold slashes). */
export function thumbnailName(id: string): string {
  return `${createHash('sha256').update(id).digest('hex').slice(0, 32)}.jpg`;
}
