/**
 * Attention, SwiGLU and the deterministic exp (docs/kernels.md): the TypeScript functions follow the spec, and the
 * native kernels (SIMD and portable C, any thread count, batched or not) give exactly the TypeScript bits.
 */
import { describe, expect, it } from 'vitest';
import { bfExp, EXP_MAX_X } from '../src/engine/kernels/exp.js';
import { loadNativeAddon, nativeAddonLoadError } from '../src/engine/kernels/native.js';
import { createTsKernels } from '../src/engine/kernels/ts.js';
import type { AttentionBatch, Kernels } from '../src/engine/kernels/types.js';
import { SplitMix32 } from '../src/engine/prng.js';
import { randomFloats } from '../src/engine/quant/random.js';
import { useNativeVariants } from './helpers/native-variants.js';

const addon = loadNativeAddon();
const nativeTitle = addon
  ? `native attention, SwiGLU and exp (${addon.simdLevel()})`
  : `native attention — SKIPPED: ${nativeAddonLoadError() ?? 'addon disabled'}; build it with \`npx node-gyp rebuild\``;

const u32 = new Uint32Array(1);
const f32 = new Float32Array(u32.buffer);
function fromBits(b: number): number {
  u32[0] = b >>> 0;
  return f32[0]!;
}
function bitsOf(x: number): number {
  f32[0] = x;
  return u32[0]!;
}

/** Bitwise equality, except that any NaN equals any NaN (NaN payloads are not part of the contract). */
function expectSameBits(actual: Float32Array, expected: Float32Array, what: string, inputs?: Float32Array): void {
  expect(actual.length, what).toBe(expected.length);
  const a = new Uint32Array(actual.buffer, actual.byteOffset, actual.length);
  const e = new Uint32Array(expected.buffer, expected.byteOffset, expected.length);
  for (let i = 0; i < a.length; i++) {
    if (a[i] !== e[i] && !(Number.isNaN(actual[i]) && Number.isNaN(expected[i]))) {
      const input = inputs ? ` for input ${inputs[i]} (0x${bitsOf(inputs[i]!).toString(16)})` : '';
      expect.fail(`${what}: element ${i}${input} is ${actual[i]} (0x${a[i]!.toString(16)}), expected ${expected[i]} (0x${e[i]!.toString(16)})`);
    }
  }
}

/** Every `stride`-th float32 in [lo, hi] (walking bit patterns, so the spacing follows the float density). */
function floatGrid(lo: number, hi: number, stride: number): number[] {
  const out: number[] = [];
  // non-negative floats: bit patterns increase with the value; negative ones: increase with the magnitude
  if (hi >= 0) for (let b = lo > 0 ? bitsOf(lo) : 0; b <= bitsOf(hi); b += stride) out.push(fromBits(b));
  if (lo < 0) for (let b = bitsOf(hi < 0 ? hi : -0); b <= bitsOf(lo); b += stride) out.push(fromBits(b));
  return out;
}

/** Every float within `radius` ulps of x. */
function around(x: number, radius: number): number[] {
  const out: number[] = [];
  const b = bitsOf(x);
  for (let d = -radius; d <= radius; d++) out.push(fromBits(b + d));
  return out;
}

/** Size of one ulp of float32 at the magnitude of e > 0 (2^-149 in the subnormal range). */
function ulpAt(e: number): number {
  let ex = Math.floor(Math.log2(e));
  if (2 ** ex > e) ex--;
  if (2 ** (ex + 1) <= e) ex++;
  return 2 ** Math.max(ex - 23, -149);
}

/**
 * Inputs x where x·log2e rounds (in float) to exactly k + ½: n = nearest-int(x·log2e) is a tie there, and the spec
 * says ties go to even. Found by scanning the floats next to (k + ½)·ln 2.
 */
function roundingTies(): number[] {
  const ties: number[] = [];
  for (const k of [-150, -126, -125, -3, -2, -1, 0, 1, 2, 3, 100, 126, 127]) {
    const t = k + 0.5;
    for (const x of around(Math.fround(t / Math.LOG2E), 40)) {
      if (Math.fround(x * Math.fround(Math.LOG2E)) === t) ties.push(x);
    }
  }
  return ties;
}

