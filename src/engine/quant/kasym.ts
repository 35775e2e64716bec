/**
 * Weight quantizer shared by Q4_K and Q5_K (value = d·sc·q − dmin·m, q in 0..nmax). This is a simple, valid
 * encoding for synthetic models, not ggml's iterative search: each 32-value sub-block takes min(0, lowest) as its
 * offset and its range / nmax as its step; steps and offsets are then coded as 6-bit multiples of two F16
 * super-block scales, rounded up so the sub-block range stays representable.
 */
import { f16BitsToF32, f32ToF16Bits } from './half.js';
import { QK_K, roundHalfEven } from './rounding.js';

export interface KAsymBlock {
  dBits: number;
  dminBits: number;
  /** 8 six-bit sub-block scales and mins */
  readonly sc: Uint8Array;
  readonly mn: Uint8Array;
  /** 256 quants, 0..nmax */
  readonly q: Uint8Array;
}

export function newKAsymBlock(): KAsymBlock {
  return { dBits: 0, dminBits: 0, sc: new Uint8Array(8), mn: new Uint8Array(8), q: new Uint8Array(QK_K) };
}

const stepScratch = new Float64Array(8);
const offsetScratch = new Float64Array(8);

/** Quantize the 256 values src[x..x+256) into `out`. */
export function quantizeKAsymBlock(src: Float32Array, x: number, nmax: number, out: KAsymBlock): void {
  let maxStep = 0;
  let maxOffset = 0;
  for (let j = 0; j < 8; j++) {
    let lo = 0;
    let hi = -Infinity;
    for (let k = 0; k < 32; k++) {
      const v = src[x + 32 * j + k]!;
      if (v < lo) lo = v;
      if (v > hi) hi = v;
    }
    const step = Math.max(0, hi - lo) / nmax;
    stepScratch[j] = step;
    offsetScratch[j] = -lo;
    if (step > maxStep) maxStep = step;
    if (-lo > maxOffset) maxOffset = -lo;
  }
  out.dBits = f32ToF16Bits(maxStep / 63);
  out.dminBits = f32ToF16Bits(maxOffset / 63);
  const d = f16BitsToF32(out.dBits);
  const dmin = f16BitsToF32(out.dminBits);
  for (let j = 0; j < 8; j++) {
    // Round up (less a hair so F16 rounding of d does not push an exact 63 to 64).
    const ls = d > 0 ? Math.min(63, Math.max(0, Math.ceil(stepScratch[j]! / d - 1e-3))) : 0;
    const lm = dmin > 0 ? Math.min(63, Math.max(0, Math.ceil(offsetScratch[j]! / dmin - 1e-3))) : 0;
    out.sc[j] = ls;
    out.mn[j] = lm;
    // Quantize against the values the decoder will actually use.
    const dq = Math.fround(d * ls);
    const mq = Math.fround(dmin * lm);
    for (let k = 0; k < 32; k++) {
      const i = 32 * j + k;
      out.q[i] = dq > 0 ? Math.min(nmax, Math.max(0, roundHalfEven((src[x + i]! + mq) / dq))) : 0;
    }
  }
}
