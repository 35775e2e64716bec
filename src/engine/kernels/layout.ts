/**
 * Which weight bytes the native kernels have rearranged in place (native/x16.c, x16_k.c: Q4_0, Q8_0, Q4_K, Q5_K and
 * Q6_K rows interleaved in groups of 16, same size, same bits out). The layout belongs to the bytes, not to a
 * WeightTensor object, so every holder of the tensor — and every kernel implementation — reads it right: the TypeScript kernels put such rows back into
 * the GGUF layout on the fly (x16Row).
 */
import { GGMLType } from '../gguf/types.js';
import { Q4_0_BLOCK_BYTES } from '../quant/q4_0.js';
import { Q4_K_BLOCK_BYTES } from '../quant/q4_k.js';
import { Q5_K_BLOCK_BYTES } from '../quant/q5_k.js';
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

/** Records that these bytes now hold x16-layout weights (after the native x16Repack rearranged them). */
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

/**
 * native/x16.c's x16_format table: per block, [src, dst, words, wordBytes] — `words` words of `wordBytes` bytes from
 * byte src of a row's block go to byte dst of its group's block, word w of row r at dst + 16·wordBytes·w +
 * wordBytes·r. Q8_0's quants are stored + 128 (flip). classOrder: the group's blocks are stored lane class by lane
 * class (x16ClassSlot).
 */
const X16_FORMATS: Partial<Record<GGMLType, { blockBytes: number; blockElems: number; flip: number; fields: number[][]; classOrder?: boolean }>> = {
  [GGMLType.Q4_0]: { blockBytes: Q4_0_BLOCK_BYTES, blockElems: QK, flip: 0, fields: [[0, 0, 1, 2], [2, 32, 4, 4]], classOrder: true },
  [GGMLType.Q8_0]: { blockBytes: Q8_0_BLOCK_BYTES, blockElems: QK, flip: 0x80, fields: [[0, 0, 1, 2], [2, 32, 8, 4]], classOrder: true },
  [GGMLType.Q4_K]: { blockBytes: Q4_K_BLOCK_BYTES, blockElems: QK_K, flip: 0, fields: [[0, 0, 1, 2], [2, 32, 1, 2], [4, 64, 3, 4], [16, 256, 32, 4]] },
  [GGMLType.Q5_K]: {
    blockBytes: Q5_K_BLOCK_BYTES, blockElems: QK_K, flip: 0,
    fields: [[0, 0, 1, 2], [2, 32, 1, 2], [4, 64, 3, 4], [16, 256, 8, 4], [48, 768, 32, 4]],
  },
  [GGMLType.Q6_K]: { blockBytes: Q6_K_BLOCK_BYTES, blockElems: QK_K, flip: 0, fields: [[208, 0, 1, 2], [192, 32, 4, 4], [0, 288, 32, 4], [128, 2336, 16, 4]] },
};

/**
 * native/x16.c's x16_class_slot: where a row's block b (of nb) sits in a Q4_0 / Q8_0 group — blocks 0, 8, 16, …,
 * then 1, 9, 17, …: the order the kernels accumulate them (the 8 lane classes of docs/kernels.md), so they read a
 * group front to back.
 */
export function x16ClassSlot(b: number, nb: number): number {
  let slot = Math.floor(b / 8);
  for (let c = 0; c < b % 8; c++) slot += Math.floor((nb - c + 7) / 8);
  return slot;
}

/** Row `row` of x16-layout weights w (Q4_0, Q8_0, Q4_K, Q5_K, Q6_K), in its GGUF layout, into dst (rowBytes bytes). */
export function x16Row(w: WeightTensor, row: number, dst: Uint8Array): void {
  const fm = X16_FORMATS[w.type];
  if (!fm) throw new Error(`tensor '${w.name}': no x16 layout for type ${w.type}`);
  const nb = w.cols / fm.blockElems;
  const group = Math.floor(row / 16) * 16 * nb * fm.blockBytes;
  const r = row % 16;
  for (let b = 0; b < nb; b++) {
    const o = group + (fm.classOrder ? x16ClassSlot(b, nb) : b) * 16 * fm.blockBytes;
    const blk = b * fm.blockBytes;
    fm.fields.forEach(([src, at, words, wordBytes], i) => {
      const flip = i === fm.fields.length - 1 ? fm.flip : 0;
      for (let wd = 0; wd < words!; wd++) {
        const from = o + at! + 16 * wordBytes! * wd + wordBytes! * r;
        for (let k = 0; k < wordBytes!; k++) dst[blk + src! + wordBytes! * wd + k] = w.data[from + k]! ^ flip;
      }
    });
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
