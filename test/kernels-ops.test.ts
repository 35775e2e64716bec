/**
 * The per-token ops as kernels (Kernels.rmsNorm, add, addBias, rope): the TypeScript kernels run the reference
 * functions of src/engine/model/ops.ts, and the native ones (SIMD and portable C, any thread count) must give
 * exactly their bits, on random and adversarial inputs (docs/kernels.md "RMSNorm, RoPE and adds").
 */
import { describe, expect, it } from 'vitest';
import { loadNativeAddon, nativeAddonLoadError } from '../src/engine/kernels/native.js';
import { createTsKernels } from '../src/engine/kernels/ts.js';
import type { Kernels, RopeBatch } from '../src/engine/kernels/types.js';
import { applyRope, rmsNorm, RopeTable } from '../src/engine/model/ops.js';
import { SplitMix32 } from '../src/engine/prng.js';
import { randomFloats } from '../src/engine/quant/random.js';
import { useNativeVariants } from './helpers/native-variants.js';

const addon = loadNativeAddon();
const title = addon
  ? `native per-token ops (${addon.simdLevel()})`
  : `native per-token ops — SKIPPED: ${nativeAddonLoadError() ?? 'addon disabled'}; build it with \`npx node-gyp rebuild\``;

/** Bitwise equality, except that any NaN equals any NaN (NaN payloads are not part of the contract). */
function expectSameBits(actual: Float32Array, expected: Float32Array, what: string): void {
  expect(actual.length, what).toBe(expected.length);
  const a = new Uint32Array(actual.buffer, actual.byteOffset, actual.length);
  const e = new Uint32Array(expected.buffer, expected.byteOffset, expected.length);
  for (let i = 0; i < a.length; i++) {
    if (a[i] !== e[i] && !(Number.isNaN(actual[i]) && Number.isNaN(expected[i]))) {
      expect.fail(`${what}: element ${i} is ${actual[i]} (0x${a[i]!.toString(16)}), expected ${expected[i]} (0x${e[i]!.toString(16)})`);
    }
  }
}

const u32 = new Uint32Array(1);
const f32 = new Float32Array(u32.buffer);
function fromBits(b: number): number {
  u32[0] = b >>> 0;
  return f32[0]!;
}

/** Floats that make rounding visible: ±0, subnormals, values whose square under- or overflows, ±∞, NaN. */
const SPECIALS = [
  0, -0, fromBits(1), -fromBits(0x7fffff), 1e-30, -3e-23, 1e19, -2e19, 3e38, Infinity, -Infinity, NaN, 1, -1,
];

/** Random floats of many magnitudes (random exponents), with SPECIALS sprinkled in. */
function wildFloats(n: number, seed: number, specials = true): Float32Array {
  const rng = new SplitMix32(seed);
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    out[i] = (rng.nextFloat() * 2 - 1) * 2 ** Math.floor(rng.nextFloat() * 80 - 40);
    if (specials && rng.nextFloat() < 0.05) out[i] = SPECIALS[Math.floor(rng.nextFloat() * SPECIALS.length)]!;
  }
  return out;
}

