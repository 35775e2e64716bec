/**
 * Pure-TypeScript kernels: the reference implementation of docs/kernels.md. Single-threaded; rows outer, tokens
 * inner, so each weight row is decoded once per matmul however many tokens there are. All scratch is reused.
 */
import { GGMLType, rowBytes, typeName } from '../gguf/types.js';
import type { WeightTensor } from '../tensor.js';
import { Q8Blocks, Q8KBlocks, quantizeQ8_0Activation, quantizeQ8_KActivation } from '../quant/activations.js';
import { dotF32Lanes, dotKAsym, dotQ4_0Blocks, dotQ6K, dotQ8Blocks } from '../quant/dot.js';
import { dequantizeRowBF16, dequantizeRowF16 } from '../quant/float.js';
import { readF16, roundToBf16, roundToF16 } from '../quant/half.js';
import { Q4_0_BLOCK_BYTES } from '../quant/q4_0.js';
import { unpackRowQ4_K } from '../quant/q4_k.js';
import { unpackRowQ5_K } from '../quant/q5_k.js';
import { unpackRowQ6_K } from '../quant/q6_k.js';
import { Q8_0_BLOCK_BYTES } from '../quant/q8_0.js';
import { QK, QK_K } from '../quant/rounding.js';
import { dequantizeRow } from '../quant/rows.js';
import { addBias, addInPlace, applyRopeRows, rmsNorm } from '../model/ops.js';
import { bfExp } from './exp.js';
import { inGgmlLayout, isX16, x16Row } from './layout.js';
import type { AttentionBatch, Kernels, RopeBatch } from './types.js';

const fr = Math.fround;

/** Grow-only scratch buffers, one set per kernels instance. */
class Scratch {
  f32a = new Float32Array(0); // decoded weight row
  f32b = new Float32Array(0); // rounded activations
  f32c = new Float32Array(0); // per-block weight scales
  f32d = new Float32Array(0); // per-block weight mins
  i8 = new Int8Array(0); // unpacked weight quants
  u8a = new Uint8Array(0); // K sub-block scales
  u8b = new Uint8Array(0); // K sub-block mins
  i8sc = new Int8Array(0); // Q6_K scales
  readonly q8 = new Q8Blocks();
  readonly q8k = new Q8KBlocks();

  rowF32(n: number): Float32Array {
    if (this.f32a.length < n) this.f32a = new Float32Array(n);
    return this.f32a;
  }
  actF32(n: number): Float32Array {
    if (this.f32b.length < n) this.f32b = new Float32Array(n);
    return this.f32b;
  }
  blockScales(n: number): Float32Array {
    if (this.f32c.length < n) this.f32c = new Float32Array(n);
    return this.f32c;
  }
  blockMins(n: number): Float32Array {
    if (this.f32d.length < n) this.f32d = new Float32Array(n);
    return this.f32d;
  }
  quants(n: number): Int8Array {
    if (this.i8.length < n) this.i8 = new Int8Array(n);
    return this.i8;
  }
  subScales(n: number): Uint8Array {
    if (this.u8a.length < n) this.u8a = new Uint8Array(n);
    return this.u8a;
  }
  subMins(n: number): Uint8Array {
    if (this.u8b.length < n) this.u8b = new Uint8Array(n);
    return this.u8b;
  }
  q6Scales(n: number): Int8Array {
    if (this.i8sc.length < n) this.i8sc = new Int8Array(n);
    return this.i8sc;
  }
}

/**
 * Float32 view of an F32 tensor's bytes. Float32Array needs 4-byte alignment, so misaligned data is copied once
 * (weights are treated as immutable; the cache is keyed by the data array).
 */
const f32Views = new WeakMap<Uint8Array, Float32Array>();
function f32View(data: Uint8Array): Float32Array {
  let v = f32Views.get(data);
  if (!v) {
    if (data.byteOffset % 4 === 0) v = new Float32Array(data.buffer, data.byteOffset, data.byteLength >>> 2);
    else v = new Float32Array(data.slice().buffer, 0, data.byteLength >>> 2);
    f32Views.set(data, v);
  }
  return v;
}

function checkShapes(out: Float32Array, w: WeightTensor, x: Float32Array, nTok: number): void {
  if (!Number.isInteger(nTok) || nTok < 0) throw new RangeError(`nTok must be a non-negative integer, got ${nTok}`);
  if (x.length < nTok * w.cols) throw new RangeError(`x holds ${x.length} values, need ${nTok} × ${w.cols}`);
  if (out.length < nTok * w.rows) throw new RangeError(`out holds ${out.length} values, need ${nTok} × ${w.rows}`);
  if (w.data.length < w.rows * rowBytes(w.type, w.cols)) throw new RangeError(`${w.name}: data shorter than ${w.rows} rows`);
}

