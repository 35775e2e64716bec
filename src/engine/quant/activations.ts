/**
 * Activation quantizers, matching what llama.cpp runs on x86 before an integer dot product (verified against the
 * llama.cpp bundled with node-llama-cpp 3.21.1):
 * - Q8_0 (ggml-cpu/arch/x86/quants.c `quantize_row_q8_0`, AVX path): amax over the block, d = amax/127 stored as
 *   F16, id = amax ? 127/amax : 0 (from amax, not from 1/d), q = round-half-even(x·id).
 * - Q8_K (x86 `quantize_row_q8_K` just calls `quantize_row_q8_K_ref`): max = the first element of largest magnitude
 *   (with its sign), iscale = −127/max, q = min(127, nearest_int(iscale·x)) with ties to even, d = 1/iscale as f32
 *   (so d is negative when max > 0), bsums[j] = Σ of the 16 quants of group j. An all-zero block gets d = 0, q = 0.
 * Both structs grow on demand and are meant to be reused across calls.
 */
import { f16BitsToF32, f32ToF16Bits } from './half.js';
import { QK, QK_K, roundHalfEven } from './rounding.js';

/** Q8_0 activation blocks: scales[b] is the F32 value of block b's F16 scale; qs holds 32 quants per block. */
export class Q8Blocks {
  scales: Float32Array;
  qs: Int8Array;

  constructor(capacityBlocks = 0) {
    this.scales = new Float32Array(capacityBlocks);
    this.qs = new Int8Array(capacityBlocks * QK);
  }

  get capacityBlocks(): number {
    return this.scales.length;
  }

  /** Make room for `nBlocks` blocks, keeping existing contents. Re-read the arrays afterwards. */
  reserve(nBlocks: number): void {
    if (nBlocks <= this.scales.length) return;
    const cap = Math.max(nBlocks, this.scales.length * 2);
    const scales = new Float32Array(cap);
    const qs = new Int8Array(cap * QK);
    scales.set(this.scales);
    qs.set(this.qs);
    this.scales = scales;
    this.qs = qs;
  }
}

/** Q8_K activation super-blocks: f32 scale, 256 quants and 16 group sums per super-block. */
export class Q8KBlocks {
  scales: Float32Array;
  qs: Int8Array;
  bsums: Int16Array;

  constructor(capacityBlocks = 0) {
    this.scales = new Float32Array(capacityBlocks);
    this.qs = new Int8Array(capacityBlocks * QK_K);
    this.bsums = new Int16Array(capacityBlocks * 16);
  }

  get capacityBlocks(): number {
    return this.scales.length;
  }

  reserve(nBlocks: number): void {
    if (nBlocks <= this.scales.length) return;
    const cap = Math.max(nBlocks, this.scales.length * 2);
    const scales = new Float32Array(cap);
    const qs = new Int8Array(cap * QK_K);
    const bsums = new Int16Array(cap * 16);
    scales.set(this.scales);
    qs.set(this.qs);
    bsums.set(this.bsums);
    this.scales = scales;
    this.qs = qs;
    this.bsums = bsums;
  }
}

/** Quantize x[xOffset .. xOffset+cols) into blocks outBlockOffset.. of `out` (cols a multiple of 32). */
export function quantizeQ8_0Activation(x: Float32Array, xOffset: number, cols: number, out: Q8Blocks, outBlockOffset = 0): void {
  if (cols % QK !== 0) throw new Error(`Q8_0 activations need a multiple of ${QK} values, got ${cols}`);
  const nb = cols / QK;
  out.reserve(outBlockOffset + nb);
  const scales = out.scales;
  const qs = out.qs;
  for (let b = 0; b < nb; b++) {
    const xo = xOffset + b * QK;
    let amax = 0;
    for (let j = 0; j < QK; j++) {
      const a = Math.abs(x[xo + j]!);
      if (a > amax) amax = a;
    }
    const d = Math.fround(amax / 127);
    const id = amax !== 0 ? Math.fround(127 / amax) : 0;
    scales[outBlockOffset + b] = f16BitsToF32(f32ToF16Bits(d));
    const qo = (outBlockOffset + b) * QK;
    for (let j = 0; j < QK; j++) {
      // |x·id| ≤ 127 up to one rounding, so the int8 store cannot wrap.
      qs[qo + j] = roundHalfEven(Math.fround(x[xo + j]! * id));
    }
  }
}

/** Quantize x[xOffset .. xOffset+cols) into super-blocks outBlockOffset.. of `out` (cols a multiple of 256). */
export function quantizeQ8_KActivation(x: Float32Array, xOffset: number, cols: number, out: Q8KBlocks, outBlockOffset = 0): void {
  if (cols % QK_K !== 0) throw new Error(`Q8_K activations need a multiple of ${QK_K} values, got ${cols}`);
  const nb = cols / QK_K;
  out.reserve(outBlockOffset + nb);
  const scales = out.scales;
  const qs = out.qs;
  const bsums = out.bsums;
  for (let b = 0; b < nb; b++) {
    const xo = xOffset + b * QK_K;
    const qo = (outBlockOffset + b) * QK_K;
    const so = (outBlockOffset + b) * 16;
    let amax = 0;
    let max = 0;
    for (let j = 0; j < QK_K; j++) {
      const v = x[xo + j]!;
      const a = Math.abs(v);
      if (a > amax) {
        amax = a;
        max = v;
      }
    }
    if (amax === 0) {
      scales[outBlockOffset + b] = 0;
      qs.fill(0, qo, qo + QK_K);
      bsums.fill(0, so, so + 16); // ggml leaves these unset; with d = 0 they cannot matter, zero keeps us deterministic
      continue;
    }
    const iscale = Math.fround(-127 / max);
    for (let g = 0; g < 16; g++) {
      let sum = 0;
      for (let k = 0; k < 16; k++) {
        const j = g * 16 + k;
        const q = Math.min(127, roundHalfEven(Math.fround(iscale * x[xo + j]!)));
        qs[qo + j] = q;
        sum += q;
      }
      bsums[so + g] = sum;
    }
    scales[outBlockOffset + b] = Math.fround(1 / iscale);
  }
}
