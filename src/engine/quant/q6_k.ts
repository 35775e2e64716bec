/**
 * Q6_K: super-blocks of 256 weights, 210 bytes = ql[128] (low 4 bits), qh[64] (high 2 bits), 16 int8 scales (one
 * per 16 elements, in element order), F16 d. Each half n (128 elements) uses ql[64n..], qh[32n..]; for l < 32:
 * element 128n+l   = ql[l] low nibble    | qh[l] bits 0–1,
 * element 128n+l+32 = ql[l+32] low nibble | qh[l] bits 2–3,
 * element 128n+l+64 = ql[l] high nibble   | qh[l] bits 4–5,
 * element 128n+l+96 = ql[l+32] high nibble| qh[l] bits 6–7.
 * Value = (d·sc)·(q − 32).
 */
import { f16BitsToF32, f32ToF16Bits, readF16 } from './half.js';
import { QK_K, roundHalfEven } from './rounding.js';

export const Q6_K_BLOCK_BYTES = 210;
const QH_OFFSET = 128;
const SC_OFFSET = 192;
const D_OFFSET = 208;

export function dequantizeRowQ6_K(src: Uint8Array, srcOffsetBytes: number, dst: Float32Array, dstOffset: number, cols: number): void {
  const nb = cols / QK_K;
  for (let b = 0; b < nb; b++) {
    const o = srcOffsetBytes + b * Q6_K_BLOCK_BYTES;
    const d = readF16(src, o + D_OFFSET);
    for (let n = 0; n < 2; n++) {
      const ql = o + 64 * n;
      const qh = o + QH_OFFSET + 32 * n;
      const sc = o + SC_OFFSET + 8 * n;
      const y = dstOffset + b * QK_K + 128 * n;
      for (let l = 0; l < 32; l++) {
        const is = l >> 4;
        const h = src[qh + l]!;
        const q1 = ((src[ql + l]! & 0xf) | ((h & 3) << 4)) - 32;
        const q2 = ((src[ql + l + 32]! & 0xf) | (((h >> 2) & 3) << 4)) - 32;
        const q3 = ((src[ql + l]! >> 4) | (((h >> 4) & 3) << 4)) - 32;
        const q4 = ((src[ql + l + 32]! >> 4) | (((h >> 6) & 3) << 4)) - 32;
        // ggml: (d * sc) * q, each product rounded to float
        dst[y + l] = Math.fround(d * ((src[sc + is]! << 24) >> 24)) * q1;
        dst[y + l + 32] = Math.fround(d * ((src[sc + is + 2]! << 24) >> 24)) * q2;
        dst[y + l + 64] = Math.fround(d * ((src[sc + is + 4]! << 24) >> 24)) * q3;
        dst[y + l + 96] = Math.fround(d * ((src[sc + is + 6]! << 24) >> 24)) * q4;
      }
    }
  }
}

/** Spread a row for integer dots: q[e] = quant − 32 (−32..31), sc = 16 int8 scales per super-block, d as f32. */
export function unpackRowQ6_K(src: Uint8Array, srcOffsetBytes: number, cols: number, q: Int8Array, sc: Int8Array, d: Float32Array): void {
  const nb = cols / QK_K;
  for (let b = 0; b < nb; b++) {
    const o = srcOffsetBytes + b * Q6_K_BLOCK_BYTES;
    d[b] = readF16(src, o + D_OFFSET);
    for (let j = 0; j < 16; j++) sc[b * 16 + j] = src[o + SC_OFFSET + j]!;
    for (let n = 0; n < 2; n++) {
      const ql = o + 64 * n;
      const qh = o + QH_OFFSET + 32 * n;
      const e = b * QK_K + 128 * n;
      for (let l = 0; l < 32; l++) {
        const h = src[qh + l]!;
        const lo = src[ql + l]!;
        const hi = src[ql + l + 32]!;
        q[e + l] = ((lo & 0xf) | ((h & 3) << 4)) - 32;
        q[e + l + 32] = ((hi & 0xf) | (((h >> 2) & 3) << 4)) - 32;
        q[e + l + 64] = ((lo >> 4) | (((h >> 4) & 3) << 4)) - 32;
        q[e + l + 96] = ((hi >> 4) | (((h >> 6) & 3) << 4)) - 32;
      }
    }
  }
}

const subScale = new Float64Array(16);
const levels = new Uint8Array(QK_K);

/**
 * Simple valid encoder (not ggml's search): each 16-value sub-block maps its largest-magnitude value to −32, the
 * sub-block scales become int8 multiples of one F16 d (the largest maps to −128), then quants are recomputed
 * against the decoded scales.
 */
export function quantizeRowQ6_K(src: Float32Array, srcOffset: number, dst: Uint8Array, dstOffsetBytes: number, cols: number): void {
  const nb = cols / QK_K;
  for (let b = 0; b < nb; b++) {
    const x = srcOffset + b * QK_K;
    let maxScale = 0;
    for (let j = 0; j < 16; j++) {
      let amax = 0;
      let max = 0;
      for (let k = 0; k < 16; k++) {
        const v = src[x + 16 * j + k]!;
        if (Math.abs(v) > amax) {
          amax = Math.abs(v);
          max = v;
        }
      }
      subScale[j] = max / -32;
      if (Math.abs(subScale[j]!) > Math.abs(maxScale)) maxScale = subScale[j]!;
    }
    const o = dstOffsetBytes + b * Q6_K_BLOCK_BYTES;
    const dBits = f32ToF16Bits(maxScale / -128);
    const d = f16BitsToF32(dBits);
    dst[o + D_OFFSET] = dBits & 0xff;
    dst[o + D_OFFSET + 1] = dBits >>> 8;
    for (let j = 0; j < 16; j++) {
      const sc = d !== 0 ? Math.min(127, Math.max(-128, roundHalfEven(subScale[j]! / d))) : 0;
      dst[o + SC_OFFSET + j] = sc & 0xff;
      const step = Math.fround(d * sc);
      for (let k = 0; k < 16; k++) {
        const i = 16 * j + k;
        levels[i] = step !== 0 ? Math.min(31, Math.max(-32, roundHalfEven(src[x + i]! / step))) + 32 : 32;
      }
    }
    for (let n = 0; n < 2; n++) {
      const ql = o + 64 * n;
      const qh = o + QH_OFFSET + 32 * n;
      const e = 128 * n;
      for (let l = 0; l < 32; l++) {
        const q1 = levels[e + l]!;
        const q2 = levels[e + l + 32]!;
        const q3 = levels[e + l + 64]!;
        const q4 = levels[e + l + 96]!;
        dst[ql + l] = (q1 & 0xf) | ((q3 & 0xf) << 4);
        dst[ql + l + 32] = (q2 & 0xf) | ((q4 & 0xf) << 4);
        dst[qh + l] = (q1 >> 4) | ((q2 >> 4) << 2) | ((q3 >> 4) << 4) | ((q4 >> 4) << 6);
      }
    }
  }
}
