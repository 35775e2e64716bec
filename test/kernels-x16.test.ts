/**
 * Row-interleaved Q4_0, Q8_0, Q4_K, Q5_K and Q6_K weights (native/x16.c, x16_k.c, Kernels.prepareWeight): after the native kernels rearrange a matrix in
 * place, every kernel — SIMD with 1..3 threads, without AMX, the portable C path and the TypeScript kernels — must
 * give the bits the TypeScript kernels give on the untouched matrix, for 1..7 tokens (the x16 kernel), 8 and more
 * (even chunks of at most 7 tokens, and without AMX; AMX tiles from 8 (Q8_0), 16 (Q4_0, Q5_K), 32 (Q6_K) or 40 (Q4_K) tokens), row counts of one and several 16-row groups
 * (thread splits fall on group boundaries), block and super-block counts around the 8 lanes. getRow reads the rearranged rows right;
 * prepareWeight is idempotent and leaves alone what it cannot or must not rearrange (rows not a multiple of 16,
 * other types, read-only file mappings).
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { GGMLType, rowBytes, typeName } from '../src/engine/gguf/types.js';
import { isX16, x16ClassSlot } from '../src/engine/kernels/layout.js';
import { createNativeKernels, loadNativeAddon, mapFileRange, nativeAddonLoadError } from '../src/engine/kernels/native.js';
import { createTsKernels } from '../src/engine/kernels/ts.js';
import { randomWeights } from '../src/engine/quant/random.js';
import type { WeightTensor } from '../src/engine/tensor.js';
import { expectSameBits, runMatmul } from './helpers/bits.js';
import { useNativeVariants } from './helpers/native-variants.js';
import { activations, maxQuantWeights, rawQuantWeights } from './helpers/quant-inputs.js';

const addon = loadNativeAddon();
/** whether this build has the x16 kernels (AVX-512 with VNNI): probed by rearranging a scratch 16-row Q4_0 matrix */
const x16Build = addon?.x16Repack(new Uint8Array(16 * 18), GGMLType.Q4_0, 16, 32) ?? false;
const title = addon
  ? `row-interleaved Q4_0 / Q8_0 / Q4_K / Q5_K / Q6_K weights (${addon.simdLevel()}${x16Build ? '' : ': no x16 layout in this build, prepareWeight leaves weights alone'})`
  : `row-interleaved Q4_0 / Q8_0 / Q4_K / Q5_K / Q6_K weights — SKIPPED: ${nativeAddonLoadError() ?? 'addon disabled'}`;

const TOKENS = [1, 2, 3, 4, 5, 6, 7, 8, 9, 11, 12, 15, 16, 17, 23, 24, 31, 32, 39, 40];
/** Q4_0 blocks per row: one lane only, 7 lanes, exactly 8, 9 (wraps to lane 0), 24 and 64 (the `medium` shapes);
 * Q4_K super-blocks per row: 1, 3 (`medium` 768), 8 (`medium` 2048), 9 (wraps to lane 0) */
const COLS: Record<number, number[]> = {
  [GGMLType.Q4_0]: [1, 7, 8, 9, 24, 64].map((n) => 32 * n),
  [GGMLType.Q8_0]: [1, 8, 9, 24, 64].map((n) => 32 * n),
  [GGMLType.Q4_K]: [1, 3, 8, 9].map((n) => 256 * n),
  [GGMLType.Q5_K]: [1, 3, 8, 9].map((n) => 256 * n),
  [GGMLType.Q6_K]: [1, 3, 8, 9].map((n) => 256 * n),
};
const TYPES = [GGMLType.Q4_0, GGMLType.Q8_0, GGMLType.Q4_K, GGMLType.Q5_K, GGMLType.Q6_K] as const;
/** one group, three groups, and 80 groups (enough bytes that 2 and 3 threads split the rows) */
const ROWS = [16, 48, 1280];

function tensor(name: string, rows: number, cols: number, data: Uint8Array, type: GGMLType = GGMLType.Q4_0): WeightTensor {
  return { name, type, rows, cols, data };
}

describe('x16ClassSlot (Q4_0 / Q8_0 groups store their blocks lane class by lane class)', () => {
  it('is a permutation that orders blocks by (b % 8, b / 8)', () => {
    for (let nb = 1; nb <= 70; nb++) {
      const order = Array.from({ length: nb }, (_, b) => b).sort((a, b) => a % 8 - b % 8 || a - b);
      expect(order.map((b) => x16ClassSlot(b, nb)), `nb ${nb}`).toEqual(order.map((_, i) => i));
    }
    expect([0, 8, 16, 1, 9, 17, 2].map((b) => x16ClassSlot(b, 24))).toEqual([0, 1, 2, 3, 4, 5, 6]);
  });
});

