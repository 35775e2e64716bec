/**
 * Which weight bytes the native kernels have rearranged in place (native/x16.c: Q4_0 rows interleaved in groups of
 * 16, same size, same bits out). The layout belongs to the bytes, not to a WeightTensor object, so every holder of
 * the tensor — and every kernel implementation — reads it right: the TypeScript kernels put such rows back into
 * the GGUF layout on the fly (x16Row).
 */
import { GGMLType } from '../gguf/types.js';
import { Q4_0_BLOCK_BYTES } from '../quant/q4_0.js';
import { QK } from '../quant/rounding.js';
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

/** Row `row` of x16-layout Q4_0 weights w, in its GGUF layout, into dst (rowBytes bytes). */
export function x16Row(w: WeightTensor, row: number, dst: Uint8Array): void {
  if (w.type !== GGMLType.Q4_0) throw new Error(`tensor '${w.name}': no x16 layout for type ${w.type}`);
  const nb = w.cols / QK;
  const group = Math.floor(row / 16) * 16 * nb * Q4_0_BLOCK_BYTES;
  const r = row % 16;
  for (let b = 0; b < nb; b++) {
    const o = group + b * 16 * Q4_0_BLOCK_BYTES;
    const blk = b * Q4_0_BLOCK_BYTES;
    dst[blk] = w.data[o + 2 * r]!;
    dst[blk + 1] = w.data[o + 2 * r + 1]!;
    for (let j = 0; j < 4; j++) dst.set(w.data.subarray(o + 32 + 64 * j + 4 * r, o + 32 + 64 * j + 4 * r + 4), blk + 2 + 4 * j);
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