/** The exp spec's test inputs: a dense grid over the whole finite range plus every float near each edge. */
function expInputs(): Float32Array {
  const xs: number[] = [
    ...floatGrid(-110, 95, 509),
    ...around(EXP_MAX_X, 3000), // overflow edge
    ...around(-104, 3000), // the cut to 0
    ...around(-103.972084045410156, 3000), // exp(x) = 2^-150: rounding to 0 vs the smallest subnormal
    ...around(-87.33654475, 3000), // exp(x) = 2^-126: normal / subnormal results (k = −126 / −125)
    ...floatGrid(-1e-6, 1e-6, 4093), // tiny |x|: exp rounds to 1 or 1 − ulp
    ...roundingTies(),
    0, -0, Infinity, -Infinity, NaN, fromBits(0x7fc00001), fromBits(0xff800001), 1e30, -1e30, 3.4e38, -3.4e38,
    fromBits(1), fromBits(0x80000001), // smallest subnormals
  ];
  // random bit patterns over all 2^32 (NaNs, infinities, huge and tiny values included)
  const rng = new SplitMix32(0xe4e4);
  for (let i = 0; i < 200_000; i++) xs.push(fromBits(rng.nextU32()));
  return Float32Array.from(xs);
}

describe('bfExp (docs/kernels.md "exp")', () => {
  it('special values and edges', () => {
    expect(bfExp(Number.NaN)).toBeNaN();
    expect(bfExp(Infinity)).toBe(Infinity);
    expect(Object.is(bfExp(-Infinity), 0)).toBe(true);
    expect(bfExp(0)).toBe(1);
    expect(bfExp(-0)).toBe(1);
    // the largest float with a finite exp, and the next one
    expect(bitsOf(bfExp(EXP_MAX_X))).toBe(0x7f7fff84); // 0x1.ffff08p+127, as libm's expf
    expect(bfExp(fromBits(bitsOf(EXP_MAX_X) + 1))).toBe(Infinity);
    // the smallest subnormal, and the cut to zero
    expect(bfExp(-103.2789)).toBe(2 ** -149);
    expect(bfExp(-103.98)).toBe(0);
    expect(Object.is(bfExp(-104), 0)).toBe(true);
    expect(Object.is(bfExp(-1e30), 0)).toBe(true);
    expect(bfExp(1)).toBe(Math.fround(Math.E));
  });

  it('is within 1 ulp of exp on a dense grid over [−103, 88.72], including subnormal results', () => {
    const xs = [...floatGrid(-103, EXP_MAX_X, 401), ...around(-87.33654475, 2000), ...roundingTies()];
    let worst = 0;
    let worstX = 0;
    for (const x of xs) {
      const y = bfExp(x);
      const e = Math.exp(x);
      const err = Math.abs(y - e) / ulpAt(e);
      if (err > worst) {
        worst = err;
        worstX = x;
      }
    }
    console.log(`bfExp: max error ${worst.toFixed(4)} ulp at x = ${worstX} over ${xs.length} floats`);
    expect(worst).toBeLessThan(1);
  });

  it('rounds n to nearest with ties to even (the scanned tie inputs exist)', () => {
    // Not a property visible from outside by itself: these inputs make the TS-vs-C comparison below check it.
    expect(roundingTies().length).toBeGreaterThan(5);
  });
});

// ---------------------------------------------------------------------------------------------------------------

interface Shape {
  readonly nHeads: number;
  readonly nKvHeads: number;
  readonly headDim: number;
}

interface TokenSpec {
  readonly cache: number;
  readonly nPos: number;
}

/** A batch of query tokens over `cacheLens.length` caches; values ~ U(−scale, scale). */
function makeBatch(shape: Shape, cacheLens: number[], tokens: TokenSpec[], seed: number, qScale = 1): AttentionBatch {
  const kvDim = shape.nKvHeads * shape.headDim;
  const qDim = shape.nHeads * shape.headDim;
  return {
    ...shape,
    nTok: tokens.length,
    q: randomFloats(tokens.length * qDim, seed, qScale),
    nPos: Int32Array.from(tokens, (t) => t.nPos),
    cacheOf: Int32Array.from(tokens, (t) => t.cache),
    keys: cacheLens.map((n, i) => randomFloats(n * kvDim, seed * 31 + 2 * i + 1, 1)),
    values: cacheLens.map((n, i) => randomFloats(n * kvDim, seed * 31 + 2 * i + 2, 1)),
  };
}

