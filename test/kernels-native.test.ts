/**
 * The native kernels must give the TypeScript kernels' bits exactly (docs/kernels.md), for every weight type,
 * batch size and thread count, on both the SIMD and the portable C path.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { GGMLType, rowBytes, typeName } from '../src/engine/gguf/types.js';
import { createKernels } from '../src/engine/kernels/index.js';
import {
  allocAligned, createNativeKernels, loadNativeAddon, mapFileRange, nativeAddonLoadError,
} from '../src/engine/kernels/native.js';
import { createTsKernels } from '../src/engine/kernels/ts.js';
import { writeF16 } from '../src/engine/quant/half.js';
import { randomFloats, randomWeights } from '../src/engine/quant/random.js';
import { SplitMix32 } from '../src/engine/prng.js';
import type { WeightTensor } from '../src/engine/tensor.js';
import { expectSameBits, runMatmul } from './helpers/bits.js';
import { useNativeVariants } from './helpers/native-variants.js';

const addon = loadNativeAddon();
const title = addon
  ? `native kernels (${addon.simdLevel()})`
  : `native kernels — SKIPPED: ${nativeAddonLoadError() ?? 'addon disabled'}; build it with \`npx node-gyp rebuild\``;

const ALL_TYPES = [
  GGMLType.F32, GGMLType.F16, GGMLType.BF16, GGMLType.Q8_0, GGMLType.Q4_0, GGMLType.Q4_K, GGMLType.Q5_K, GGMLType.Q6_K,
] as const;
const QUANTIZED = new Set<GGMLType>([GGMLType.Q8_0, GGMLType.Q4_0, GGMLType.Q4_K, GGMLType.Q5_K, GGMLType.Q6_K]);

/** Byte offsets of the F16 scale fields inside one block, and the block size in bytes. */
const SCALE_FIELDS: Partial<Record<GGMLType, { blockBytes: number; offsets: number[] }>> = {
  [GGMLType.Q8_0]: { blockBytes: 34, offsets: [0] },
  [GGMLType.Q4_0]: { blockBytes: 18, offsets: [0] },
  [GGMLType.Q4_K]: { blockBytes: 144, offsets: [0, 2] },
  [GGMLType.Q5_K]: { blockBytes: 176, offsets: [0, 2] },
  [GGMLType.Q6_K]: { blockBytes: 210, offsets: [208] },
};

function blockSize(type: GGMLType): number {
  return type === GGMLType.Q8_0 || type === GGMLType.Q4_0 ? 32 : QUANTIZED.has(type) ? 256 : 1;
}

/** Uniformly random block bytes (every quant, scale and high-bit pattern) with sane F16 block scales. */
function rawQuantWeights(type: GGMLType, rows: number, cols: number, seed: number): Uint8Array {
  const rng = new SplitMix32(seed);
  const data = new Uint8Array(rows * rowBytes(type, cols));
  for (let i = 0; i < data.length; i++) data[i] = rng.nextU32() & 0xff;
  const f = SCALE_FIELDS[type]!;
  for (let b = 0; b < data.length; b += f.blockBytes) {
    for (const o of f.offsets) writeF16(data, b + o, (rng.nextFloat() - 0.5) * 0.05);
  }
  return data;
}

function tensor(type: GGMLType, rows: number, cols: number, data: Uint8Array): WeightTensor {
  return { name: `${typeName(type)}[${rows}×${cols}]`, type, rows, cols, data };
}

/** nTok activation rows; with 5 tokens, token 3 is all zeros and token 4 mixes F16-subnormal and large values. */
function activations(cols: number, nTok: number, seed: number): Float32Array {
  const x = randomFloats(cols * nTok, seed, 2);
  if (nTok >= 5) {
    x.fill(0, 3 * cols, 4 * cols);
    const rng = new SplitMix32(seed ^ 0x5bd1e995);
    for (let i = 4 * cols; i < 5 * cols; i++) {
      const pick = rng.nextU32() % 4;
      const sign = rng.nextU32() & 1 ? -1 : 1;
      x[i] = sign * (pick === 0 ? rng.nextFloat() * 1e-6 : pick === 1 ? rng.nextFloat() * 1e-8 : pick === 2 ? rng.nextFloat() * 3e4 : rng.nextFloat());
    }
  }
  return x;
}


