/**
 * llama.cpp (through node-llama-cpp 3.21.1, its prebuilt CPU build) as the reference engine. Dev-only: tests and
 * benchmarks use it; Butterfly never does. node-llama-cpp exposes probabilities, not logits, so we compare
 * log-softmax values.
 */
import { getLlama, LlamaLogLevel, type Llama, type LlamaModel } from 'node-llama-cpp';

let llamaPromise: Promise<Llama> | null = null;

export function reference(): Promise<Llama> {
  llamaPromise ??= getLlama({ gpu: false, build: 'never', logLevel: LlamaLogLevel.error, maxThreads: 2 });
  return llamaPromise;
}

export interface RefTokenLogprob {
  id: number;
  logprob: number;
}

export interface RefRun {
  tokens: number[];
  /** top-k log-probabilities per generated token (largest first) */
  top: RefTokenLogprob[][];
  promptMs: number;
  decodeMs: number;
}

export interface RefOptions {
  threads?: number;
  topK?: number;
  /** llama.cpp's KV cache type; F32 for exact comparisons (its default is F16). */
  kvType?: 'F32' | 'F16';
  contextSize?: number;
}

export async function loadReferenceModel(path: string): Promise<LlamaModel> {
  const llama = await reference();
  return llama.loadModel({ modelPath: path, gpuLayers: 0 });
}

/** Greedy-decode `nTokens` after `promptIds` (fed as given, no BOS added). */
export async function referenceGreedy(model: LlamaModel, promptIds: number[], nTokens: number, opts: RefOptions = {}): Promise<RefRun> {
  const topK = opts.topK ?? 5;
  const ctx = await model.createContext({
    contextSize: opts.contextSize ?? Math.max(256, promptIds.length + nTokens + 16),
    batchSize: Math.max(32, promptIds.length),
    threads: opts.threads ?? 1,
    flashAttention: false,
    experimentalKvCacheKeyType: opts.kvType ?? 'F32',
    experimentalKvCacheValueType: opts.kvType ?? 'F32',
  });
  try {
    const seq = ctx.getSequence();
    const tokens: number[] = [];
    const top: RefTokenLogprob[][] = [];
    const t0 = performance.now();
    let tFirst = 0;
    const gen = seq.evaluateWithMetadata(promptIds as never, { probabilities: true }, { temperature: 0 });
    for await (const out of gen) {
      if (tokens.length === 0) tFirst = performance.now();
      tokens.push(out.token as number);
      const entries = [...out.probabilities.entries()]
        .map(([id, p]) => ({ id: id as number, logprob: Math.log(p) }))
        .sort((a, b) => b.logprob - a.logprob || a.id - b.id)
        .slice(0, topK);
      top.push(entries);
      if (tokens.length >= nTokens) break;
    }
    const t1 = performance.now();
    return { tokens, top, promptMs: tFirst - t0, decodeMs: t1 - tFirst };
  } finally {
    await ctx.dispose();
  }
}

export async function referenceTokenize(model: LlamaModel, text: string): Promise<number[]> {
  return model.tokenize(text) as number[];
}
