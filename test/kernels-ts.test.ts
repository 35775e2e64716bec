import { describe, expect, it } from 'vitest';
import { GGMLType, rowBytes, typeName } from '../src/engine/gguf/types.js';
import type { WeightTensor } from '../src/engine/tensor.js';
import { createTsKernels } from '../src/engine/kernels/ts.js';
import { bf16BitsToF32, f16BitsToF32, f32ToBf16Bits, f32ToF16Bits } from '../src/engine/quant/half.js';
import { dequantizeTensor, quantizeTensor } from '../src/engine/quant/rows.js';
import { Q8KBlocks, quantizeQ8_KActivation } from '../src/engine/quant/activations.js';
import { packScaleMinK4 } from '../src/engine/quant/kscales.js';
import { randomFloats, randomWeights } from '../src/engine/quant/random.js';

const fr = Math.fround;

function tensor(type: GGMLType, rows: number, cols: number, data: Uint8Array): WeightTensor {
  return { name: `w.${typeName(type)}`, type, rows, cols, data };
}

// ---------------------------------------------------------------------------------------------------------------
// A deliberately naive re-implementation of docs/kernels.md: element-by-element decoding straight from the block
// layouts, activations quantized by the documented rules, and the documented accumulation order with explicit arrays.
// ---------------------------------------------------------------------------------------------------------------

const half = (b: Uint8Array, o: number): number => f16BitsToF32(b[o]! | (b[o + 1]! << 8));
const i8 = (v: number): number => (v > 127 ? v - 256 : v);
function rne(v: number): number {
  const f = Math.floor(v);
  const diff = v - f;
  if (diff > 0.5) return f + 1;
  if (diff < 0.5) return f;
  return f % 2 === 0 ? f : f + 1;
}

function naiveLanes(w: number[], x: number[]): number {
  const n = w.length;
  const acc = new Array<number>(16).fill(0);
  const m = n - (n % 16);
  for (let i = 0; i < m; i += 16) for (let l = 0; l < 16; l++) acc[l] = fr(acc[l]! + fr(w[i + l]! * x[i + l]!));
  for (let l = 0; l < 8; l++) acc[l] = fr(acc[l]! + acc[l + 8]!);
  for (let l = 0; l < 4; l++) acc[l] = fr(acc[l]! + acc[l + 4]!);
  for (let l = 0; l < 2; l++) acc[l] = fr(acc[l]! + acc[l + 2]!);
  let s = fr(acc[0]! + acc[1]!);
  for (let i = m; i < n; i++) s = fr(s + fr(w[i]! * x[i]!));
  return s;
}

function naiveBlockSum(v: number[]): number {
  const acc = new Array<number>(8).fill(0);
  v.forEach((vb, b) => { acc[b % 8] = fr(acc[b % 8]! + vb); });
  for (let l = 0; l < 4; l++) acc[l] = fr(acc[l]! + acc[l + 4]!);
  for (let l = 0; l < 2; l++) acc[l] = fr(acc[l]! + acc[l + 2]!);
  return fr(acc[0]! + acc[1]!);
}

function naiveQ8_0Act(x: number[]): { d: number[]; q: number[] } {
  const d: number[] = [];
  const q: number[] = [];
  for (let b = 0; b < x.length / 32; b++) {
    const blk = x.slice(b * 32, b * 32 + 32);
    const amax = Math.max(...blk.map(Math.abs));
    const id = amax ? fr(127 / amax) : 0;
    d.push(f16BitsToF32(f32ToF16Bits(fr(amax / 127))));
    for (const v of blk) q.push(rne(fr(v * id)));
  }
  return { d, q };
}

function naiveQ8_KAct(x: number[]): { d: number[]; q: number[]; bsums: number[] } {
  const d: number[] = [];
  const q: number[] = [];
  const bsums: number[] = [];
  for (let b = 0; b < x.length / 256; b++) {
    const blk = x.slice(b * 256, b * 256 + 256);
    let max = 0;
    for (const v of blk) if (Math.abs(v) > Math.abs(max)) max = v;
    const qs = max === 0 ? blk.map(() => 0) : blk.map((v) => Math.min(127, rne(fr(fr(-127 / max) * v))));
    d.push(max === 0 ? 0 : fr(1 / fr(-127 / max)));
    q.push(...qs);
    for (let j = 0; j < 16; j++) bsums.push(qs.slice(16 * j, 16 * j + 16).reduce((a, c) => a + c, 0));
  }
  return { d, q, bsums };
}