interface Case {
  readonly type: GGMLType;
  readonly rows: number;
  readonly cols: number;
  readonly source: 'quantized' | 'raw';
}

function cases(): Case[] {
  const list: Case[] = [];
  for (const type of ALL_TYPES) {
    const bs = blockSize(type);
    // 3 blocks: fewer than 8 block lanes; 9 blocks: one full 8-lane pass plus a tail; 768 = the 125M model's dim
    const colsList = bs === 1 ? [16, 768] : [3 * bs, 9 * bs];
    if (type === GGMLType.F32) colsList.push(7, 33, 100);
    if (type === GGMLType.F16 || type === GGMLType.BF16) colsList.push(33, 100);
    if (bs === 32) colsList.push(768);
    for (const cols of colsList) {
      for (const rows of [1, 17, 301]) {
        list.push({ type, rows, cols, source: 'quantized' });
        if (QUANTIZED.has(type) && rows !== 1) list.push({ type, rows, cols, source: 'raw' });
      }
    }
  }
  return list;
}

describe.skipIf(!addon)(title, () => {
  const ts = createTsKernels();
  const native = useNativeVariants({ scalarThreads: 2 });

  describe.each(cases())('$source %s', (c) => {
    const label = `${c.source} ${typeName(c.type)} ${c.rows}×${c.cols}`;
    const data = c.source === 'raw'
      ? rawQuantWeights(c.type, c.rows, c.cols, c.rows * 7919 + c.cols)
      : randomWeights(c.type, c.rows, c.cols, c.rows * 104729 + c.cols, 0.5);
    const w = tensor(c.type, c.rows, c.cols, data);

    it.each([1, 2, 5])(`${label}, nTok=%i: every native variant equals the TypeScript bits`, (nTok) => {
      const x = activations(c.cols, nTok, c.cols * 31 + nTok);
      const expected = runMatmul(ts, w, x, nTok);
      for (const [variant, k] of native) expectSameBits(runMatmul(k, w, x, nTok), expected, `${label} nTok=${nTok} ${variant}`);
    });

    it(`${label}: a batch of 9 (two 4-token groups and a single) equals 9 single-token calls`, () => {
      const nTok = 9;
      const x = activations(c.cols, nTok, c.cols * 17 + 3);
      const k = native.get('simd/2')!;
      const batch = runMatmul(k, w, x, nTok);
      for (let t = 0; t < nTok; t++) {
        const single = runMatmul(k, w, x.subarray(t * c.cols, (t + 1) * c.cols), 1);
        expectSameBits(batch.subarray(t * c.rows, (t + 1) * c.rows), single, `${label} token ${t}`);
      }
    });
  });

  it('K-quant super-block sums beyond 2^24 are rounded to float before scaling, like the TypeScript kernels', () => {
    // All scales at their maximum and every quant at its maximum against x_q = −127 everywhere.
    const cols = 2048;
    const q4k = new Uint8Array(rowBytes(GGMLType.Q4_K, cols)).fill(0xff);
    const q6k = new Uint8Array(rowBytes(GGMLType.Q6_K, cols)).fill(0xff);
    for (let b = 0; b < cols / 256; b++) {
      writeF16(q4k, b * 144, 0.013);
      writeF16(q4k, b * 144 + 2, 0.007);
      for (let j = 0; j < 16; j++) q6k[b * 210 + 192 + j] = 127;
      writeF16(q6k, b * 210 + 208, 0.011);
    }
    // x in [−1, −0.9): x_q near −127 with varied parity, so the sums are odd and above 2^24 (inexact in float)
    const nTok = 8;
    const x = randomFloats(cols * nTok, 77, 0.05).map((v) => v - 0.95);
    for (const w of [tensor(GGMLType.Q4_K, 1, cols, q4k), tensor(GGMLType.Q6_K, 1, cols, q6k)]) {
      const expected = runMatmul(ts, w, x, nTok);
      for (const [variant, k] of native) expectSameBits(runMatmul(k, w, x, nTok), expected, `${w.name} ${variant}`);
    }
  });

  it('Q8_0 weights of −128 are exact on the SIMD path', () => {
    const cols = 320;
    const data = rawQuantWeights(GGMLType.Q8_0, 3, cols, 99);
    for (let b = 0; b < data.length; b += 34) data.fill(0x80, b + 2, b + 34);
    const w = tensor(GGMLType.Q8_0, 3, cols, data);
    const x = activations(cols, 2, 5);
    const expected = runMatmul(ts, w, x, 2);
    for (const [variant, k] of native) expectSameBits(runMatmul(k, w, x, 2), expected, `${variant}`);
  });

  // F32/F16/BF16 batches run register-blocked on AVX-512 (dot_float.c tile_*: 3 rows × up to 8 tokens, tokens in
  // near-equal blocks, row tiles cut to whole row blocks, single rows at the end of a range). These shapes reach
  // every block width, partial row blocks at tile and thread-chunk edges (301 rows over 3 threads), rows longer
  // than a tile (25000 columns), rows shorter than one 16-lane step (7) and column tails (33, 100, 25000).
  describe.each([GGMLType.F32, GGMLType.F16, GGMLType.BF16])('blocked float batches: %s', (type) => {
    const shapes: [number, number][] = [[2, 33], [3, 16], [4, 7], [100, 768], [301, 100], [7, 25000]];
    const toks = [3, 4, 6, 7, 8, 10, 15, 16, 17, 20, 23, 25, 33];
    it.each(shapes)(`${typeName(type)} %i×%i: batches of 3..33 (and 128) tokens give the TypeScript bits`, (rows, cols) => {
      const w = tensor(type, rows, cols, randomWeights(type, rows, cols, rows * 131 + cols, 0.5));
      for (const nTok of cols * rows <= 100 * 768 ? [...toks, 128] : toks) {
        const x = activations(cols, nTok, cols * 7 + nTok);
        const expected = runMatmul(ts, w, x, nTok);
        for (const [variant, k] of native) {
          expectSameBits(runMatmul(k, w, x, nTok), expected, `${typeName(type)} ${rows}×${cols} nTok=${nTok} ${variant}`);
        }
      }
    });

    it(`${typeName(type)}: a batch of 23 equals its tokens computed in batches of 1, 4, 8 and 10`, () => {
      const [rows, cols] = [301, 100];
      const w = tensor(type, rows, cols, randomWeights(type, rows, cols, 5, 0.5));
      const x = activations(cols, 23, 11);
      const k = native.get('simd/2')!;
      const batch = runMatmul(k, w, x, 23);
      let t0 = 0;
      for (const n of [1, 4, 8, 10]) {
        const part = runMatmul(k, w, x.subarray(t0 * cols, (t0 + n) * cols), n);
        expectSameBits(batch.subarray(t0 * rows, (t0 + n) * rows), part, `${typeName(type)} tokens ${t0}..${t0 + n - 1}`);
        t0 += n;
      }
    });
  });

  it('rejects buffers that are too small, overlapping out/x, bad shapes and use after dispose', () => {
    const k = createNativeKernels(2)!;
    const w = tensor(GGMLType.Q8_0, 4, 64, randomWeights(GGMLType.Q8_0, 4, 64, 1));
    expect(() => k.matmul(new Float32Array(3), w, new Float32Array(64), 1)).toThrow(RangeError);
    expect(() => k.matmul(new Float32Array(4), w, new Float32Array(63), 1)).toThrow(RangeError);
    expect(() => k.matmul(new Float32Array(4), { ...w, rows: 5 }, new Float32Array(64), 1)).toThrow(RangeError);
    expect(() => k.matmul(new Float32Array(4), { ...w, cols: 48 }, new Float32Array(64), 1)).toThrow(RangeError);
    const f32 = tensor(GGMLType.F32, 4, 4, randomWeights(GGMLType.F32, 4, 4, 1));
    const shared = new Float32Array(8);
    expect(() => k.matmul(shared.subarray(2, 6), f32, shared.subarray(0, 4), 1)).toThrow(/overlap/);
    k.dispose();
    expect(() => k.matmul(new Float32Array(4), w, new Float32Array(64), 1)).toThrow(/disposed/);
    k.dispose(); // twice is harmless
  });

  it('getRow delegates to the TypeScript dequantizer', () => {
    const w = tensor(GGMLType.Q4_K, 3, 256, randomWeights(GGMLType.Q4_K, 3, 256, 4));
    const a = new Float32Array(256);
    const b = new Float32Array(256);
    native.get('simd/1')!.getRow(a, w, 2);
    ts.getRow(b, w, 2);
    expectSameBits(a, b, 'getRow');
  });

  describe('mapFileRange / allocAligned', () => {
    const dir = mkdtempSync(join(tmpdir(), 'butterfly-mmap-'));
    const path = join(dir, 'blob.bin');
    const bytes = new Uint8Array(3 * 4096 + 123);
    const rng = new SplitMix32(42);
    for (let i = 0; i < bytes.length; i++) bytes[i] = rng.nextU32() & 0xff;
    writeFileSync(path, bytes);
    afterAll(() => rmSync(dir, { recursive: true, force: true }));

    it.each([
      [0, 10], [1, 4096], [4095, 2], [4097, 5000], [12345, 66], [bytes.length - 1, 1], [7, 0], [0, bytes.length],
    ])('maps offset %i, length %i to exactly those bytes', (offset, length) => {
      const view = mapFileRange(path, offset, length)!;
      expect(view.length).toBe(length);
      expect(Buffer.from(view).equals(Buffer.from(bytes.subarray(offset, offset + length)))).toBe(true);
    });

    it('throws for ranges past the end and missing files', () => {
      expect(() => mapFileRange(path, bytes.length - 4, 5)).toThrow(RangeError);
      expect(() => mapFileRange(join(dir, 'missing.bin'), 0, 1)).toThrow(/cannot open/);
    });

    it('allocAligned returns zeroed, writable memory of the asked size', () => {
      const a = allocAligned(1000);
      expect(a.length).toBe(1000);
      expect(a.every((v) => v === 0)).toBe(true);
      a[999] = 7;
      expect(a[999]).toBe(7);
      expect(allocAligned(0).length).toBe(0);
    });
  });

  it('createKernels picks native by default and TypeScript on request or with BUTTERFLY_KERNELS=ts', () => {
    const k = createKernels({ threads: 2 });
    expect(k.name).toBe('native');
    expect(k.threads).toBe(2);
    k.dispose();
    expect(createKernels({ prefer: 'ts' }).name).toBe('ts');
    const saved = process.env['BUTTERFLY_KERNELS'];
    process.env['BUTTERFLY_KERNELS'] = 'ts';
    try {
      expect(loadNativeAddon()).toBeNull();
      expect(createKernels({ threads: 2 }).name).toBe('ts');
      expect(mapFileRange('/nonexistent', 0, 1)).toBeNull();
      expect(allocAligned(8)).toBeInstanceOf(Uint8Array);
    } finally {
      if (saved === undefined) delete process.env['BUTTERFLY_KERNELS'];
      else process.env['BUTTERFLY_KERNELS'] = saved;
    }
  });
});
