/**
 * Which weight bytes the native kernels have rearranged in place (native/x16.c, x16_k.c: Q4_0, Q8_0, Q4_K and Q6_K
 * rows interleaved in groups of 16, same size, same bits out). The layout belongs to the bytes, not to a WeightTensor object, so every holder of
 * the tensor — and every kernel implementation — reads it right: the TypeScript kernels put such rows back into
 * the GGUF layout on the fly (x16Row).
 */
import { GGMLType } from '../gguf/types.js';
import { Q4_0_BLOCK_BYTES } from '../quant/q4_0.js';
import { Q4_K_BLOCK_BYTES } from '../quant/q4_k.js';
import { Q6_K_BLOCK_BYTES } from '../quant/q6_k.js';
import { Q8_0_BLOCK_BYTES } from '../quant/q8_0.js';
import { QK, QK_K } from '../quant/rounding.js';
import type { WeightTensor } from '../tensor.js';

const x16 = new WeakMap<ArrayBufferLike, Set<number>>();
const readOnly = new WeakSet<ArrayBufferLike>();

/** True if these bytes hold x16-layout weights. */
export function isX16(data: Uint8Array): boolean {
  return x16.get(data.buffer)?.has(data.byteOffset) ?? false;
}

export function markX16(data: Uint8Array): void {
  let s = x16.get(data.buffer);
  if (!s) x16.set(data.buffer, (s = new Set()));
  s.add(data.byteOffset);
}

/** Bytes that must never be written (read-only file mappings: a write would crash the process). */
export function markReadOnly(data: Uint8Array): void {
  readOnly.add(data.buffer);
}

export function isReadOnly(data: Uint8Array): boolean {
  return readOnly.has(data.buffer);
}

/** Row `row` of x16-layout weights w (Q4_0, Q8_0, Q4_K or Q6_K), in its GGUF layout, into dst (rowBytes bytes). */
export function x16Row(w: WeightTensor, row: number, dst: Uint8Array): void {
  if (w.type === GGMLType.Q4_K) return x16RowQ4K(w, row, dst);
  if (w.type === GGMLType.Q6_K) return x16RowQ6K(w, row, dst);
  if (w.type !== GGMLType.Q4_0 && w.type !== GGMLType.Q8_0) throw new Error(`tensor '${w.name}': no x16 layout for type ${w.type}`);
  // Q4_0 / Q8_0 (native/x16.c): per block of a 16-row group, 16 F16 scales, then 4 (Q4_0) or 8 (Q8_0) vectors of
  // 64 bytes whose lane r holds 4 quant bytes of row r (Q8_0's stored + 128)
  const bb = w.type === GGMLType.Q8_0 ? Q8_0_BLOCK_BYTES : Q4_0_BLOCK_BYTES;
  const flip = w.type === GGMLType.Q8_0 ? 0x80 : 0;
  const nb = w.cols / QK;
  const group = Math.floor(row / 16) * 16 * nb * bb;
  const r = row % 16;
  for (let b = 0; b < nb; b++) {
    const o = group + b * 16 * bb;
    const blk = b * bb;
    dst[blk] = w.data[o + 2 * r]!;
    dst[blk + 1] = w.data[o + 2 * r + 1]!;
    for (let j = 0; j < (bb - 2) / 4; j++) {
      for (let i = 0; i < 4; i++) dst[blk + 2 + 4 * j + i] = w.data[o + 32 + 64 * j + 4 * r + i]! ^ flip;
    }
  }
}

/** Q4_K (native/x16_k.c): per super-block of a 16-row group, d ×16, dmin ×16, 3 × 64 scale bytes, 32 × 64 quant bytes. */
function x16RowQ4K(w: WeightTensor, row: number, dst: Uint8Array): void {
  const nb = w.cols / QK_K;
  const group = Math.floor(row / 16) * 16 * nb * Q4_K_BLOCK_BYTES;
  const r = row % 16;
  const copy = (from: number, to: number, n: number): void => dst.set(w.data.subarray(from, from + n), to);
  for (let b = 0; b < nb; b++) {
    const o = group + b * 16 * Q4_K_BLOCK_BYTES;
    const blk = b * Q4_K_BLOCK_BYTES;
    copy(o + 2 * r, blk, 2);
    copy(o + 32 + 2 * r, blk + 2, 2);
    for (let i = 0; i < 3; i++) copy(o + 64 + 64 * i + 4 * r, blk + 4 + 4 * i, 4);
    for (let ck = 0; ck < 32; ck++) copy(o + 256 + 64 * ck + 4 * r, blk + 16 + 4 * ck, 4);
  }
}

/** Q6_K (native/x16_k.c): per super-block of a 16-row group, d ×16, 4 × 64 scale bytes, 32 × 64 ql, 16 × 64 qh bytes. */
function x16RowQ6K(w: WeightTensor, row: number, dst: Uint8Array): void {
  const nb = w.cols / QK_K;
  const group = Math.floor(row / 16) * 16 * nb * Q6_K_BLOCK_BYTES;
  const r = row % 16;
  const copy = (from: number, to: number, n: number): void => dst.set(w.data.subarray(from, from + n), to);
  for (let b = 0; b < nb; b++) {
    const o = group + b * 16 * Q6_K_BLOCK_BYTES;
    const blk = b * Q6_K_BLOCK_BYTES;
    copy(o + 2 * r, blk + 208, 2);
    for (let k = 0; k < 4; k++) copy(o + 32 + 64 * k + 4 * r, blk + 192 + 4 * k, 4);
    for (let k = 0; k < 32; k++) copy(o + 288 + 64 * k + 4 * r, blk + 4 * k, 4);
    for (let k = 0; k < 16; k++) copy(o + 2336 + 64 * k + 4 * r, blk + 128 + 4 * k, 4);
  }
}

const ggmlCopies = new WeakMap<Uint8Array, WeightTensor>();

/** w itself, or (x16 weights) a copy in the GGUF layout, made once per tensor: for whole-matrix readers. */
export function inGgmlLayout(w: WeightTensor): WeightTensor {
  if (!isX16(w.data)) return w;
  let c = ggmlCopies.get(w.data);
  if (!c) {
    const rb = w.data.byteLength / w.rows;
    const data = new Uint8Array(w.data.byteLength);
    for (let r = 0; r < w.rows; r++) x16Row(w, r, data.subarray(r * rb, (r + 1) * rb));
    c = { ...w, data };
    ggmlCopies.set(w.data, c);
  }
  return c;
}
