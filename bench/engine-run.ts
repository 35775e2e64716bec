/**
 * One engine, one model, one thread count, in a fresh process (so RSS is its own). Prints one JSON line, a
 * RunResult (bench/engine-common.ts). Driven by bench/engine.ts.
 *   node dist/bench/engine-run.js butterfly|llamacpp MODEL THREADS
 */
import { createKernels } from '../src/engine/kernels/index.js';
import { loadStage, openModel, wholeModel } from '../src/engine/model/load.js';
import { LocalPipeline } from '../src/engine/model/pipeline.js';
import { SplitMix32 } from '../src/engine/prng.js';

import { BATCH_SIZES, BATCH_STEPS, DECODE_TOKENS, PLATEAU_BATCH, PREFILL_RUNS, PREFILL_TOKENS, type RunResult } from './engine-common.js';
import { median } from './cli.js';

function promptIds(n: number, vocab: number, seed: number): number[] {
  const rng = new SplitMix32(seed);
  return [1, ...Array.from({ length: n - 1 }, () => 3 + (rng.nextU32() % (vocab - 3)))];
}

function argmaxLast(l: Float32Array, vocab: number, row = -1): number {
  const off = row < 0 ? l.length - vocab : row * vocab;
  let best = 0;
  for (let i = 1; i < vocab; i++) if (l[off + i]! > l[off + best]!) best = i;
  return best;
}

async function runButterfly(model: string, threads: number): Promise<RunResult> {
  const kernels = createKernels({ threads });
  const baselineRssBytes = process.memoryUsage().rss;
  const m = openModel(model);
  const p = new LocalPipeline([loadStage(m, wholeModel(m.cfg), kernels)]);
  const V = m.cfg.vocabSize;
  // One logits buffer lent to every single-stream call, as generate() does (no 128 KB of garbage per token).
  const logitsOut = new Float32Array(V);
  const seq = (ids: number[], seqId: number, start: number) => ({
    nTokens: ids.length, seqIds: new Int32Array(ids.length).fill(seqId),
    positions: Int32Array.from({ length: ids.length }, (_, i) => start + i), tokens: Int32Array.from(ids),
    logitRows: Int32Array.of(ids.length - 1), logitsOut,
  });
  // Warm-up (page in the weights), then measure. Figures are medians of per-call times, so that a stall caused by
  // another process on this 2-core machine moves them less than a total would.
  p.logitsSync(seq(promptIds(8, V, 9), 99, 0));
  await p.dropSequence(99);
  const prompt = promptIds(PREFILL_TOKENS, V, 1);
  const prefillTimes: number[] = [];
  for (let r = 0; r < PREFILL_RUNS; r++) {
    const t = performance.now();
    p.logitsSync(seq(prompt, 0, 0));
    prefillTimes.push(performance.now() - t);
    await p.dropSequence(0);
  }
  const prefillMs = median(prefillTimes);
  // Decode: greedy continuation of the prompt's first 16 tokens, at the positions llama.cpp decodes below.
  let tok = argmaxLast(p.logitsSync(seq(prompt.slice(0, 16), 0, 0)), V);
  const decodeTimes: number[] = [];
  for (let i = 0; i < DECODE_TOKENS; i++) {
    const t = performance.now();
    const l = p.logitsSync(seq([tok], 0, 16 + i));
    decodeTimes.push(performance.now() - t);
    tok = argmaxLast(l, V);
  }
  const decodeMs = median(decodeTimes) * DECODE_TOKENS;
  const decodeRssBytes = process.memoryUsage().rss;
  let rssBytes = decodeRssBytes;
  await p.dropSequence(0);
  const batched: Record<string, number> = {};
  for (const B of [...BATCH_SIZES, PLATEAU_BATCH]) {
    const batchLogits = new Float32Array(B * V);
    const toks: number[] = [];
    for (let s = 0; s < B; s++) toks.push(argmaxLast(p.logitsSync(seq(promptIds(16, V, 100 + s), s, 0)), V));
    const stepTimes: number[] = [];
    for (let step = 0; step < BATCH_STEPS; step++) {
      const t = performance.now();
      const l = p.logitsSync({
        nTokens: B, seqIds: Int32Array.from({ length: B }, (_, s) => s), positions: new Int32Array(B).fill(16 + step),
        tokens: Int32Array.from(toks), logitsOut: batchLogits,
      });
      stepTimes.push(performance.now() - t);
      for (let s = 0; s < B; s++) toks[s] = argmaxLast(l, V, s);
    }
    batched[B] = (B * 1000) / median(stepTimes);
    rssBytes = Math.max(rssBytes, process.memoryUsage().rss);
    for (let s = 0; s < B; s++) await p.dropSequence(s);
  }
  kernels.dispose();
  const plateauTokPerS = batched[PLATEAU_BATCH];
  delete batched[PLATEAU_BATCH];
  return {
    prefillTokPerS: (PREFILL_TOKENS * 1000) / prefillMs,
    decodeTokPerS: (DECODE_TOKENS * 1000) / decodeMs,
    batched,
    plateauTokPerS,
    baselineRssBytes,
    decodeRssBytes,
    rssBytes,
  };
}

