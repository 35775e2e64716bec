/**
 * Matrix-product speed of the kernels: native (1 and 2 threads) against TypeScript, per weight type, on the
 * matrix shapes of a 125M-parameter Llama (dim 768, ff 2048, vocab 32000).
 *
 *   npm run build && node dist/bench/kernels.js [--types F32,Q8_0] [--shapes 768x768,2048x768,32000x768] [--tok 1,16,128]
 *                                                [--ms 300] [--full]
 *
 * nTok = 1 is a decode step (bandwidth-bound: reported as GB/s of weights read); nTok > 1 is prefill / batched
 * decode (reported as GFLOP/s, 2 flops per weight per token). Without --full, TypeScript skips nTok ≥ 128 on
 * matrices above 8 MB (seconds per call). Weights are random bytes with sane scales: speed does not depend on values.
 */
import { GGMLType, rowBytes, typeName } from '../src/engine/gguf/types.js';
import { allocAligned, createNativeKernels, loadNativeAddon, nativeAddonLoadError } from '../src/engine/kernels/native.js';
import { isX16 } from '../src/engine/kernels/layout.js';
import { createTsKernels } from '../src/engine/kernels/ts.js';
import type { Kernels } from '../src/engine/kernels/types.js';
import { writeF16 } from '../src/engine/quant/half.js';
import { SplitMix32 } from '../src/engine/prng.js';
import type { WeightTensor } from '../src/engine/tensor.js';
import { arg } from './cli.js';

const TYPES: Record<string, GGMLType> = {
  F32: GGMLType.F32, F16: GGMLType.F16, BF16: GGMLType.BF16, Q8_0: GGMLType.Q8_0, Q4_0: GGMLType.Q4_0,
  Q4_K: GGMLType.Q4_K, Q5_K: GGMLType.Q5_K, Q6_K: GGMLType.Q6_K,
};
/** F16 scale fields per block: [block bytes, offsets] (the rest of a block may be any bits). */
const SCALES: Partial<Record<GGMLType, [number, number[]]>> = {
  [GGMLType.Q8_0]: [34, [0]], [GGMLType.Q4_0]: [18, [0]], [GGMLType.Q4_K]: [144, [0, 2]],
  [GGMLType.Q5_K]: [176, [0, 2]], [GGMLType.Q6_K]: [210, [208]],
};

/** Random weights that decode to ordinary finite numbers (no NaN, infinity or subnormals to slow anything). */
function makeWeights(type: GGMLType, rows: number, cols: number, seed: number): WeightTensor {
  const rng = new SplitMix32(seed);
  const data = allocAligned(rows * rowBytes(type, cols));
  if (type === GGMLType.F32) {
    const f = new Float32Array(data.buffer, data.byteOffset, rows * cols);
    for (let i = 0; i < f.length; i++) f[i] = rng.nextFloat() - 0.5;
  } else if (type === GGMLType.F16 || type === GGMLType.BF16) {
    const h = new Uint16Array(data.buffer, data.byteOffset, rows * cols);
    // exponent kept in a normal range: F16 biased 10..17, BF16 biased 120..127
    const [bias, shift] = type === GGMLType.F16 ? [10, 10] : [120, 7];
    for (let i = 0; i < h.length; i++) {
      const r = rng.nextU32();
      h[i] = (r & 0x8000) | ((bias + ((r >>> 16) & 7)) << shift) | (r & ((1 << shift) - 1));
    }
  } else {
    for (let i = 0; i < data.length; i += 4) {
      const r = rng.nextU32();
      data[i] = r & 0xff; data[i + 1] = (r >>> 8) & 0xff; data[i + 2] = (r >>> 16) & 0xff; data[i + 3] = r >>> 24;
    }
    const [blockBytes, offsets] = SCALES[type]!;
    for (let b = 0; b < data.length; b += blockBytes) for (const o of offsets) writeF16(data, b + o, (rng.nextFloat() - 0.5) * 0.05);
  }
  return { name: `${typeName(type)} ${rows}×${cols}`, type, rows, cols, data };
}

/** Median seconds per call: one warm-up, then calls until `budgetMs` has passed (at least 3, at most 2000). */
function timeCall(fn: () => void, budgetMs: number): number {
  fn();
  const samples: number[] = [];
  const start = process.hrtime.bigint();
  const budgetNs = BigInt(Math.round(budgetMs * 1e6));
  while (samples.length < 3 || (process.hrtime.bigint() - start < budgetNs && samples.length < 2000)) {
    const t0 = process.hrtime.bigint();
    fn();
    samples.push(Number(process.hrtime.bigint() - t0) / 1e9);
  }
  samples.sort((a, b) => a - b);
  return samples[samples.length >> 1]!;
}

