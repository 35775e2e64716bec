/**
 * Batched decode of 2..7 tokens (the small-batch kernels `bf_dotn` of native/dot_avx512.c for Q8_0, Q4_0, Q4_K, Q5_K
 * and Q6_K) must give the TypeScript kernels' bits for every token count and thread count: super-block counts that
 * start with a single super-block and then pairs (1, 2, 3, 8, 9 — the pair that wraps from lane 7 to lane 0 — and
 * 17), Q4_0 rows of 16-block steps, an 8-block step and a scalar tail, row counts that are not multiples of
 * anything, row pairs (two rows per call) with a leftover row and thread splits at odd rows, all-maximal quants
 * against saturated activations (the int16 partial sums at their bound, super-block sums beyond 2^24), and zero,
 * tiny and large activations. Where the addon is built without AVX-512 these calls
 * take the other native paths and must still match. Every case also runs on kernels made with `amx: false`
 * (`noamx/…`), which never take an AMX path, so bf_dotn stays tested whatever native/matmul.c dispatches to AMX.
 */
import { describe, expect, it } from 'vitest';
import { GGMLType, rowBytes, typeName } from '../src/engine/gguf/types.js';
import { loadNativeAddon, nativeAddonLoadError } from '../src/engine/kernels/native.js';
import { createTsKernels } from '../src/engine/kernels/ts.js';
import { writeF16 } from '../src/engine/quant/half.js';
import { randomFloats, randomWeights } from '../src/engine/quant/random.js';
import { SplitMix32 } from '../src/engine/prng.js';
import type { WeightTensor } from '../src/engine/tensor.js';
import { expectSameBits, runMatmul } from './helpers/bits.js';
import { useNativeVariants } from './helpers/native-variants.js';

const addon = loadNativeAddon();
const title = addon
  ? `small-batch kernels, 2..7 tokens (${addon.simdLevel()})`
  : `small-batch kernels — SKIPPED: ${nativeAddonLoadError() ?? 'addon disabled'}; build it with \`npx node-gyp rebuild\``;

const TOKENS = [2, 3, 4, 5, 6, 7] as const;
const BLOCK_BYTES: Partial<Record<GGMLType, number>> = {
  [GGMLType.Q8_0]: 34, [GGMLType.Q4_0]: 18, [GGMLType.Q4_K]: 144, [GGMLType.Q5_K]: 176, [GGMLType.Q6_K]: 210,
};
/** Offsets of the F16 scales in a block. */
const F16_FIELDS: Partial<Record<GGMLType, number[]>> = {
  [GGMLType.Q8_0]: [0], [GGMLType.Q4_0]: [0], [GGMLType.Q4_K]: [0, 2], [GGMLType.Q5_K]: [0, 2], [GGMLType.Q6_K]: [208],
};
/** Q4_0 and Q8_0: 1, 7 (tail only), 8 (one 8-block step), 15, 16 (one 16-block step), 24, 25, 40 blocks of 32. */
const Q4_0_COLS = [1, 7, 8, 15, 16, 24, 25, 40].map((n) => 32 * n);
/** K-quants: 1, 2, 3, 8, 9, 17 super-blocks of 256. */
const K_COLS = [1, 2, 3, 8, 9, 17].map((n) => 256 * n);
const ROWS = [1, 13, 37];

/** Uniformly random block bytes (every quant, scale and high-bit pattern) with sane F16 block scales. */
function rawQuantWeights(type: GGMLType, rows: number, cols: number, seed: number): Uint8Array {
  const rng = new SplitMix32(seed);
  const data = new Uint8Array(rows * rowBytes(type, cols));
  for (let i = 0; i < data.length; i++) data[i] = rng.nextU32() & 0xff;
  for (let b = 0; b < data.length; b += BLOCK_BYTES[type]!) {
    for (const o of F16_FIELDS[type]!) writeF16(data, b + o, (rng.nextFloat() - 0.5) * 0.05);
  }
  return data;
}

/**
 * Token 0 random; 1 saturated (±5: every block quantizes to ±127); 2 all zeros; 3 F16-subnormal, tiny and large
 * values mixed; 4.. random at other scales.
 */
function activations(cols: number, nTok: number, seed: number): Float32Array {
  const x = new Float32Array(cols * nTok);
  const rng = new SplitMix32(seed);
  for (let t = 0; t < nTok; t++) {
    const row = x.subarray(t * cols, (t + 1) * cols);
    if (t === 1) {
      for (let i = 0; i < cols; i++) row[i] = rng.nextU32() & 1 ? 5 : -5;
    } else if (t === 2) {
      row.fill(0);
    } else if (t === 3) {
      for (let i = 0; i < cols; i++) {
        const pick = rng.nextU32() % 4;
        const sign = rng.nextU32() & 1 ? -1 : 1;
        row[i] = sign * (pick === 0 ? rng.nextFloat() * 1e-6 : pick === 1 ? rng.nextFloat() * 1e-8 : pick === 2 ? rng.nextFloat() * 3e4 : rng.nextFloat());
      }
    } else {
      row.set(randomFloats(cols, seed + 977 * t, t === 0 ? 2 : 10 ** (t - 5)));
    }
  }
  return x;
}

/** Every quant bit set (Q4_K / Q5_K: 15 / 31 with scales and mins 63; Q6_K: 63 with scales 127; Q4_0: 15); Q8_0:
 * −128 (0x80, which the bias of 128 maps to 0), alternating per block with 127. */