function matmulF32(out: Float32Array, w: WeightTensor, x: Float32Array, nTok: number): void {
  const { rows, cols } = w;
  const wf = f32View(w.data);
  for (let r = 0; r < rows; r++) {
    for (let t = 0; t < nTok; t++) out[t * rows + r] = dotF32Lanes(wf, r * cols, x, t * cols, cols);
  }
}

/** F16 / BF16: round x to the weight's format (and back), decode each weight row to f32, then float lanes. */
function matmulHalf(s: Scratch, out: Float32Array, w: WeightTensor, x: Float32Array, nTok: number): void {
  const { rows, cols } = w;
  const bf16 = w.type === GGMLType.BF16;
  const xr = s.actF32(nTok * cols);
  const round = bf16 ? roundToBf16 : roundToF16;
  for (let i = 0; i < nTok * cols; i++) xr[i] = round(x[i]!);
  const decode = bf16 ? dequantizeRowBF16 : dequantizeRowF16;
  const row = s.rowF32(cols);
  const bytesPerRow = cols * 2;
  for (let r = 0; r < rows; r++) {
    decode(w.data, r * bytesPerRow, row, 0, cols);
    for (let t = 0; t < nTok; t++) out[t * rows + r] = dotF32Lanes(row, 0, xr, t * cols, cols);
  }
}

function quantizeTokensQ8_0(s: Scratch, x: Float32Array, nTok: number, cols: number): Q8Blocks {
  const nb = cols / QK;
  s.q8.reserve(nTok * nb);
  for (let t = 0; t < nTok; t++) quantizeQ8_0Activation(x, t * cols, cols, s.q8, t * nb);
  return s.q8;
}

function quantizeTokensQ8_K(s: Scratch, x: Float32Array, nTok: number, cols: number): Q8KBlocks {
  const nb = cols / QK_K;
  s.q8k.reserve(nTok * nb);
  for (let t = 0; t < nTok; t++) quantizeQ8_KActivation(x, t * cols, cols, s.q8k, t * nb);
  return s.q8k;
}

function matmulQ8_0(s: Scratch, out: Float32Array, w: WeightTensor, x: Float32Array, nTok: number): void {
  const { rows, cols } = w;
  const nb = cols / QK;
  const { qs: xq, scales: xd } = quantizeTokensQ8_0(s, x, nTok, cols);
  const wq = new Int8Array(w.data.buffer, w.data.byteOffset, w.data.byteLength); // quants read in place
  const wd = s.blockScales(nb);
  const bytesPerRow = nb * Q8_0_BLOCK_BYTES;
  for (let r = 0; r < rows; r++) {
    const ro = r * bytesPerRow;
    for (let b = 0; b < nb; b++) wd[b] = readF16(w.data, ro + b * Q8_0_BLOCK_BYTES);
    for (let t = 0; t < nTok; t++) out[t * rows + r] = dotQ8Blocks(wq, ro + 2, Q8_0_BLOCK_BYTES, wd, xq, xd, t * nb, nb);
  }
}

function matmulQ4_0(s: Scratch, out: Float32Array, w: WeightTensor, x: Float32Array, nTok: number): void {
  const { rows, cols } = w;
  const nb = cols / QK;
  const { qs: xq, scales: xd } = quantizeTokensQ8_0(s, x, nTok, cols);
  const wd = s.blockScales(nb);
  const bytesPerRow = rowBytes(w.type, cols);
  for (let r = 0; r < rows; r++) {
    const ro = r * bytesPerRow;
    for (let b = 0; b < nb; b++) wd[b] = readF16(w.data, ro + b * Q4_0_BLOCK_BYTES);
    for (let t = 0; t < nTok; t++) out[t * rows + r] = dotQ4_0Blocks(w.data, ro, wd, xq, xd, t * nb, nb);
  }
}