function fmt(v: number | null, digits = 1): string {
  return v === null ? '—' : v.toFixed(digits);
}

function main(): void {
  const addon = loadNativeAddon();
  if (!addon) {
    console.error(`native addon unavailable: ${nativeAddonLoadError() ?? 'BUTTERFLY_KERNELS=ts'}`);
    process.exitCode = 1;
    return;
  }
  const types = arg('types', Object.keys(TYPES).join(',')).split(',');
  const shapes = arg('shapes', '768x768,2048x768,32000x768').split(',').map((s) => s.split('x').map(Number) as [number, number]);
  const toks = arg('tok', '1,16,128').split(',').map(Number);
  const budgetMs = Number(arg('ms', '300'));
  const full = process.argv.includes('--full');

  const ts = createTsKernels();
  const n1 = createNativeKernels(1)!;
  const n2 = createNativeKernels(2)!;
  console.log(`native SIMD: ${addon.simdLevel()}; Node ${process.version}; ${budgetMs} ms per measurement (median)`);
  console.log('nTok=1 in GB/s of weights read, nTok>1 in GFLOP/s. ratios: native 1 thread / TS, native 2 threads / 1 thread;');
  console.log('x16×1: native, 1 thread, on the same matrix rearranged by prepareWeight (Q4_0, Q8_0, Q4_K; — for other types)\n');
  const header = ['type', 'matrix', 'MB', 'nTok', 'TS', 'native×1', 'native×2', 'x16×1', 'n1/TS', 'n2/n1', 'x16/n1', 'bits'];
  const rowsOut: string[][] = [header];

  for (const name of types) {
    const type = TYPES[name];
    if (type === undefined) throw new Error(`unknown type ${name}`);
    for (const [rows, cols] of shapes) {
      const w = makeWeights(type, rows, cols, rows + cols);
      const mb = w.data.length / 1e6;
      // the engine's layout: a stage lets its kernels rearrange its matrices (Kernels.prepareWeight)
      const w16: WeightTensor = { ...w, data: allocAligned(w.data.length) };
      w16.data.set(w.data);
      n1.prepareWeight?.(w16);
      const hasX16 = isX16(w16.data);
      for (const nTok of toks) {
        const x = new Float32Array(nTok * cols);
        const rng = new SplitMix32(nTok);
        for (let i = 0; i < x.length; i++) x[i] = rng.nextFloat() * 2 - 1;
        const outs = [0, 1, 2, 3].map(() => new Float32Array(nTok * rows));
        const rate = (sec: number): number => (nTok === 1 ? w.data.length / sec / 1e9 : (2 * rows * cols * nTok) / sec / 1e9);
        const skipTs = !full && nTok >= 128 && w.data.length > 8e6;
        const run = (k: Kernels, out: Float32Array) => () => k.matmul(out, w, x, nTok);
        const tTs = skipTs ? null : rate(timeCall(run(ts, outs[0]!), budgetMs));
        const t1 = rate(timeCall(run(n1, outs[1]!), budgetMs));
        const t2 = rate(timeCall(run(n2, outs[2]!), budgetMs));
        const t16 = hasX16 ? rate(timeCall(() => n1.matmul(outs[3]!, w16, x, nTok), budgetMs)) : null;
        const same = (a: Float32Array, b: Float32Array) => Buffer.from(a.buffer).equals(Buffer.from(b.buffer));
        const bits = same(outs[1]!, outs[2]!) && (skipTs || same(outs[0]!, outs[1]!)) && (!hasX16 || same(outs[1]!, outs[3]!)) ? 'same' : 'DIFFER';
        const line = [name, `${rows}×${cols}`, mb.toFixed(1), String(nTok), fmt(tTs), fmt(t1), fmt(t2), fmt(t16),
          tTs === null ? '—' : fmt(t1 / tTs, 1), fmt(t2 / t1, 2), t16 === null ? '—' : fmt(t16 / t1, 2), bits];
        rowsOut.push(line);
        console.log(line.join('\t'));
      }
    }
  }
  n1.dispose();
  n2.dispose();

  const widths = header.map((_, c) => Math.max(...rowsOut.map((r) => r[c]!.length)));
  console.log('\n| ' + header.map((h, c) => h.padEnd(widths[c]!)).join(' | ') + ' |');
  console.log('|' + widths.map((n) => '-'.repeat(n + 2)).join('|') + '|');
  for (const r of rowsOut.slice(1)) console.log('| ' + r.map((v, c) => v.padEnd(widths[c]!)).join(' | ') + ' |');
}

main();