function maxQuantWeights(type: GGMLType, rows: number, cols: number): Uint8Array {
  const data = new Uint8Array(rows * rowBytes(type, cols)).fill(0xff);
  const bb = BLOCK_BYTES[type]!;
  for (let b = 0; b < data.length; b += bb) {
    if (type === GGMLType.Q8_0) {
      data.fill((b / bb) % 2 ? 0x7f : 0x80, b + 2, b + bb);
      writeF16(data, b, 0.013);
    } else if (type === GGMLType.Q6_K) {
      for (let j = 0; j < 16; j++) data[b + 192 + j] = 127;
      writeF16(data, b + 208, 0.011);
    } else {
      writeF16(data, b, 0.013);
      if (type !== GGMLType.Q4_0) writeF16(data, b + 2, 0.007);
    }
  }
  return data;
}

describe.skipIf(!addon)(title, () => {
  const ts = createTsKernels();
  const native = useNativeVariants({ scalarThreads: 1, noAmx: true });

  function check(w: WeightTensor, x: (nTok: number) => Float32Array, label: string): void {
    for (const nTok of TOKENS) {
      const xs = x(nTok);
      const expected = runMatmul(ts, w, xs, nTok);
      for (const [variant, k] of native) expectSameBits(runMatmul(k, w, xs, nTok), expected, `${label} nTok=${nTok} ${variant}`);
    }
  }

  for (const type of [GGMLType.Q8_0, GGMLType.Q4_0, GGMLType.Q4_K, GGMLType.Q5_K, GGMLType.Q6_K]) {
    for (const cols of type === GGMLType.Q4_0 || type === GGMLType.Q8_0 ? Q4_0_COLS : K_COLS) {
      for (const rows of ROWS) {
        for (const source of ['raw', 'quantized'] as const) {
          const label = `${source} ${typeName(type)} ${rows}×${cols}`;
          it(`${label}, nTok 2..7: native equals the TypeScript bits`, () => {
            const data = source === 'raw'
              ? rawQuantWeights(type, rows, cols, rows * 7919 + cols)
              : randomWeights(type, rows, cols, rows * 104729 + cols, 0.5);
            check({ name: label, type, rows, cols, data }, (nTok) => activations(cols, nTok, cols * 31 + nTok), label);
          });
        }
      }
    }
  }

  /*
   * Row pairs (`bf_dotn.dot2`: Q8_0, Q4_0, Q4_K, Q5_K take two weight rows per call, a last odd row goes alone). Row
   * counts are odd and large enough that 2 and 3 threads really split the rows (native/addon.c runs a matmul below
   * 64 KiB of weight bytes × tokens on one thread), and ≡ 27 (mod 36), so the 2-thread split and the first 3-thread
   * split fall on odd rows: every thread's range then starts or ends inside a pair. Column counts cover the 16-block
   * and 8-block Q4_0 / Q8_0 steps with and without a tail, and K-quant rows that start with a single super-block or
   * not.
   */
  const PAIR_COLS: Partial<Record<GGMLType, number[]>> = {
    [GGMLType.Q8_0]: [24, 25, 40, 64].map((n) => 32 * n),
    [GGMLType.Q4_0]: [24, 25, 40, 64].map((n) => 32 * n),
    [GGMLType.Q4_K]: [1, 3, 8, 9].map((n) => 256 * n),
    [GGMLType.Q5_K]: [3, 8, 9].map((n) => 256 * n),
    [GGMLType.Q6_K]: [3, 8].map((n) => 256 * n),
  };
  function pairRows(type: GGMLType, cols: number): number {
    let rows = 27;
    while (rows * rowBytes(type, cols) * 2 < 64 * 1024) rows += 36;
    return rows;
  }
  for (const [type, colsList] of Object.entries(PAIR_COLS).map(([t, c]) => [Number(t) as GGMLType, c!] as const)) {
    for (const cols of colsList) {
      const rows = pairRows(type, cols);
      it(`row pairs: ${typeName(type)} ${rows}×${cols} (odd rows, threads 1/2/3 split at odd rows), nTok 2..7`, () => {
        expect(Math.floor(rows / 2) % 2).toBe(1);
        expect(Math.floor(rows / 3) % 2).toBe(1);
        const label = `pairs ${typeName(type)} ${rows}×${cols}`;
        const data = rawQuantWeights(type, rows, cols, rows * 31 + cols);
        check({ name: label, type, rows, cols, data }, (nTok) => activations(cols, nTok, cols * 17 + nTok), label);
      });
    }
  }

  it('all-maximal quants against saturated activations (int16 partial sums at their bound, sums beyond 2^24)', () => {
    for (const type of [GGMLType.Q8_0, GGMLType.Q4_0, GGMLType.Q4_K, GGMLType.Q5_K, GGMLType.Q6_K]) {
      for (const cols of type === GGMLType.Q4_0 || type === GGMLType.Q8_0 ? [768, 800] : [2048, 2304]) {
        const w: WeightTensor = { name: `max ${typeName(type)}`, type, rows: 3, cols, data: maxQuantWeights(type, 3, cols) };
        // x_q = ±127 everywhere (all one sign per token, or alternating), and near −127 with varied parity
        check(w, (nTok) => {
          const x = new Float32Array(cols * nTok);
          for (let t = 0; t < nTok; t++) {
            for (let i = 0; i < cols; i++) {
              x[t * cols + i] = t % 3 === 0 ? 1 : t % 3 === 1 ? -1 : i % 2 ? 1 : -1;
            }
            if (t >= 3) x.set(randomFloats(cols, 77 + t, 0.05).map((v) => v - 0.95), t * cols);
          }
          return x;
        }, w.name);
      }
    }
  });
});
