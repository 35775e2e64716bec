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
import { randomFloats, randomWeights } from '../src/engine/quant/random.js';
import type { WeightTensor } from '../src/engine/tensor.js';
import { expectSameBits, runMatmul } from './helpers/bits.js';
import { activations, maxQuantWeights, rawQuantWeights } from './helpers/quant-inputs.js';
import { useNativeVariants } from './helpers/native-variants.js';

const addon = loadNativeAddon();
const title = addon
  ? `small-batch kernels, 2..7 tokens (${addon.simdLevel()})`
  : `small-batch kernels — SKIPPED: ${nativeAddonLoadError() ?? 'addon disabled'}; build it with \`npx node-gyp rebuild\``;

const TOKENS = [2, 3, 4, 5, 6, 7] as const;
/** Q4_0 and Q8_0: 1, 7 (tail only), 8 (one 8-block step), 15, 16 (one 16-block step), 24, 25, 40 blocks of 32. */
const Q4_0_COLS = [1, 7, 8, 15, 16, 24, 25, 40].map((n) => 32 * n);
/** K-quants: 1, 2, 3, 8, 9, 17 super-blocks of 256. */
const K_COLS = [1, 2, 3, 8, 9, 17].map((n) => 256 * n);
const ROWS = [1, 13, 37];

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