describe('per-token ops in TypeScript', () => {
  it('RopeTable.upTo gives the rows at(p) gives, for every position, across growth', () => {
    for (const factors of [null, Float32Array.from({ length: 16 }, (_, i) => 1 + i / 7)]) {
      const table = new RopeTable(32, 10000, factors);
      const probe = new RopeTable(32, 10000, factors);
      for (const upTo of [1, 5, 64, 65, 300]) {
        const { cos, sin } = table.upTo(upTo);
        for (let p = 0; p < upTo; p++) {
          probe.at(p);
          expectSameBits(cos.subarray(p * 16, (p + 1) * 16), probe.cos, `cos at ${p}`);
          expectSameBits(sin.subarray(p * 16, (p + 1) * 16), probe.sin, `sin at ${p}`);
        }
      }
    }
  });

  it('Kernels.rope equals applyRope token by token, and rmsNorm rows equal rmsNorm row by row', () => {
    const ts = createTsKernels();
    const table = new RopeTable(48, 500000, null);
    const positions = Int32Array.of(0, 7, 3, 130, 7);
    const { cos, sin } = table.upTo(131);
    for (const neox of [false, true]) {
      const x = randomFloats(5 * 3 * 64, 11);
      const expected = x.slice();
      for (let t = 0; t < 5; t++) applyRope(expected, t * 3 * 64, 3, 64, table.at(positions[t]!), neox);
      ts.rope(x, { nTok: 5, nHeads: 3, headDim: 64, ropeDims: 48, neox, positions, cos, sin });
      expectSameBits(x, expected, `rope neox=${neox}`);
    }
    const x = randomFloats(4 * 40, 12, 3);
    const w = randomFloats(40, 13);
    const out = new Float32Array(x.length);
    const expected = new Float32Array(x.length);
    for (let r = 0; r < 4; r++) rmsNorm(expected, r * 40, x, r * 40, w, 40, 1e-6);
    ts.rmsNorm(out, x, w, 4, 40, 1e-6);
    expectSameBits(out, expected, 'rmsNorm rows');
  });
});