/** 6-bit scale and min j of a Q4_K/Q5_K scales field starting at byte o, per the spec's bit positions. */
function scaleMin(b: Uint8Array, o: number, j: number): [number, number] {
  if (j < 4) return [b[o + j]! & 63, b[o + j + 4]! & 63];
  return [(b[o + j + 4]! & 15) | ((b[o + j - 4]! >> 6) << 4), (b[o + j + 4]! >> 4) | ((b[o + j]! >> 6) << 4)];
}

/** Integer quant of element e (0..255) of the super-block at byte o. */
function kQuant(type: GGMLType, b: Uint8Array, o: number, e: number): number {
  if (type === GGMLType.Q6_K) {
    const n = e >> 7;
    const k = (e & 127) >> 5;
    const l = e & 31;
    const qlByte = b[o + 64 * n + l + (k & 1) * 32]!;
    const low = k < 2 ? qlByte & 15 : qlByte >> 4;
    const high = (b[o + 128 + 32 * n + l]! >> (2 * k)) & 3;
    return (low | (high << 4)) - 32;
  }
  const g = e >> 6;
  const l = e & 63;
  const qsBase = type === GGMLType.Q4_K ? 16 : 48;
  const byte = b[o + qsBase + 32 * g + (l & 31)]!;
  let q = l < 32 ? byte & 15 : byte >> 4;
  if (type === GGMLType.Q5_K) q += ((b[o + 16 + (l & 31)]! >> (2 * g + (l < 32 ? 0 : 1))) & 1) * 16;
  return q;
}

function naiveDot(w: WeightTensor, r: number, xs: number[]): number {
  const n = w.cols;
  const rb = rowBytes(w.type, n);
  const row = w.data.subarray(r * rb, (r + 1) * rb);
  switch (w.type) {
    case GGMLType.F32: {
      const view = new DataView(row.buffer, row.byteOffset, row.byteLength);
      return naiveLanes(Array.from({ length: n }, (_, i) => view.getFloat32(4 * i, true)), xs);
    }
    case GGMLType.F16:
      return naiveLanes(Array.from({ length: n }, (_, i) => half(row, 2 * i)), xs.map((v) => f16BitsToF32(f32ToF16Bits(v))));
    case GGMLType.BF16:
      return naiveLanes(Array.from({ length: n }, (_, i) => bf16BitsToF32(row[2 * i]! | (row[2 * i + 1]! << 8))),
        xs.map((v) => bf16BitsToF32(f32ToBf16Bits(v))));
    case GGMLType.Q8_0:
    case GGMLType.Q4_0: {
      const a = naiveQ8_0Act(xs);
      const bytes = w.type === GGMLType.Q8_0 ? 34 : 18;
      const v: number[] = [];
      for (let b = 0; b < n / 32; b++) {
        let isum = 0;
        for (let j = 0; j < 32; j++) {
          const wq = w.type === GGMLType.Q8_0
            ? i8(row[b * bytes + 2 + j]!)
            : (j < 16 ? row[b * bytes + 2 + j]! & 15 : row[b * bytes + 2 + j - 16]! >> 4) - 8;
          isum += wq * a.q[b * 32 + j]!;
        }
        v.push(fr(fr(half(row, b * bytes) * a.d[b]!) * isum));
      }
      return naiveBlockSum(v);
    }
    case GGMLType.Q4_K:
    case GGMLType.Q5_K:
    case GGMLType.Q6_K: {
      const a = naiveQ8_KAct(xs);
      const bytes = rowBytes(w.type, 256);
      const v: number[] = [];
      for (let b = 0; b < n / 256; b++) {
        const o = b * bytes;
        const dx = a.d[b]!;
        if (w.type === GGMLType.Q6_K) {
          let sumi = 0;
          for (let j = 0; j < 16; j++) {
            let s = 0;
            for (let k = 0; k < 16; k++) s += kQuant(w.type, row, o, 16 * j + k) * a.q[b * 256 + 16 * j + k]!;
            sumi += i8(row[o + 192 + j]!) * s;
          }
          v.push(fr(fr(half(row, o + 208) * dx) * fr(sumi)));
        } else {
          let sumi = 0;
          let summins = 0;
          for (let j = 0; j < 8; j++) {
            const [sc, m] = scaleMin(row, o + 4, j);
            let s = 0;
            for (let k = 0; k < 32; k++) s += kQuant(w.type, row, o, 32 * j + k) * a.q[b * 256 + 32 * j + k]!;
            sumi += sc * s;
            summins += m * (a.bsums[b * 16 + 2 * j]! + a.bsums[b * 16 + 2 * j + 1]!);
          }
          v.push(fr(fr(fr(half(row, o) * dx) * fr(sumi)) - fr(fr(half(row, o + 2) * dx) * fr(summins))));
        }
      }
      return naiveBlockSum(v);
    }
    default:
      throw new Error('unsupported');
  }
}