function matmulKAsym(s: Scratch, out: Float32Array, w: WeightTensor, x: Float32Array, nTok: number): void {
  const { rows, cols } = w;
  const nb = cols / QK_K;
  const { qs: xq, scales: xd, bsums } = quantizeTokensQ8_K(s, x, nTok, cols);
  const unpack = w.type === GGMLType.Q4_K ? unpackRowQ4_K : unpackRowQ5_K;
  const wq = s.quants(cols);
  const sc = s.subScales(nb * 8);
  const mn = s.subMins(nb * 8);
  const wd = s.blockScales(nb);
  const wdmin = s.blockMins(nb);
  const bytesPerRow = rowBytes(w.type, cols);
  for (let r = 0; r < rows; r++) {
    unpack(w.data, r * bytesPerRow, cols, wq, sc, mn, wd, wdmin);
    for (let t = 0; t < nTok; t++) out[t * rows + r] = dotKAsym(wq, sc, mn, wd, wdmin, xq, xd, bsums, t * nb, nb);
  }
}

function matmulQ6_K(s: Scratch, out: Float32Array, w: WeightTensor, x: Float32Array, nTok: number): void {
  const { rows, cols } = w;
  const nb = cols / QK_K;
  const { qs: xq, scales: xd } = quantizeTokensQ8_K(s, x, nTok, cols);
  const wq = s.quants(cols);
  const sc = s.q6Scales(nb * 16);
  const wd = s.blockScales(nb);
  const bytesPerRow = rowBytes(w.type, cols);
  for (let r = 0; r < rows; r++) {
    unpackRowQ6_K(w.data, r * bytesPerRow, cols, wq, sc, wd);
    for (let t = 0; t < nTok; t++) out[t * rows + r] = dotQ6K(wq, sc, wd, xq, xd, t * nb, nb);
  }
}

/** Throws unless the batch's arrays are long enough for its shape (the native addon checks the same). */
export function checkAttention(out: Float32Array, a: AttentionBatch): void {
  const { nTok, nHeads, nKvHeads, headDim } = a;
  if (!Number.isInteger(nTok) || nTok < 0) throw new RangeError(`nTok must be a non-negative integer, got ${nTok}`);
  if (!Number.isInteger(nKvHeads) || nKvHeads < 1 || !Number.isInteger(nHeads) || nHeads < 1 || nHeads % nKvHeads !== 0) {
    throw new RangeError(`nHeads (${nHeads}) must be a positive multiple of nKvHeads (${nKvHeads})`);
  }
  if (!Number.isInteger(headDim) || headDim < 1) throw new RangeError(`headDim must be a positive integer, got ${headDim}`);
  const qDim = nHeads * headDim;
  const kvDim = nKvHeads * headDim;
  if (a.q.length < nTok * qDim || out.length < nTok * qDim) throw new RangeError(`q and out need ${nTok} × ${qDim} values`);
  if (a.nPos.length < nTok || a.cacheOf.length < nTok) throw new RangeError(`nPos and cacheOf need ${nTok} entries`);
  if (a.keys.length !== a.values.length) throw new RangeError('keys and values must have the same number of caches');
  if (out.buffer === a.q.buffer && out.byteOffset < a.q.byteOffset + nTok * qDim * 4 && a.q.byteOffset < out.byteOffset + nTok * qDim * 4) {
    throw new RangeError('out and q must not overlap');
  }
  for (let t = 0; t < nTok; t++) {
    const c = a.cacheOf[t]!;
    const np = a.nPos[t]!;
    if (c < 0 || c >= a.keys.length) throw new RangeError(`token ${t}: cache ${c} is not in keys/values`);
    if (np < 0) throw new RangeError(`token ${t}: nPos ${np} is negative`);
    if (a.keys[c]!.length < np * kvDim || a.values[c]!.length < np * kvDim) {
      throw new RangeError(`token ${t}: cache ${c} is shorter than ${np} × ${kvDim}`);
    }
  }
}

/**
 * Causal attention of one query token over `nPos` cached positions, for every head (grouped-query: head h reads KV
 * head floor(h / (nHeads / nKvHeads))), in the order of docs/kernels.md "Attention": q·k and Σ w·v accumulate in
 * double in dimension / position order and round once; softmax uses bfExp.
 */
