/**
 * Q4_0: blocks of 32 weights = F16 scale d + 16 bytes of nibbles. Byte j holds element j in its low nibble and
 * element j+16 in its high nibble; value = (nibble − 8) · d.
 */
import { readF16, writeF16 } from './half.js';
import { QK } from './rounding.js';

export const Q4_0_BLOCK_BYTES = 18;

export function dequantizeRowQ4_0(src: Uint8Array, srcOffsetBytes: number, dst: Float32Array, dstOffset: number, cols: number): void {
  const nb = cols / QK;
  for (let b = 0; b < nb; b++) {
    const o = srcOffsetBytes + b * Q4_0_BLOCK_BYTES;
    const d = readF16(src, o);
    const y = dstOffset + b * QK;
    for (let j = 0; j < 16; j++) {
      const byte = src[o + 2 + j]!;
      dst[y + j] = ((byte & 15) - 8) * d;
      dst[y + j + 16] = ((byte >> 4) - 8) * d;
    }
  }
}

/** ggml's reference quantizer: d = (value of largest magnitude) / −8, q = min(15, trunc(x/d + 8.5)). */
export function quantizeRowQ4_0(src: Float32Array, srcOffset: number, dst: Uint8Array, dstOffsetBytes: number, cols: number): void {
  const nb = cols / QK;
  for (let b = 0; b < nb; b++) {
    const x = srcOffset + b * QK;
    let amax = 0;
    let max = 0;
    for (let j = 0; j < QK; j++) {
      const v = src[x + j]!;
      if (amax < Math.abs(v)) {
        amax = Math.abs(v);
        max = v;
      }
    }
    const d = Math.fround(max / -8);
    const id = d !== 0 ? Math.fround(1 / d) : 0;
    const o = dstOffsetBytes + b * Q4_0_BLOCK_BYTES;
    writeF16(dst, o, d);
    for (let j = 0; j < 16; j++) {
      const lo = Math.min(15, Math.trunc(Math.fround(Math.fround(src[x + j]! * id) + 8.5)));
      const hi = Math.min(15, Math.trunc(Math.fround(Math.fround(src[x + j + 16]! * id) + 8.5)));
      dst[o + 2 + j] = lo | (hi << 4);
    }
  }
}
