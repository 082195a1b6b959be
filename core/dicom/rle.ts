/** DICOM RLE Lossless (PS3.5 Annex G): a 64-byte header of segment offsets, each segment PackBits. */
import { ImageError } from '../errors.ts';

/**
 * Decode one RLE frame into interleaved samples. Segments hold bytes most significant first, per component:
 * 8-bit grey = 1 segment, 16-bit grey = 2, 8-bit RGB = 3.
 */
export function decodeRle(frame: Uint8Array, width: number, height: number, bytesPerSample: number, components: number): Uint8Array {
  if (frame.length < 64) throw new ImageError('truncated', 'RLE frame is shorter than its header');
  const view = new DataView(frame.buffer, frame.byteOffset, frame.byteLength);
  const segments = view.getUint32(0, true);
  if (segments !== bytesPerSample * components || segments > 15)
    throw new ImageError('corrupt', `RLE frame has ${segments} segments; expected ${bytesPerSample * components}`);
  const offsets: number[] = [];
  for (let i = 0; i < segments; i++) offsets.push(view.getUint32(4 + 4 * i, true));
  const pixels = width * height;
  const out = new Uint8Array(pixels * segments);
  for (let s = 0; s < segments; s++) {
    const start = offsets[s]!;
    const end = s + 1 < segments ? offsets[s + 1]! : frame.length;
    if (start < 64 || start > end || end > frame.length) throw new ImageError('corrupt', 'RLE segment offsets are out of range');
    // Output position: component c, byte b (0 = most significant) of a little-endian interleaved sample.
    const component = Math.floor(s / bytesPerSample);
    const byteInSample = bytesPerSample - 1 - (s % bytesPerSample);
    const stride = segments;
    let o = component * bytesPerSample + byteInSample;
    let written = 0;
    let i = start;
    while (i < end && written < pixels) {
      const n = (frame[i++]! << 24) >> 24;
      if (n >= 0) {
        for (let k = 0; k <= n && written < pixels; k++) {
          if (i >= end) throw new ImageError('truncated', 'RLE segment ends inside a literal run');
          out[o] = frame[i++]!;
          o += stride;
          written++;
        }
      } else if (n !== -128) {
        if (i >= end) throw new ImageError('truncated', 'RLE segment ends inside a repeat run');
        const v = frame[i++]!;
        for (let k = 0; k < 1 - n && written < pixels; k++) {
          out[o] = v;
          o += stride;
          written++;
        }
      }
    }
    if (written < pixels) throw new ImageError('truncated', `RLE segment ${s} holds ${written} of ${pixels} samples`);
  }
  return out;
}