export function attendOne(
  out: Float32Array, outOff: number,
  q: Float32Array, qOff: number,
  keys: Float32Array, values: Float32Array, nPos: number,
  nHeads: number, nKvHeads: number, headDim: number,
  scores: Float64Array,
  acc: Float64Array,
): void {
  const kvDim = nKvHeads * headDim;
  const group = nHeads / nKvHeads;
  const scale = fr(1 / Math.sqrt(headDim));
  for (let h = 0; h < nHeads; h++) {
    const qb = qOff + h * headDim;
    const kvOff = Math.floor(h / group) * headDim;
    let max = -Infinity;
    for (let p = 0; p < nPos; p++) {
      const kb = p * kvDim + kvOff;
      let dot = 0;
      for (let d = 0; d < headDim; d++) dot += q[qb + d]! * keys[kb + d]!; // float·float is exact in double
      const s = fr(fr(dot) * scale);
      scores[p] = s;
      if (s > max) max = s;
    }
    let sum = 0;
    for (let p = 0; p < nPos; p++) {
      const e = bfExp(fr(scores[p]! - max));
      scores[p] = e;
      sum += e;
    }
    const inv = 1 / sum;
    const ob = outOff + h * headDim;
    // Accumulate in double per output element, positions in order.
    acc.fill(0, 0, headDim);
    for (let p = 0; p < nPos; p++) {
      const w = fr(scores[p]! * inv);
      const vb = p * kvDim + kvOff;
      for (let d = 0; d < headDim; d++) acc[d] += w * values[vb + d]!;
    }
    for (let d = 0; d < headDim; d++) out[ob + d] = fr(acc[d]!);
  }
}

/** True if a[0 .. aLen) and b[0 .. bLen) share memory. */
function overlaps(a: Float32Array, aLen: number, b: Float32Array, bLen: number): boolean {
  return a.buffer === b.buffer && aLen > 0 && bLen > 0 &&
    a.byteOffset < b.byteOffset + 4 * bLen && b.byteOffset < a.byteOffset + 4 * aLen;
}

function isCount(n: number): boolean {
  return Number.isInteger(n) && n >= 0;
}

/** Throws on the arguments the native rmsNorm rejects too. */
export function checkRmsNorm(out: Float32Array, x: Float32Array, weight: Float32Array, nRows: number, dim: number): void {
  if (!isCount(nRows) || !Number.isInteger(dim) || dim < 1) throw new RangeError(`nRows (${nRows}) and dim (${dim}) must be integers, dim ≥ 1`);
  if (weight.length < dim) throw new RangeError(`weight holds ${weight.length} values, need ${dim}`);
  if (x.length < nRows * dim || out.length < nRows * dim) throw new RangeError(`x and out need ${nRows} × ${dim} values`);
  const same = out.buffer === x.buffer && out.byteOffset === x.byteOffset;
  if (!same && overlaps(out, nRows * dim, x, nRows * dim)) throw new RangeError('out must be x itself or not overlap it');
  if (overlaps(out, nRows * dim, weight, dim)) throw new RangeError('out must not overlap weight');
}

/** Throws on the arguments the native add / addBias reject too. */
export function checkAdd(a: Float32Array, b: Float32Array, rows: number, n: number, bias: boolean): void {
  if (!isCount(rows) || !isCount(n)) throw new RangeError(`rows (${rows}) and n (${n}) must be non-negative integers`);
  if (a.length < rows * n || b.length < (bias ? n : rows * n)) throw new RangeError('a or b is too short');
  const same = a.buffer === b.buffer && a.byteOffset === b.byteOffset;
  if ((bias || !same) && overlaps(a, rows * n, b, bias ? n : rows * n)) throw new RangeError('a and b must not overlap');
}

/** Throws on the arguments the native rope rejects too. */
export function checkRope(x: Float32Array, r: RopeBatch): void {
  const { nTok, nHeads, headDim, ropeDims } = r;
  if (!isCount(nTok) || !Number.isInteger(nHeads) || nHeads < 1 || !Number.isInteger(headDim) || headDim < 1) {
    throw new RangeError(`nTok (${nTok}), nHeads (${nHeads}) and headDim (${headDim}) must be integers ≥ 1`);
  }
  if (!isCount(ropeDims) || ropeDims % 2 !== 0 || ropeDims > headDim) throw new RangeError(`ropeDims ${ropeDims} must be even and ≤ headDim`);
  if (x.length < nTok * nHeads * headDim) throw new RangeError(`x needs ${nTok} × ${nHeads * headDim} values`);
  if (r.positions.length < nTok) throw new RangeError(`positions needs ${nTok} entries`);
  const half = ropeDims / 2;
  if (half === 0) return;
  for (let t = 0; t < nTok; t++) {
    const p = r.positions[t]!;
    if (p < 0 || (p + 1) * half > r.cos.length || (p + 1) * half > r.sin.length) throw new RangeError(`position ${p} is outside the cos/sin tables`);
  }
  if (overlaps(x, nTok * nHeads * headDim, r.cos, r.cos.length) || overlaps(x, nTok * nHeads * headDim, r.sin, r.sin.length)) {
    throw new RangeError('x must not overlap the cos/sin tables');
  }
}

