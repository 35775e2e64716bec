/**
 * Q8_0: blocks of 32 weights = F16 scale d (2 bytes, little-endian) + 32 int8 quants. Value = q · d.
 */
import { readF16, writeF16 } from './half.js';
import { QK, roundHalfAway } from './rounding.js';

export const Q8_0_BLOCK_BYTES = 34;

export function dequantizeRowQ8_0(src: Uint8Array, srcOffsetBytes: number, dst: Float32Array, dstOffset: number, cols: number): void {
  const nb = cols / QK;
  for (let b = 0; b < nb; b++) {
    const o = srcOffsetBytes + b * Q8_0_BLOCK_BYTES;
    const d = readF16(src, o);
    const y = dstOffset + b * QK;
    for (let j = 0; j < QK; j++) {
      const q = (src[o + 2 + j]! << 24) >> 24; // sign-extend the byte
      dst[y + j] = q * d; // one float product, like ggml
    }
  }
}

/** ggml's reference weight quantizer (d = amax/127, q = roundf(x/d)). */
export function quantizeRowQ8_0(src: Float32Array, srcOffset: number, dst: Uint8Array, dstOffsetBytes: number, cols: number): void {
  const nb = cols / QK;
  for (let b = 0; b < nb; b++) {
    const x = srcOffset + b * QK;
    let amax = 0;
    for (let j = 0; j < QK; j++) amax = Math.max(amax, Math.abs(src[x + j]!));
    const d = Math.fround(amax / 127);
    const id = d !== 0 ? Math.fround(1 / d) : 0;
    const o = dstOffsetBytes + b * Q8_0_BLOCK_BYTES;
    writeF16(dst, o, d);
    for (let j = 0; j < QK; j++) dst[o + 2 + j] = roundHalfAway(Math.fround(src[x + j]! * id)) & 0xff;
  }
}
