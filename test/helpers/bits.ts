import { expect } from 'vitest';
import type { Kernels } from '../../src/engine/kernels/types.js';
import type { WeightTensor } from '../../src/engine/tensor.js';

/** Bitwise equality with a readable failure (the first differing element). */
export function expectSameBits(actual: Float32Array, expected: Float32Array, what: string): void {
  expect(actual.length, what).toBe(expected.length);
  const a = new Uint32Array(actual.buffer, actual.byteOffset, actual.length);
  const e = new Uint32Array(expected.buffer, expected.byteOffset, expected.length);
  for (let i = 0; i < a.length; i++) {
    if (a[i] !== e[i]) {
      expect.fail(`${what}: element ${i} is ${actual[i]} (0x${a[i]!.toString(16)}), expected ${expected[i]} (0x${e[i]!.toString(16)})`);
    }
  }
}

/** One matmul into a NaN-filled output, so an element the kernel never writes cannot pass as equal. */
export function runMatmul(k: Kernels, w: WeightTensor, x: Float32Array, nTok: number): Float32Array {
  const out = new Float32Array(nTok * w.rows).fill(Number.NaN);
  k.matmul(out, w, x, nTok);
  return out;
}