describe.skipIf(!addon)(title, () => {
  const ts = createTsKernels();
  const native = useNativeVariants({ scalarThreads: 2 });

  /** Runs op on a copy of each input for TypeScript and every native variant; compares every output array. */
  function agree(what: string, inputs: Float32Array[], op: (k: Kernels, arrays: Float32Array[]) => void): void {
    const expected = inputs.map((a) => a.slice());
    op(ts, expected);
    for (const [name, k] of native) {
      const got = inputs.map((a) => a.slice());
      op(k, got);
      got.forEach((g, i) => expectSameBits(g, expected[i]!, `${what}, array ${i}, ${name}`));
    }
  }

  const DIMS = [1, 7, 8, 9, 15, 16, 17, 64, 100, 768];
  const ROWS = [1, 3, 8, 9, 16, 17, 40];

  it.each(DIMS)('rmsNorm, dim %i: random rows, every row count', (dim) => {
    for (const nRows of ROWS) {
      const x = randomFloats(nRows * dim, dim * 1000 + nRows, 4);
      const w = randomFloats(dim, dim, 2);
      for (const eps of [1e-5, 1e-6]) {
        agree(`dim ${dim}, ${nRows} rows, eps ${eps}`, [new Float32Array(nRows * dim), x, w], (k, [out, xx, ww]) => {
          k.rmsNorm(out!, xx!, ww!, nRows, dim, eps);
        });
      }
    }
  });

  it.each([9, 64, 768, 1001])('rmsNorm, dim %i: wild magnitudes, ±0, subnormals, overflowing squares, ∞ and NaN; in place', (dim) => {
    for (const nRows of [1, 5, 16, 23]) {
      const x = wildFloats(nRows * dim, dim + nRows);
      for (let r = 0; r < nRows; r += 4) x.fill(0, r * dim, (r + 1) * dim); // all-zero rows: 1/sqrt(eps) or ∞
      const w = wildFloats(dim, dim * 3, false);
      for (const eps of [1e-5, 0]) {
        agree(`wild dim ${dim}, ${nRows} rows, eps ${eps}`, [new Float32Array(nRows * dim), x, w], (k, [out, xx, ww]) => {
          k.rmsNorm(out!, xx!, ww!, nRows, dim, eps);
        });
        agree(`in place, dim ${dim}, ${nRows} rows`, [x, w], (k, [xx, ww]) => k.rmsNorm(xx!, xx!, ww!, nRows, dim, eps));
      }
    }
  });

  it('rmsNorm: the sum of squares runs in index order (ties that any regrouping breaks)', () => {
    // dim = 1024 makes sum / dim exact. A row [a, 1, then 2^-15 …] with fr(a²) in [2^24, 2^25) sums, in order, to
    // fr(a²) + 1 exactly, an odd integer: a tie between two floats. Every later square 2^-30 is below half an ulp
    // of that double and rounds away one at a time. Any grouping of the small squares (lanes over columns, pairwise
    // sums, …) adds them up first and lands above the tie. The values of a for which that also changes the output
    // (the tie went down, and sqrt does not hide the one-ulp step) are found by trying the reference.
    const dim = 1024;
    const small = 2 ** -15;
    const w = randomFloats(dim, 5, 2);
    const rowOf = (a: number): Float32Array => Float32Array.from({ length: dim }, (_, i) => (i === 0 ? a : i === 1 ? 1 : small));
    /** The output of the first element if the squares were summed 8 columns at a time. */
    const regrouped = (row: Float32Array): number => {
      let sum = 0;
      for (let i = 0; i < dim; i += 8) {
        let part = 0;
        for (let j = i; j < i + 8; j++) part += Math.fround(row[j]! * row[j]!);
        sum += part;
      }
      const scale = Math.fround(1 / Math.fround(Math.sqrt(Math.fround(Math.fround(sum / dim) + 0))));
      return Math.fround(Math.fround(row[0]! * scale) * w[0]!);
    };
    const found: Float32Array[] = [];
    const out = new Float32Array(dim);
    for (let k = 1; k < 2000 && found.length < 9; k++) {
      const row = rowOf(Math.fround(4096 * (1 + k * 2 ** -22)));
      ts.rmsNorm(out, row, w, 1, dim, 0);
      if (out[0] !== regrouped(row)) found.push(row);
    }
    expect(found.length).toBe(9);
    const x = new Float32Array(found.length * dim);
    found.forEach((row, r) => x.set(row, r * dim));
    agree('order', [new Float32Array(x.length), x, w], (k, [o, xx, ww]) => k.rmsNorm(o!, xx!, ww!, found.length, dim, 0));
  });

  it('rmsNorm: mean of squares near eps, so rounding mean + eps in double (not float) is visible', () => {
    for (const dim of [64, 768]) {
      const nRows = 200;
      const x = randomFloats(nRows * dim, dim + 77, 5e-3);
      const w = randomFloats(dim, dim + 78, 1);
      for (const eps of [1e-5, 1e-6, 3e-6]) {
        agree(`near eps, dim ${dim}, eps ${eps}`, [new Float32Array(nRows * dim), x, w], (k, [o, xx, ww]) => {
          k.rmsNorm(o!, xx!, ww!, nRows, dim, eps);
        });
      }
    }
  });

  it.each([1, 15, 16, 17, 1000, 12_289])('add and addBias, n = %i: random and special values; a += a', (n) => {
    const a = wildFloats(n, n);
    const b = wildFloats(n, n + 1);
    agree(`add ${n}`, [a, b], (k, [aa, bb]) => k.add(aa!, bb!, n));
    agree(`add self ${n}`, [a], (k, [aa]) => k.add(aa!, aa!, n));
    const rows = 3;
    const m = wildFloats(rows * n, n + 2);
    agree(`addBias ${n}`, [m, b], (k, [mm, bb]) => k.addBias(mm!, bb!, rows, n));
  });

  const ROPE_SHAPES = [
    { nHeads: 12, headDim: 64, ropeDims: 64 }, { nHeads: 4, headDim: 64, ropeDims: 32 }, { nHeads: 3, headDim: 128, ropeDims: 128 },
    { nHeads: 5, headDim: 18, ropeDims: 18 }, { nHeads: 2, headDim: 18, ropeDims: 6 }, { nHeads: 7, headDim: 34, ropeDims: 34 },
    { nHeads: 1, headDim: 2, ropeDims: 2 }, { nHeads: 2, headDim: 8, ropeDims: 0 }, { nHeads: 2, headDim: 256, ropeDims: 256 },
    { nHeads: 3, headDim: 160, ropeDims: 150 },
  ];

  it.each(ROPE_SHAPES)('rope, $nHeads heads × $headDim, ropeDims $ropeDims: real tables, both pair styles', (shape) => {
    const table = new RopeTable(shape.ropeDims, 10000, null);
    const positions = Int32Array.of(0, 1, 5, 63, 64, 65, 1000, 4095, 7, 7);
    const { cos, sin } = table.upTo(4096);
    for (const neox of [false, true]) {
      const x = randomFloats(positions.length * shape.nHeads * shape.headDim, shape.headDim * 7 + shape.nHeads, 3);
      const r: RopeBatch = { ...shape, nTok: positions.length, neox, positions, cos, sin };
      agree(`rope ${JSON.stringify(shape)} neox=${neox}`, [x], (k, [xx]) => k.rope(xx!, r));
    }
  });

  it.each(ROPE_SHAPES)('rope, $nHeads heads × $headDim, ropeDims $ropeDims: wild x and wild tables', (shape) => {
    const half = shape.ropeDims / 2;
    const nPos = 20;
    const cos = wildFloats(nPos * half, half + 1);
    const sin = wildFloats(nPos * half, half + 2);
    const positions = Int32Array.from({ length: 13 }, (_, i) => (i * 7) % nPos);
    for (const neox of [false, true]) {
      const x = wildFloats(positions.length * shape.nHeads * shape.headDim, shape.headDim + shape.nHeads);
      const r: RopeBatch = { ...shape, nTok: positions.length, neox, positions, cos, sin };
      agree(`wild rope ${JSON.stringify(shape)} neox=${neox}`, [x], (k, [xx]) => k.rope(xx!, r));
    }
  });

  it('rejects bad arguments as the TypeScript kernels do, instead of reading out of bounds', () => {
    const kernels: Kernels[] = [ts, ...native.values()];
    const x = new Float32Array(64);
    const w = new Float32Array(16);
    const table = new RopeTable(8, 10000, null).upTo(4);
    const rope: RopeBatch = { nTok: 2, nHeads: 2, headDim: 16, ropeDims: 8, neox: false, positions: Int32Array.of(0, 3), ...table };
    for (const k of kernels) {
      const label = k.name;
      expect(() => k.rmsNorm(new Float32Array(63), x, w, 4, 16, 1e-5), label).toThrow(RangeError);
      expect(() => k.rmsNorm(x, x, new Float32Array(15), 4, 16, 1e-5), label).toThrow(RangeError);
      expect(() => k.rmsNorm(x.subarray(1), x, w, 3, 16, 1e-5), label).toThrow(RangeError); // partial overlap
      expect(() => k.rmsNorm(x, x, x.subarray(48), 4, 16, 1e-5), label).toThrow(RangeError); // out overlaps weight
      expect(() => k.add(x, new Float32Array(10), 11), label).toThrow(RangeError);
      expect(() => k.add(x.subarray(1), x, 20), label).toThrow(RangeError);
      expect(() => k.addBias(x, new Float32Array(15), 4, 16), label).toThrow(RangeError);
      expect(() => k.addBias(x, x.subarray(0, 16), 4, 16), label).toThrow(RangeError);
      expect(() => k.rope(x, { ...rope, positions: Int32Array.of(0, table.cos.length / 4) }), label).toThrow(RangeError);
      expect(() => k.rope(x, { ...rope, positions: Int32Array.of(0, -1) }), label).toThrow(RangeError);
      expect(() => k.rope(x, { ...rope, ropeDims: 7 }), label).toThrow(RangeError);
      expect(() => k.rope(x, { ...rope, ropeDims: 18 }), label).toThrow(RangeError);
      expect(() => k.rope(x, { ...rope, nTok: 3 }), label).toThrow(RangeError);
      expect(() => k.rope(x, { ...rope, positions: Int32Array.of(0) }), label).toThrow(RangeError);
      expect(() => k.rope(table.cos, { ...rope, nTok: 1, nHeads: 1 }), label).toThrow(RangeError); // x is the table
    }
  });
});