function attend(k: Kernels, a: AttentionBatch): Float32Array {
  const out = new Float32Array(a.nTok * a.nHeads * a.headDim).fill(Number.NaN);
  k.attention(out, a);
  return out;
}

/** Attention in float64 with Math.exp: the meaning the kernels must approximate. */
function attentionF64(a: AttentionBatch): Float64Array {
  const { nHeads, nKvHeads, headDim } = a;
  const out = new Float64Array(a.nTok * nHeads * headDim);
  const kvDim = nKvHeads * headDim;
  for (let t = 0; t < a.nTok; t++) {
    const keys = a.keys[a.cacheOf[t]!]!;
    const values = a.values[a.cacheOf[t]!]!;
    const np = a.nPos[t]!;
    for (let h = 0; h < nHeads; h++) {
      const qb = (t * nHeads + h) * headDim;
      const kv = Math.floor(h / (nHeads / nKvHeads)) * headDim;
      const s = Array.from({ length: np }, (_, p) => {
        let d = 0;
        for (let i = 0; i < headDim; i++) d += a.q[qb + i]! * keys[p * kvDim + kv + i]!;
        return d / Math.sqrt(headDim);
      });
      const m = Math.max(...s);
      const e = s.map((v) => Math.exp(v - m));
      const sum = e.reduce((x, y) => x + y, 0);
      for (let i = 0; i < headDim; i++) {
        let acc = 0;
        for (let p = 0; p < np; p++) acc += (e[p]! / sum) * values[p * kvDim + kv + i]!;
        out[qb + i] = acc;
      }
    }
  }
  return out;
}

const SHAPES: Array<Shape & { name: string }> = [];
for (const [nHeads, nKvHeads] of [[4, 4], [4, 2], [8, 2]] as const) {
  for (const headDim of [18, 64, 128]) SHAPES.push({ name: `GQA ${nHeads / nKvHeads}, headDim ${headDim}`, nHeads, nKvHeads, headDim });
}
/** Around the SIMD block sizes (8 positions, q·k steps of 32 or 64) and up to 300. */
const N_POS = [1, 2, 7, 8, 9, 31, 32, 33, 63, 64, 65, 100, 127, 128, 129, 257, 300];

describe('TypeScript attention and SwiGLU', () => {
  const ts = createTsKernels();

  it.each(SHAPES)('$name: close to float64 attention with Math.exp', (shape) => {
    const a = makeBatch(shape, [300], N_POS.map((nPos) => ({ cache: 0, nPos })), shape.headDim * 7 + shape.nHeads);
    const got = attend(ts, a);
    const ref = attentionF64(a);
    let worst = 0;
    for (let i = 0; i < got.length; i++) worst = Math.max(worst, Math.abs(got[i]! - ref[i]!));
    expect(worst).toBeLessThan(2e-6); // outputs are O(0.1–1): a few float ulps
  });

  it('a token with nPos = 0 gets zeros', () => {
    const a = makeBatch({ nHeads: 2, nKvHeads: 1, headDim: 8 }, [4], [{ cache: 0, nPos: 0 }], 5);
    expect(Array.from(attend(ts, a))).toEqual(new Array(16).fill(0));
  });

  it('SwiGLU is g / (1 + exp(−g)) · u within float rounding', () => {
    const gate = randomFloats(4000, 3, 30);
    const up = randomFloats(4000, 4, 2);
    const out = gate.slice();
    ts.swiglu(out, up, gate.length);
    for (let i = 0; i < gate.length; i++) {
      const ref = (gate[i]! / (1 + Math.exp(-gate[i]!))) * up[i]!;
      expect(Math.abs(out[i]! - ref)).toBeLessThanOrEqual(4 * ulpAt(Math.abs(ref) || 2 ** -149));
    }
  });

  it('rejects inconsistent shapes and short caches', () => {
    const shape = { nHeads: 4, nKvHeads: 2, headDim: 8 };
    const a = makeBatch(shape, [10], [{ cache: 0, nPos: 10 }], 1);
    const out = new Float32Array(32);
    expect(() => ts.attention(out, { ...a, nPos: Int32Array.of(11) })).toThrow(RangeError);
    expect(() => ts.attention(out, { ...a, cacheOf: Int32Array.of(1) })).toThrow(RangeError);
    expect(() => ts.attention(out, { ...a, nKvHeads: 3 })).toThrow(RangeError);
    expect(() => ts.attention(a.q, a)).toThrow(RangeError);
  });
});

