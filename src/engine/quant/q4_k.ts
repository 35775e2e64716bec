/**
 * Q4_K: super-blocks of 256 weights, 144 bytes = F16 d, F16 dmin, 12 bytes of 6-bit scales/mins (kscales.ts),
 * 128 bytes of nibbles. The block is 4 groups of 64: bytes 32g..32g+31 hold elements 64g+l in their low nibble
 * (sub-block 2g) and 64g+32+l in their high nibble (sub-block 2g+1). Value = (d·sc_j)·q − dmin·m_j.
 */
import { readF16 } from './half.js';
import { K_SCALE_BYTES, packScaleMinK4, unpackScaleMinK4 } from './kscales.js';
import { newKAsymBlock, quantizeKAsymBlock } from './kasym.js';
import { QK_K } from './rounding.js';

export const Q4_K_BLOCK_BYTES = 144;
const QS_OFFSET = 4 + K_SCALE_BYTES;

const scScratch = new Uint8Array(8);
const mnScratch = new Uint8Array(8);

export function dequantizeRowQ4_K(src: Uint8Array, srcOffsetBytes: number, dst: Float32Array, dstOffset: number, cols: number): void {
  const nb = cols / QK_K;
  for (let b = 0; b < nb; b++) {
    const o = srcOffsetBytes + b * Q4_K_BLOCK_BYTES;
    const d = readF16(src, o);
    const dmin = readF16(src, o + 2);
    unpackScaleMinK4(src, o + 4, scScratch, mnScratch, 0);
    for (let g = 0; g < 4; g++) {
      const d1 = Math.fround(d * scScratch[2 * g]!);
      const m1 = Math.fround(dmin * mnScratch[2 * g]!);
      const d2 = Math.fround(d * scScratch[2 * g + 1]!);
      const m2 = Math.fround(dmin * mnScratch[2 * g + 1]!);
      const q = o + QS_OFFSET + 32 * g;
      const y = dstOffset + b * QK_K + 64 * g;
      for (let l = 0; l < 32; l++) {
        const byte = src[q + l]!;
        dst[y + l] = Math.fround(d1 * (byte & 0xf)) - m1;
        dst[y + 32 + l] = Math.fround(d2 * (byte >> 4)) - m2;
      }
    }
  }
}

/**
 * Spread a row for integer dots: q[e] = 4-bit quant of element e, sc/mn = 8 scales/mins per super-block,
 * d/dmin = the F16 super-block scales as f32.
 */
export function unpackRowQ4_K(
  src: Uint8Array, srcOffsetBytes: number, cols: number,
  q: Int8Array, sc: Uint8Array, mn: Uint8Array, d: Float32Array, dmin: Float32Array,
): void {
  const nb = cols / QK_K;
  for (let b = 0; b < nb; b++) {
    const o = srcOffsetBytes + b * Q4_K_BLOCK_BYTES;
    d[b] = readF16(src, o);
    dmin[b] = readF16(src, o + 2);
    unpackScaleMinK4(src, o + 4, sc, mn, b * 8);
    for (let g = 0; g < 4; g++) {
      const qo = o + QS_OFFSET + 32 * g;
      const e = b * QK_K + 64 * g;
      for (let l = 0; l < 32; l++) {
        const byte = src[qo + l]!;
        q[e + l] = byte & 0xf;
        q[e + 32 + l] = byte >> 4;
      }
    }
  }
}

const block = newKAsymBlock();

export function quantizeRowQ4_K(src: Float32Array, srcOffset: number, dst: Uint8Array, dstOffsetBytes: number, cols: number): void {
  const nb = cols / QK_K;
  for (let b = 0; b < nb; b++) {
    quantizeKAsymBlock(src, srcOffset + b * QK_K, 15, block);
    const o = dstOffsetBytes + b * Q4_K_BLOCK_BYTES;
    dst[o] = block.dBits & 0xff;
    dst[o + 1] = block.dBits >>> 8;
    dst[o + 2] = block.dminBits & 0xff;
    dst[o + 3] = block.dminBits >>> 8;
    packScaleMinK4(block.sc, block.mn, dst, o + 4);
    for (let g = 0; g < 4; g++) {
      for (let l = 0; l < 32; l++) {
        dst[o + QS_OFFSET + 32 * g + l] = block.q[64 * g + l]! | (block.q[64 * g + 32 + l]! << 4);
      }
    }
  }
}
