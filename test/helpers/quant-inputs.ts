/** Weight and activation inputs shared by the kernel suites: random block bytes, all-maximal quants, and activation
 * rows that reach every edge of the activation quantizers. */
import { GGMLType, rowBytes } from '../../src/engine/gguf/types.js';
import { writeF16 } from '../../src/engine/quant/half.js';
import { randomFloats } from '../../src/engine/quant/random.js';
import { SplitMix32 } from '../../src/engine/prng.js';

export const BLOCK_BYTES: Partial<Record<GGMLType, number>> = {
  [GGMLType.Q8_0]: 34, [GGMLType.Q4_0]: 18, [GGMLType.Q4_K]: 144, [GGMLType.Q5_K]: 176, [GGMLType.Q6_K]: 210,
};
/** Offsets of the F16 scales in a block. */
export const F16_FIELDS: Partial<Record<GGMLType, number[]>> = {
  [GGMLType.Q8_0]: [0], [GGMLType.Q4_0]: [0], [GGMLType.Q4_K]: [0, 2], [GGMLType.Q5_K]: [0, 2], [GGMLType.Q6_K]: [208],
};
/** Uniformly random block bytes (every quant, scale and high-bit pattern) with sane F16 block scales. */
export function rawQuantWeights(type: GGMLType, rows: number, cols: number, seed: number): Uint8Array {
  const rng = new SplitMix32(seed);
  const data = new Uint8Array(rows * rowBytes(type, cols));
  for (let i = 0; i < data.length; i++) data[i] = rng.nextU32() & 0xff;
  for (let b = 0; b < data.length; b += BLOCK_BYTES[type]!) {
    for (const o of F16_FIELDS[type]!) writeF16(data, b + o, (rng.nextFloat() - 0.5) * 0.05);
  }
  return data;
}

/**
 * Token 0 random; 1 saturated (±5: every block quantizes to ±127); 2 all zeros; 3 F16-subnormal, tiny and large
 * values mixed; 4.. random at other scales.
 */
export function activations(cols: number, nTok: number, seed: number): Float32Array {
  const x = new Float32Array(cols * nTok);
  const rng = new SplitMix32(seed);
  for (let t = 0; t < nTok; t++) {
    const row = x.subarray(t * cols, (t + 1) * cols);
    if (t === 1) {
      for (let i = 0; i < cols; i++) row[i] = rng.nextU32() & 1 ? 5 : -5;
    } else if (t === 2) {
      row.fill(0);
    } else if (t === 3) {
      for (let i = 0; i < cols; i++) {
        const pick = rng.nextU32() % 4;
        const sign = rng.nextU32() & 1 ? -1 : 1;
        row[i] = sign * (pick === 0 ? rng.nextFloat() * 1e-6 : pick === 1 ? rng.nextFloat() * 1e-8 : pick === 2 ? rng.nextFloat() * 3e4 : rng.nextFloat());
      }
    } else {
      row.set(randomFloats(cols, seed + 977 * t, t === 0 ? 2 : 10 ** (t - 5)));
    }
  }
  return x;
}

/** Every quant bit set (Q4_K / Q5_K: 15 / 31 with scales and mins 63; Q6_K: 63 with scales 127; Q4_0: 15); Q8_0:
 * −128 (0x80, which the bias of 128 maps to 0), alternating per block with 127. */
export function maxQuantWeights(type: GGMLType, rows: number, cols: number): Uint8Array {
  const data = new Uint8Array(rows * rowBytes(type, cols)).fill(0xff);
  const bb = BLOCK_BYTES[type]!;
  for (let b = 0; b < data.length; b += bb) {
    if (type === GGMLType.Q8_0) {
      data.fill((b / bb) % 2 ? 0x7f : 0x80, b + 2, b + bb);
      writeF16(data, b, 0.013);
    } else if (type === GGMLType.Q6_K) {
      for (let j = 0; j < 16; j++) data[b + 192 + j] = 127;
      writeF16(data, b + 208, 0.011);
    } else {
      writeF16(data, b, 0.013);
      if (type !== GGMLType.Q4_0) writeF16(data, b + 2, 0.007);
    }
  }
  return data;
}
