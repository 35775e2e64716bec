/**
 * Q5_K: super-blocks of 256 weights, 176 bytes = F16 d, F16 dmin, 12 bytes of 6-bit scales/mins (kscales.ts),
 * 32 bytes qh of high bits, 128 bytes of low nibbles. Low nibbles are laid out as in Q4_K (group g of 64:
 * byte 32g+l → elements 64g+l low, 64g+32+l high); the fifth bit of element 64g+l is bit 2g of qh[l] and of
 * element 64g+32+l bit 2g+1. Value = (d·sc_j)·q − dmin·m_j with q in 0..31.
 */
import { readF16 } from './half.js';
import { K_SCALE_BYTES, packScaleMinK4, unpackScaleMinK4 } from './kscales.js';
import { newKAsymBlock, quantizeKAsymBlock } from './kasym.js';
import { QK_K } from './rounding.js';

export const Q5_K_BLOCK_BYTES = 176;
const QH_OFFSET = 4 + K_SCALE_BYTES;
const QS_OFFSET = QH_OFFSET + 32;

const scScratch = new Uint8Array(8);
const mnScratch = new Uint8Array(8);

export function dequantizeRowQ5_K(src: Uint8Array, srcOffsetBytes: number, dst: Float32Array, dstOffset: number, cols: number): void {
  const nb = cols / QK_K;
  for (let b = 0; b < nb; b++) {
    const o = srcOffsetBytes + b * Q5_K_BLOCK_BYTES;
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
      const loBit = 2 * g;
      for (let l = 0; l < 32; l++) {
        const byte = src[q + l]!;
        const h = src[o + QH_OFFSET + l]! >> loBit;
        dst[y + l] = Math.fround(d1 * ((byte & 0xf) | ((h & 1) << 4))) - m1;
        dst[y + 32 + l] = Math.fround(d2 * ((byte >> 4) | ((h & 2) << 3))) - m2;
      }
    }
  }
}

/** Spread a row for integer dots (same outputs as unpackRowQ4_K, with q in 0..31). */
export function unpackRowQ5_K(
  src: Uint8Array, srcOffsetBytes: number, cols: number,
  q: Int8Array, sc: Uint8Array, mn: Uint8Array, d: Float32Array, dmin: Float32Array,
): void {
  const nb = cols / QK_K;
  for (let b = 0; b < nb; b++) {
    const o = srcOffsetBytes + b * Q5_K_BLOCK_BYTES;
    d[b] = readF16(src, o);
    dmin[b] = readF16(src, o + 2);
    unpackScaleMinK4(src, o + 4, sc, mn, b * 8);
    for (let g = 0; g < 4; g++) {
      const qo = o + QS_OFFSET + 32 * g;
      const e = b * QK_K + 64 * g;
      const loBit = 2 * g;
      for (let l = 0; l < 32; l++) {
        const byte = src[qo + l]!;
        const h = src[o + QH_OFFSET + l]! >> loBit;
        q[e + l] = (byte & 0xf) | ((h & 1) << 4);
        q[e + 32 + l] = (byte >> 4) | ((h & 2) << 3);
      }
    }
  }
}

const block = newKAsymBlock();

export function quantizeRowQ5_K(src: Float32Array, srcOffset: number, dst: Uint8Array, dstOffsetBytes: number, cols: number): void {
  const nb = cols / QK_K;
  for (let b = 0; b < nb; b++) {
    quantizeKAsymBlock(src, srcOffset + b * QK_K, 31, block);
    const o = dstOffsetBytes + b * Q5_K_BLOCK_BYTES;
    dst[o] = block.dBits & 0xff;
    dst[o + 1] = block.dBits >>> 8;
    dst[o + 2] = block.dminBits & 0xff;
    dst[o + 3] = block.dminBits >>> 8;
    packScaleMinK4(block.sc, block.mn, dst, o + 4);
    dst.fill(0, o + QH_OFFSET, o + QH_OFFSET + 32);
    for (let g = 0; g < 4; g++) {
      for (let l = 0; l < 32; l++) {
        const lo = block.q[64 * g + l]!;
        const hi = block.q[64 * g + 32 + l]!;
        dst[o + QS_OFFSET + 32 * g + l] = (lo & 0xf) | ((hi & 0xf) << 4);
        dst[o + QH_OFFSET + l] |= ((lo >> 4) << (2 * g)) | ((hi >> 4) << (2 * g + 1));
      }
    }
  }
}