describe.skipIf(!addon)(nativeTitle, () => {
  const ts = createTsKernels();
  const native = useNativeVariants({ scalarThreads: 2 });

  it('exp: the vector and the scalar C paths give bfExp\'s bits on the dense grid, every edge and random floats', () => {
    const x = expInputs();
    const expected = x.map((v) => bfExp(v));
    for (const scalar of [false, true]) {
      const out = new Float32Array(x.length);
      addon!.exp(out, x, scalar);
      expectSameBits(out, expected, scalar ? 'scalar C exp' : 'vector C exp', x);
    }
  });

  it.each(SHAPES)('$name: every native variant gives the TypeScript bits (nPos 1..300, one batch)', (shape) => {
    const a = makeBatch(shape, [300], N_POS.map((nPos) => ({ cache: 0, nPos })), shape.headDim * 13 + shape.nHeads);
    const expected = attend(ts, a);
    for (const [name, k] of native) expectSameBits(attend(k, a), expected, `${shape.name}, ${name}`);
  });

  it.each(SHAPES)('$name: peaked softmax (scores in the hundreds: exp underflows to 0 and subnormals)', (shape) => {
    const a = makeBatch(shape, [97], [{ cache: 0, nPos: 97 }, { cache: 0, nPos: 40 }], shape.headDim + 1, 40);
    const expected = attend(ts, a);
    for (const [name, k] of native) expectSameBits(attend(k, a), expected, `${shape.name}, ${name}`);
  });

  it('a mixed batch over several caches equals one call per token, on every variant', () => {
    const shape = { nHeads: 12, nKvHeads: 4, headDim: 64 };
    const tokens: TokenSpec[] = [
      { cache: 0, nPos: 130 }, { cache: 1, nPos: 1 }, { cache: 2, nPos: 77 }, { cache: 0, nPos: 131 },
      { cache: 1, nPos: 2 }, { cache: 2, nPos: 78 }, { cache: 0, nPos: 5 },
    ];
    const a = makeBatch(shape, [131, 2, 78], tokens, 99);
    const expected = attend(ts, a);
    const qDim = shape.nHeads * shape.headDim;
    for (const [name, k] of native) {
      expectSameBits(attend(k, a), expected, `batch, ${name}`);
      const single = new Float32Array(expected.length);
      for (let t = 0; t < tokens.length; t++) {
        const one: AttentionBatch = {
          ...a, nTok: 1, q: a.q.subarray(t * qDim, (t + 1) * qDim), nPos: a.nPos.subarray(t, t + 1), cacheOf: Int32Array.of(0),
          keys: [a.keys[tokens[t]!.cache]!], values: [a.values[tokens[t]!.cache]!],
        };
        k.attention(single.subarray(t * qDim, (t + 1) * qDim), one);
      }
      expectSameBits(single, expected, `token by token, ${name}`);
    }
  });

  it.each([
    { nHeads: 6, nKvHeads: 1, headDim: 72 }, { nHeads: 9, nKvHeads: 3, headDim: 20 }, { nHeads: 5, nKvHeads: 1, headDim: 8 },
    { nHeads: 32, nKvHeads: 4, headDim: 64 }, { nHeads: 14, nKvHeads: 2, headDim: 40 }, { nHeads: 3, nKvHeads: 1, headDim: 24 },
  ])('odd groups and head dims ($nHeads heads / $nKvHeads KV, headDim $headDim) agree too', (shape) => {
    // groups of 3, 5, 6, 7 and 8 heads split into passes of up to 4 (q·k and Σ w·v); 72 = 4 + 4 + 1 vectors of 8,
    // and 72, 40 and 24 leave 8 dimensions after the 16-wide key transposes
    const a = makeBatch(shape, [70, 9], [{ cache: 0, nPos: 70 }, { cache: 1, nPos: 9 }, { cache: 0, nPos: 33 }], shape.nHeads);
    const expected = attend(ts, a);
    for (const [name, k] of native) expectSameBits(attend(k, a), expected, `${shape.nHeads}/${shape.nKvHeads}/${shape.headDim}, ${name}`);
  });

  it('equal scores, zero keys and nPos = 0 agree too', () => {
    const shape = { nHeads: 4, nKvHeads: 2, headDim: 64 };
    const a = makeBatch(shape, [40, 40], [{ cache: 0, nPos: 40 }, { cache: 1, nPos: 33 }, { cache: 1, nPos: 0 }], 7);
    a.keys[0]!.fill(0); // every score 0: a uniform softmax
    const k1 = a.keys[1]!;
    for (let p = 1; p < 40; p++) k1.copyWithin(p * 128, 0, 128); // every key equal to the first
    const expected = attend(ts, a);
    expect(Array.from(expected.subarray(2 * 256))).toEqual(new Array(256).fill(0));
    for (const [name, k] of native) expectSameBits(attend(k, a), expected, `ties, ${name}`);
  });

  it.each([2, 3, 4].flatMap((group) => [18, 64].map((headDim) => ({ group, headDim }))))(
    'cancellation makes the order of both double sums visible (group $group, headDim $headDim)', ({ group, headDim }) => {
    // Random data cannot see a changed summation order: double sums of ~100 terms almost never round to another
    // float. Here ±2^40 terms cancel, so any other order loses the small terms' low bits. Groups of 2 and of 3-4
    // heads take different q·k step sizes.
    const shape = { nHeads: group, nKvHeads: 1, headDim };
    const np = 45;
    const a = makeBatch(shape, [np], [{ cache: 0, nPos: np }, { cache: 0, nPos: 20 }], headDim);
    const big = 2 ** 40;
    a.q.fill(1, 0, headDim); // head 0 of token 0: dot = Σ_d k_d, with k_0 = +big and k_1 = −big
    for (let p = 0; p < np; p++) {
      a.keys[0]![p * headDim] = big;
      a.keys[0]![p * headDim + 1] = -big;
    }
    a.q.fill(0, headDim, 2 * headDim); // head 1 of token 0: uniform weights; values cancel across positions
    const v = a.values[0]!;
    for (let d = 0; d < headDim; d++) {
      v[d] = big;
      v[headDim + d] = -big;
    }
    const expected = attend(ts, a);
    for (const [name, k] of native) expectSameBits(attend(k, a), expected, `cancellation, ${name}`);
  });

  it('rejects bad arguments instead of reading out of bounds', () => {
    const k = native.get('simd/2')!;
    const shape = { nHeads: 4, nKvHeads: 2, headDim: 8 };
    const a = makeBatch(shape, [10], [{ cache: 0, nPos: 10 }], 1);
    const out = new Float32Array(32);
    expect(() => k.attention(out, { ...a, nPos: Int32Array.of(11) })).toThrow(RangeError);
    expect(() => k.attention(out, { ...a, cacheOf: Int32Array.of(1) })).toThrow(RangeError);
    expect(() => k.attention(out, { ...a, nKvHeads: 3 })).toThrow(RangeError);
    expect(() => k.attention(out, { ...a, values: [] })).toThrow(RangeError);
    expect(() => k.attention(a.q, a)).toThrow(RangeError);
    expect(() => k.attention(a.keys[0]!, a)).toThrow(RangeError);
    expect(() => k.attention(new Float32Array(31), a)).toThrow(RangeError);
    expect(() => k.swiglu(out, new Float32Array(8), 9)).toThrow(RangeError);
  });

  it.each([1, 15, 16, 17, 1000, 40_001])('SwiGLU, n = %i: every native variant gives the TypeScript bits', (n) => {
    const gate = randomFloats(n, n, 30);
    const up = randomFloats(n, n + 1, 2);
    // exp(−g) overflowing (g < −88.7), ±0, infinities and a NaN
    const specials = [-100, -88.8, -88.7, 88.8, 0, -0, Infinity, -Infinity, NaN, 1e-40];
    for (let i = 0; i < specials.length && i * 7 < n; i++) gate[i * 7] = specials[i]!;
    const expected = gate.slice();
    ts.swiglu(expected, up, n);
    for (const [name, k] of native) {
      const out = gate.slice();
      k.swiglu(out, up, n);
      expectSameBits(out, expected, `SwiGLU ${name}`, gate);
    }
  });
});
