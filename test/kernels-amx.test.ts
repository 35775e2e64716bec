/**
 * The AMX paths of native/amx.c (Q8_0 and Q4_0: 16-token tiles from 8 tokens on; K-quants from 8 tokens on; batches
 * of 2..7 tokens take bf_dotn and are checked here on that path too) must give the
 * TypeScript kernels' bits exactly: token counts that are and are not multiples of 16, row counts with a rest of 1..15 rows
 * (which the usual AVX-512 path computes), 1..24 blocks per row (lanes with no block, one block, several), every
 * byte pattern of raw weights, zero / subnormal / large activations, and 1 to 3 threads.
 * Skipped where the CPU has no AMX-INT8 (the code paths tested here are then not compiled in or not taken).
 */
import { readFileSync } from 'node:fs';
import { describe, it } from 'vitest';
import { GGMLType, rowBytes, typeName } from '../src/engine/gguf/types.js';
import { loadNativeAddon, nativeAddonLoadError } from '../src/engine/kernels/native.js';
import { createTsKernels } from '../src/engine/kernels/ts.js';
import { writeF16 } from '../src/engine/quant/half.js';
import { randomFloats, randomWeights } from '../src/engine/quant/random.js';
import { SplitMix32 } from '../src/engine/prng.js';
import type { WeightTensor } from '../src/engine/tensor.js';
import { expectSameBits, runMatmul } from './helpers/bits.js';
import { useNativeVariants } from './helpers/native-variants.js';

function amxSkipReason(): string | null {
  const addon = loadNativeAddon();
  if (!addon) return `the native addon is not loaded (${nativeAddonLoadError() ?? 'disabled'})`;
  if (addon.simdLevel() !== 'avx512') return `the addon is built for ${addon.simdLevel()}, and AMX needs the AVX-512 build`;
  let cpuinfo = '';
  try {
    cpuinfo = readFileSync('/proc/cpuinfo', 'utf8');
  } catch {
    return 'no /proc/cpuinfo (not Linux)';
  }
  if (!/\bamx_int8\b/.test(cpuinfo)) return 'this CPU has no AMX-INT8';
  if (process.env['BUTTERFLY_AMX'] === '0') return 'BUTTERFLY_AMX=0 turns AMX off';
  return null;
}

const skipReason = amxSkipReason();
const title = skipReason ? `AMX kernels — SKIPPED: ${skipReason}` : 'AMX kernels (Q8_0 nTok ≥ 2; Q4_0 / Q4_K / Q5_K / Q6_K nTok ≥ 8)';

const BLOCK_BYTES: Partial<Record<GGMLType, number>> = {
  [GGMLType.Q8_0]: 34, [GGMLType.Q4_0]: 18, [GGMLType.Q4_K]: 144, [GGMLType.Q5_K]: 176, [GGMLType.Q6_K]: 210,
};
/** K-quant blocks carry a second F16 (dmin) at byte 2. */
const HAS_DMIN = new Set<GGMLType>([GGMLType.Q4_K, GGMLType.Q5_K]);

/** Uniformly random bytes (every quant, including −128) with sane F16 block scales. */
function rawQuantWeights(type: GGMLType, rows: number, cols: number, seed: number): Uint8Array {
  const rng = new SplitMix32(seed);
  const data = new Uint8Array(rows * rowBytes(type, cols));
  for (let i = 0; i < data.length; i++) data[i] = rng.nextU32() & 0xff;
  for (let b = 0; b < data.length; b += BLOCK_BYTES[type]!) {
    writeF16(data, b + (type === GGMLType.Q6_K ? 208 : 0), (rng.nextFloat() - 0.5) * 0.05);
    if (HAS_DMIN.has(type)) writeF16(data, b + 2, (rng.nextFloat() - 0.5) * 0.05);
  }
  return data;
}

/** Token 3 is all zeros, token 4 mixes F16-subnormal and large values, token 7 saturates every block at ±127. */
function activations(cols: number, nTok: number, seed: number): Float32Array {
  const x = randomFloats(cols * nTok, seed, 2);
  x.fill(0, 3 * cols, 4 * cols);
  const rng = new SplitMix32(seed ^ 0x5bd1e995);
  for (let i = 4 * cols; i < 5 * cols; i++) {
    const pick = rng.nextU32() % 4;
    const sign = rng.nextU32() & 1 ? -1 : 1;
    x[i] = sign * (pick === 0 ? rng.nextFloat() * 1e-6 : pick === 1 ? rng.nextFloat() * 1e-8 : pick === 2 ? rng.nextFloat() * 3e4 : rng.nextFloat());
  }
  for (let i = 7 * cols; i < 8 * cols; i++) x[i] = rng.nextU32() & 1 ? 5 : -5;
  return x;
}


/** rows: one 16-row group, +1, 2 groups + 1, many groups + 13 (and a 3-way split with rests); cols: 1, 3, 9, 17, 24 blocks */
const SHAPES: ReadonlyArray<readonly [rows: number, cols: number]> = [
  [16, 32], [17, 96], [33, 288], [48, 544], [301, 768],
];
/** K-quants (256-element super-blocks): 1, 3, 9, 17 super-blocks */
const K_SHAPES: ReadonlyArray<readonly [rows: number, cols: number]> = [
  [16, 256], [17, 768], [33, 2304], [48, 4352], [301, 512],
];

describe.skipIf(skipReason !== null)(title, () => {
  const ts = createTsKernels();
  const native = useNativeVariants();

  for (const type of [GGMLType.Q8_0, GGMLType.Q4_0, GGMLType.Q4_K, GGMLType.Q5_K, GGMLType.Q6_K]) {
    const isK = type === GGMLType.Q4_K || type === GGMLType.Q5_K || type === GGMLType.Q6_K;
    for (const [rows, cols] of isK ? K_SHAPES : SHAPES) {
      for (const source of ['raw', 'quantized'] as const) {
        const label = `${source} ${typeName(type)} ${rows}×${cols}`;
        it.each([2, 3, 4, 5, 6, 7, 8, 9, 16, 33, 128])(`${label}, nTok=%i: native equals the TypeScript bits`, (nTok) => {
          const data = source === 'raw'
            ? rawQuantWeights(type, rows, cols, rows * 7919 + cols)
            : randomWeights(type, rows, cols, rows * 104729 + cols, 0.5);
          const w: WeightTensor = { name: label, type, rows, cols, data };
          const x = activations(cols, nTok, cols * 31 + nTok);
          const expected = runMatmul(ts, w, x, nTok);
          for (const [variant, k] of native) expectSameBits(runMatmul(k, w, x, nTok), expected, `${label} nTok=${nTok} ${variant}`);
        });
      }
    }
  }

  it('a batch gives each token the bits of a call with that token alone', () => {
    const [rows, cols, nTok] = [64, 768, 37];
    for (const type of [GGMLType.Q8_0, GGMLType.Q4_0, GGMLType.Q4_K, GGMLType.Q5_K, GGMLType.Q6_K]) {
      const w: WeightTensor = { name: 'w', type, rows, cols, data: rawQuantWeights(type, rows, cols, 4242) };
      const x = activations(cols, nTok, 99);
      const k = native.get('simd/2')!;
      const batch = runMatmul(k, w, x, nTok);
      for (let t = 0; t < nTok; t++) {
        const single = runMatmul(k, w, x.subarray(t * cols, (t + 1) * cols), 1);
        expectSameBits(batch.subarray(t * rows, (t + 1) * rows), single, `${typeName(type)} token ${t}`);
      }
    }
  });
});