// ---------------------------------------------------------------------------------------------------------------

const bitsEqual = (a: Float32Array, b: Float32Array): void => {
  expect(Array.from(new Uint32Array(a.buffer, a.byteOffset, a.length))).toEqual(Array.from(new Uint32Array(b.buffer, b.byteOffset, b.length)));
};

// cols chosen so the block accumulators wrap (more than 8 blocks, not a multiple of 8) and F32 lanes have a tail
const CASES: [GGMLType, number, number][] = [
  [GGMLType.F32, 5, 100],
  [GGMLType.F16, 5, 100],
  [GGMLType.BF16, 5, 100],
  [GGMLType.Q8_0, 5, 32 * 11],
  [GGMLType.Q4_0, 5, 32 * 11],
  [GGMLType.Q4_K, 8, 256 * 13],
  [GGMLType.Q5_K, 8, 256 * 13],
  [GGMLType.Q6_K, 8, 256 * 13],
];

// Relative to Σ|w·x|: how far activation rounding may move the result from the exact float64 dot.
const TOLERANCE: Partial<Record<GGMLType, number>> = {
  [GGMLType.F32]: 1e-6, [GGMLType.F16]: 2e-4, [GGMLType.BF16]: 2e-3,
  [GGMLType.Q8_0]: 3e-3, [GGMLType.Q4_0]: 3e-3, [GGMLType.Q4_K]: 3e-3, [GGMLType.Q5_K]: 3e-3, [GGMLType.Q6_K]: 3e-3,
};