async function runLlamaCpp(model: string, threads: number): Promise<RunResult> {
  const { getLlama, LlamaLogLevel } = await import('node-llama-cpp');
  const llama = await getLlama({ gpu: false, build: 'never', logLevel: LlamaLogLevel.error, maxThreads: threads });
  const baselineRssBytes = process.memoryUsage().rss;
  const lm = await llama.loadModel({ modelPath: model, gpuLayers: 0 });
  const shape = openModel(model);
  const V = shape.cfg.vocabSize;
  shape.file.close();
  const ctx = await lm.createContext({ contextSize: 512, sequences: 1, batchSize: 512, threads, flashAttention: false });
  const prompt = promptIds(PREFILL_TOKENS, V, 1);
  const s0 = ctx.getSequence();
  // Warm-up (page in the weights).
  await s0.evaluateWithoutGeneratingNewTokens(promptIds(8, V, 9) as never);
  await s0.clearHistory();
  const prefillTimes: number[] = [];
  for (let r = 0; r < PREFILL_RUNS; r++) {
    const t0 = performance.now();
    await s0.evaluateWithoutGeneratingNewTokens(prompt as never);
    prefillTimes.push(performance.now() - t0);
    await s0.clearHistory();
  }
  const prefillMs = median(prefillTimes);
  // Decode: greedy continuation of a short prompt; the time between tokens, median.
  await s0.evaluateWithoutGeneratingNewTokens(prompt.slice(0, 16) as never);
  const decodeTimes: number[] = [];
  let t = performance.now();
  for await (const _tok of s0.evaluate([prompt[16]!] as never, { temperature: 0 })) {
    const now = performance.now();
    decodeTimes.push(now - t);
    t = now;
    if (decodeTimes.length >= DECODE_TOKENS) break;
  }
  const decodeMs = median(decodeTimes) * DECODE_TOKENS;
  s0.dispose();
  const decodeRssBytes = process.memoryUsage().rss;
  let rss = decodeRssBytes;
  await ctx.dispose();
  const batched: Record<string, number> = {};
  for (const B of BATCH_SIZES) {
    const ctxB = await lm.createContext({ contextSize: 128 * B, sequences: B, batchSize: 512, threads, flashAttention: false });
    const seqs = Array.from({ length: B }, () => ctxB.getSequence());
    await Promise.all(seqs.map((s, i) => s.evaluateWithoutGeneratingNewTokens(promptIds(16, V, 100 + i) as never)));
    t = performance.now();
    await Promise.all(seqs.map(async (s, i) => {
      let k = 0;
      for await (const _tok of s.evaluate([5 + i] as never, { temperature: 0 })) if (++k >= BATCH_STEPS) break;
    }));
    batched[B] = (B * BATCH_STEPS * 1000) / (performance.now() - t);
    rss = Math.max(rss, process.memoryUsage().rss);
    await ctxB.dispose();
  }
  await lm.dispose();
  return {
    prefillTokPerS: (PREFILL_TOKENS * 1000) / prefillMs, decodeTokPerS: (DECODE_TOKENS * 1000) / decodeMs, batched,
    baselineRssBytes, decodeRssBytes, rssBytes: rss,
  };
}

const [engine, model, threadsArg] = process.argv.slice(2);
if (!engine || !model) {
  process.stderr.write('usage: node dist/bench/engine-run.js butterfly|llamacpp MODEL THREADS\n');
  process.exit(1);
}
const threads = Number(threadsArg ?? 1);
const result = engine === 'llamacpp' ? await runLlamaCpp(model, threads) : await runButterfly(model, threads);
process.stdout.write(JSON.stringify(result) + '\n');
process.exit(0);