describe.skipIf(!addon)(title, () => {
  const ts = createTsKernels();
  const native = useNativeVariants({ scalarThreads: 2, noAmx: true });

  function checkPrepared(original: WeightTensor, label: string): void {
    const prepared = tensor(original.name, original.rows, original.cols, original.data.slice(), original.type);
    native.get('simd/1')!.prepareWeight!(prepared);
    expect(isX16(prepared.data), `${label}: rearranged`).toBe(x16Build);
    if (x16Build) expect(Buffer.compare(prepared.data, original.data), `${label}: bytes moved`).not.toBe(0);
    for (const nTok of TOKENS) {
      if (original.rows * original.cols * nTok > 2 ** 24) continue; // the largest shapes: a few token counts suffice
      const x = activations(original.cols, nTok, original.cols * 31 + nTok);
      const expected = runMatmul(ts, original, x, nTok);
      for (const [variant, k] of native) expectSameBits(runMatmul(k, prepared, x, nTok), expected, `${label} nTok=${nTok} ${variant}`);
      expectSameBits(runMatmul(ts, prepared, x, nTok), expected, `${label} nTok=${nTok} ts on the rearranged bytes`);
    }
  }

  for (const type of TYPES) {
    const name = typeName(type);
    for (const cols of COLS[type]!) {
      for (const rows of ROWS) {
        it(`${name} raw ${rows}×${cols}: every kernel on the rearranged matrix gives the TypeScript bits of the original`, () => {
          const label = `${name} raw ${rows}×${cols}`;
          checkPrepared(tensor(label, rows, cols, rawQuantWeights(type, rows, cols, rows * 7919 + cols), type), label);
        });
      }
      it(`${name} quantized and all-maximal 48×${cols}: same bits`, () => {
        checkPrepared(tensor('quantized', 48, cols, randomWeights(type, 48, cols, cols, 0.5), type), `${name} quantized 48×${cols}`);
        checkPrepared(tensor('max', 48, cols, maxQuantWeights(type, 48, cols), type), `${name} max 48×${cols}`);
      });
    }
  }

  for (const type of TYPES) {
    it(`${typeName(type)}: the \`medium\` head (32000 × 768) with 1 and 4 tokens on 1 and 2 threads`, () => {
      const original = tensor('head', 32000, 768, rawQuantWeights(type, 32000, 768, 5), type);
      const prepared = tensor('head', 32000, 768, original.data.slice(), type);
      native.get('simd/2')!.prepareWeight!(prepared);
      for (const nTok of [1, 4]) {
        const x = activations(768, nTok, 17 + nTok);
        const expected = runMatmul(ts, original, x, nTok);
        for (const v of ['simd/1', 'simd/2', 'noamx/2']) expectSameBits(runMatmul(native.get(v)!, prepared, x, nTok), expected, `head nTok=${nTok} ${v}`);
      }
    });
  }

  for (const type of TYPES) {
    it(`${typeName(type)}: getRow reads every row of a rearranged matrix as the original (native and TypeScript kernels)`, () => {
      const rows = 48, cols = type === GGMLType.Q4_0 || type === GGMLType.Q8_0 ? 9 * 32 : 3 * 256;
      const original = tensor('emb', rows, cols, rawQuantWeights(type, rows, cols, 3), type);
      const prepared = tensor('emb', rows, cols, original.data.slice(), type);
      native.get('simd/1')!.prepareWeight!(prepared);
      expect(isX16(prepared.data)).toBe(x16Build);
      const a = new Float32Array(cols), b = new Float32Array(cols);
      for (let r = 0; r < rows; r++) {
        ts.getRow(a, original, r);
        native.get('simd/1')!.getRow(b, prepared, r);
        expectSameBits(b, a, `row ${r} (native)`);
        ts.getRow(b, prepared, r);
        expectSameBits(b, a, `row ${r} (ts)`);
      }
    });
  }

  it('prepareWeight is idempotent and leaves alone what it cannot rearrange', () => {
    const k = native.get('simd/1')!;
    const once = tensor('w', 32, 256, rawQuantWeights(GGMLType.Q4_0, 32, 256, 11));
    k.prepareWeight!(once);
    const snapshot = once.data.slice();
    k.prepareWeight!(once);
    k.prepareWeight!({ ...once, name: 'another object, same bytes' });
    expect(Buffer.compare(once.data, snapshot)).toBe(0);

    const odd = tensor('odd rows', 37, 256, rawQuantWeights(GGMLType.Q4_0, 37, 256, 12));
    const oddCopy = odd.data.slice();
    k.prepareWeight!(odd);
    expect(isX16(odd.data)).toBe(false);
    expect(Buffer.compare(odd.data, oddCopy)).toBe(0);

    const f16: WeightTensor = { name: 'f16', type: GGMLType.F16, rows: 32, cols: 256, data: new Uint8Array(32 * 256 * 2).fill(0x3c) };
    const f16Copy = f16.data.slice();
    k.prepareWeight!(f16);
    expect(isX16(f16.data)).toBe(false);
    expect(Buffer.compare(f16.data, f16Copy)).toBe(0);

    // the scalar kernels never rearrange (they would gain nothing)
    const s = tensor('scalar', 32, 256, rawQuantWeights(GGMLType.Q4_0, 32, 256, 14));
    native.get('scalar/2')!.prepareWeight!(s);
    expect(isX16(s.data)).toBe(false);
  });

  describe('read-only file mappings', () => {
    const dir = mkdtempSync(join(tmpdir(), 'bf-x16-'));
    afterAll(() => rmSync(dir, { recursive: true, force: true }));
    it('are never written (a write would crash the process) and still compute right', () => {
      const rows = 32, cols = 256;
      const bytes = rawQuantWeights(GGMLType.Q4_0, rows, cols, 21);
      const path = join(dir, 'w.bin');
      writeFileSync(path, bytes);
      const mapped = mapFileRange(path, 0, rows * rowBytes(GGMLType.Q4_0, cols))!;
      const w = tensor('mapped', rows, cols, mapped);
      const k = createNativeKernels(1)!;
      try {
        k.prepareWeight!(w);
        expect(isX16(w.data)).toBe(false);
        const x = activations(cols, 4, 9);
        expectSameBits(runMatmul(k, w, x, 4), runMatmul(ts, tensor('copy', rows, cols, bytes), x, 4), 'mapped');
      } finally {
        k.dispose();
      }
    });
  });
});