describe('TypeScript kernels', () => {
  const k = createTsKernels();

  it('identifies itself', () => {
    expect(k.name).toBe('ts');
    expect(k.threads).toBe(1);
  });

  for (const [type, rows, cols] of CASES) {
    const name = typeName(type);
    const w = tensor(type, rows, cols, randomWeights(type, rows, cols, 1000 + type));
    const nTok = 3;
    const x = randomFloats(nTok * cols, 77 + type, 2);

    it(`${name}: matmul is bit-identical to the naive docs/kernels.md order`, () => {
      const out = new Float32Array(nTok * rows);
      k.matmul(out, w, x, nTok);
      const want = new Float32Array(nTok * rows);
      for (let t = 0; t < nTok; t++) {
        const xs = Array.from(x.subarray(t * cols, (t + 1) * cols));
        for (let r = 0; r < rows; r++) want[t * rows + r] = naiveDot(w, r, xs);
      }
      bitsEqual(out, want);
    });

    it(`${name}: matmul is close to a float64 dot with the dequantized weights`, () => {
      const out = new Float32Array(nTok * rows);
      k.matmul(out, w, x, nTok);
      const wf = dequantizeTensor(type, w.data, rows, cols);
      for (let t = 0; t < nTok; t++) {
        for (let r = 0; r < rows; r++) {
          let exact = 0;
          let mag = 0;
          for (let i = 0; i < cols; i++) {
            exact += wf[r * cols + i]! * x[t * cols + i]!;
            mag += Math.abs(wf[r * cols + i]! * x[t * cols + i]!);
          }
          expect(Math.abs(out[t * rows + r]! - exact)).toBeLessThanOrEqual(TOLERANCE[type]! * mag);
        }
      }
    });

    it(`${name}: a batch of tokens equals one call per token, bit for bit`, () => {
      const batched = new Float32Array(nTok * rows);
      k.matmul(batched, w, x, nTok);
      const single = new Float32Array(nTok * rows);
      const one = new Float32Array(rows);
      for (let t = 0; t < nTok; t++) {
        k.matmul(one, w, x.slice(t * cols, (t + 1) * cols), 1);
        single.set(one, t * rows);
      }
      bitsEqual(batched, single);
    });

    it(`${name}: getRow is dequantizeRow of that row`, () => {
      const all = dequantizeTensor(type, w.data, rows, cols);
      const out = new Float32Array(cols);
      k.getRow(out, w, rows - 1);
      bitsEqual(out, all.subarray((rows - 1) * cols, rows * cols));
    });
  }

  it('F32 works for odd sizes, including fewer than 16 columns', () => {
    for (const cols of [1, 7, 15, 16, 17, 33, 100]) {
      const rows = 4;
      const wf = randomFloats(rows * cols, cols, 1);
      const w = tensor(GGMLType.F32, rows, cols, quantizeTensor(GGMLType.F32, wf, rows, cols));
      const x = randomFloats(cols * 2, cols + 1, 1);
      const out = new Float32Array(rows * 2);
      k.matmul(out, w, x, 2);
      for (let t = 0; t < 2; t++) {
        for (let r = 0; r < rows; r++) {
          expect(out[t * rows + r]).toBe(naiveLanes(Array.from(wf.subarray(r * cols, (r + 1) * cols)), Array.from(x.subarray(t * cols, (t + 1) * cols))));
          let exact = 0;
          for (let i = 0; i < cols; i++) exact += wf[r * cols + i]! * x[t * cols + i]!;
          expect(out[t * rows + r]).toBeCloseTo(exact, 5);
        }
      }
    }
  });

  it('F32 weights at a misaligned byte offset give the same bits', () => {
    const rows = 3;
    const cols = 33;
    const bytes = randomWeights(GGMLType.F32, rows, cols, 5);
    const shifted = new Uint8Array(bytes.length + 2);
    shifted.set(bytes, 2);
    const x = randomFloats(cols, 6);
    const a = new Float32Array(rows);
    const b = new Float32Array(rows);
    k.matmul(a, tensor(GGMLType.F32, rows, cols, bytes), x, 1);
    k.matmul(b, tensor(GGMLType.F32, rows, cols, shifted.subarray(2)), x, 1);
    bitsEqual(a, b);
  });

  it('Q8_0: exactly representable inputs give the exact integer dot', () => {
    // Weights q_j = j − 16 with d = 1; activations with amax 127 quantize to themselves (id = 1, d_x = 1).
    const data = new Uint8Array(34);
    data[0] = 0x00; data[1] = 0x3c; // F16 1.0
    for (let j = 0; j < 32; j++) data[2 + j] = (j - 16) & 0xff;
    const x = new Float32Array(32);
    for (let j = 0; j < 32; j++) x[j] = j === 0 ? -127 : (j % 5) - 2;
    let want = 0;
    for (let j = 0; j < 32; j++) want += (j - 16) * x[j]!;
    const out = new Float32Array(1);
    k.matmul(out, tensor(GGMLType.Q8_0, 1, 32, data), x, 1);
    expect(out[0]).toBe(want);
  });

  it('K-quants round sumi to float32 before scaling (it can exceed 2^24)', () => {
    // One Q4_K super-block with d = 1, dmin = 0, every scale 63 and every quant 15: sumi = 945 · Σ x_q.
    const blk = new Uint8Array(144);
    blk[1] = 0x3c; // d = F16 1.0; dmin stays 0
    const sc = [63, 63, 63, 63, 63, 63, 63, 63];
    packScaleMinK4(sc, [0, 0, 0, 0, 0, 0, 0, 0], blk, 4);
    blk.fill(0xff, 16);
    const w = tensor(GGMLType.Q4_K, 1, 256, blk);
    const act = new Q8KBlocks();
    let checked = 0;
    for (let seed = 1; seed < 200 && checked < 3; seed++) {
      const x = randomFloats(256, seed).map((v) => 0.5 + Math.abs(v) / 2);
      quantizeQ8_KActivation(x, 0, 256, act);
      let sumx = 0;
      for (let i = 0; i < 256; i++) sumx += act.qs[i]!;
      const sumi = 945 * sumx;
      expect(Math.abs(sumi)).toBeGreaterThan(2 ** 24);
      const want = fr(fr(act.scales[0]!) * fr(sumi));
      if (want === fr(act.scales[0]! * sumi)) continue; // this seed cannot tell the two orders apart
      const out = new Float32Array(1);
      k.matmul(out, w, x, 1);
      expect(out[0]).toBe(want);
      checked++;
    }
    expect(checked).toBe(3);
  });

  it('nTok = 0 writes nothing; bad shapes and rows are rejected', () => {
    const w = tensor(GGMLType.Q8_0, 2, 32, randomWeights(GGMLType.Q8_0, 2, 32, 1));
    const out = new Float32Array(2).fill(7);
    k.matmul(out, w, new Float32Array(0), 0);
    expect(Array.from(out)).toEqual([7, 7]);
    expect(() => k.matmul(out, w, new Float32Array(31), 1)).toThrow(RangeError);
    expect(() => k.matmul(new Float32Array(1), w, new Float32Array(32), 1)).toThrow(RangeError);
    expect(() => k.getRow(new Float32Array(32), w, 2)).toThrow(RangeError);
  });
});