/** gate[i] = f32(f32(g / f32(1 + bfExp(−g))) · up[i]) with g = gate[i] (docs/kernels.md "SwiGLU"). */
export function swigluTs(gate: Float32Array, up: Float32Array, n: number): void {
  if (!Number.isInteger(n) || n < 0 || n > gate.length || n > up.length) throw new RangeError(`gate and up need ${n} elements`);
  for (let i = 0; i < n; i++) {
    const g = gate[i]!;
    gate[i] = fr(fr(g / fr(1 + bfExp(-g))) * up[i]!);
  }
}

export function createTsKernels(): Kernels {
  const s = new Scratch();
  let scores = new Float64Array(64);
  let acc = new Float64Array(64);
  return {
    name: 'ts',
    threads: 1,
    matmul(out: Float32Array, wIn: WeightTensor, x: Float32Array, nTok: number): void {
      checkShapes(out, wIn, x, nTok);
      const w = inGgmlLayout(wIn);
      switch (w.type) {
        case GGMLType.F32: return matmulF32(out, w, x, nTok);
        case GGMLType.F16:
        case GGMLType.BF16: return matmulHalf(s, out, w, x, nTok);
        case GGMLType.Q8_0: return matmulQ8_0(s, out, w, x, nTok);
        case GGMLType.Q4_0: return matmulQ4_0(s, out, w, x, nTok);
        case GGMLType.Q4_K:
        case GGMLType.Q5_K: return matmulKAsym(s, out, w, x, nTok);
        case GGMLType.Q6_K: return matmulQ6_K(s, out, w, x, nTok);
        default: throw new Error(`${w.name}: no matmul for ${typeName(w.type)}`);
      }
    },
    attention(out: Float32Array, a: AttentionBatch): void {
      checkAttention(out, a);
      const qDim = a.nHeads * a.headDim;
      if (acc.length < a.headDim) acc = new Float64Array(a.headDim);
      for (let t = 0; t < a.nTok; t++) {
        const nPos = a.nPos[t]!;
        if (scores.length < nPos) scores = new Float64Array(Math.max(nPos, scores.length * 2));
        const c = a.cacheOf[t]!;
        attendOne(out, t * qDim, a.q, t * qDim, a.keys[c]!, a.values[c]!, nPos, a.nHeads, a.nKvHeads, a.headDim, scores, acc);
      }
    },
    swiglu(gate: Float32Array, up: Float32Array, n: number): void {
      swigluTs(gate, up, n);
    },
    rmsNorm(out: Float32Array, x: Float32Array, weight: Float32Array, nRows: number, dim: number, eps: number): void {
      checkRmsNorm(out, x, weight, nRows, dim);
      for (let r = 0; r < nRows; r++) rmsNorm(out, r * dim, x, r * dim, weight, dim, eps);
    },
    add(a: Float32Array, b: Float32Array, n: number): void {
      checkAdd(a, b, 1, n, false);
      addInPlace(a, b, n);
    },
    addBias(a: Float32Array, bias: Float32Array, rows: number, n: number): void {
      checkAdd(a, bias, rows, n, true);
      addBias(a, bias, rows, n);
    },
    rope(x: Float32Array, r: RopeBatch): void {
      checkRope(x, r);
      applyRopeRows(x, r.nTok, r.nHeads, r.headDim, r.ropeDims, r.positions, r.cos, r.sin, r.neox);
    },
    getRow(out: Float32Array, w: WeightTensor, row: number): void {
      if (!Number.isInteger(row) || row < 0 || row >= w.rows) throw new RangeError(`${w.name}: row ${row} outside 0..${w.rows - 1}`);
      if (out.length < w.cols) throw new RangeError(`out holds ${out.length} values, need ${w.cols}`);
      const rb = rowBytes(w.type, w.cols);
      if (isX16(w.data)) {
        const one = new Uint8Array(rb);
        x16Row(w, row, one);
        dequantizeRow(w.type, one, 0, out, 0, w.cols);
        return;
      }
      dequantizeRow(w.type, w.data, row * rb, out, 0, w.cols);
    },
    dispose(): void {
      // nothing to release: scratch is garbage-collected with the instance
    },
  };
}
