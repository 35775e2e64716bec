/**
 * Butterfly's engine against llama.cpp (node-llama-cpp 3.21.1) on the same synthesized GGUF files: greedy tokens must
 * be identical and the log-probabilities of llama.cpp's top-5 tokens must agree within a per-type tolerance.
 * The tolerances are measured (the test prints the observed max |Δ logprob| per case; see docs/conformance.md).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { LlamaModel } from 'node-llama-cpp';
import { generate } from '../src/engine/generate.js';
import { createKernels } from '../src/engine/kernels/index.js';
import { loadStage, openModel, wholeModel } from '../src/engine/model/load.js';
import { LocalPipeline } from '../src/engine/model/pipeline.js';
import { topLogprobs } from '../src/engine/sampler.js';
import type { SynthShape, SynthTypeName } from '../src/engine/synth.js';
import { loadReferenceModel, reference, referenceGreedy } from './helpers/llamacpp.js';
import { ModelDir, SHAPES } from './helpers/models.js';
import { SplitMix32 } from '../src/engine/prng.js';

const models = new ModelDir();
const kernels = createKernels({ threads: 2 });
beforeAll(async () => {
  await reference();
});
afterAll(() => {
  kernels.dispose();
  models.cleanup();
});

/** Max |Δ logprob| allowed per weight type (llama.cpp with an F32 KV cache). */
const TOLERANCE: Record<SynthTypeName, number> = {
  f32: 1e-4,
  f16: 5e-3,
  bf16: 2e-2,
  q8_0: 1e-4,
  q4_0: 1e-4,
  q4_k: 1e-4,
  q5_k: 1e-4,
  q6_k: 1e-4,
};

function promptOf(len: number, vocab: number, seed: number): number[] {
  const rng = new SplitMix32(seed);
  return [1, ...Array.from({ length: len - 1 }, () => 3 + (rng.nextU32() % (vocab - 3)))];
}

interface Case {
  name: string;
  shape: SynthShape;
  type: SynthTypeName;
  tied: boolean;
  promptTokens: number;
  arch?: 'llama' | 'qwen2';
}

const CASES: Case[] = [
  { name: 'GQA 1 (MHA), untied', shape: SHAPES.mha, type: 'f32', tied: false, promptTokens: 12 },
  { name: 'GQA 2, tied', shape: SHAPES.tiny, type: 'f32', tied: true, promptTokens: 20 },
  { name: 'GQA 4, odd sizes, 120-token prompt', shape: SHAPES.odd, type: 'f32', tied: false, promptTokens: 120 },
  { name: 'qwen2 (QKV biases, NEOX rope, byte-level BPE)', shape: SHAPES.tiny, type: 'f32', tied: true, promptTokens: 30, arch: 'qwen2' },
  { name: 'qwen2, q4_k', shape: SHAPES.tiny, type: 'q4_k', tied: false, promptTokens: 30, arch: 'qwen2' },
  ...(['f16', 'bf16', 'q8_0', 'q4_0', 'q4_k', 'q5_k', 'q6_k'] as const).map((type) => ({
    name: `GQA 2, ${type}`, shape: SHAPES.tiny, type, tied: false, promptTokens: 24,
  })),
];

const GEN_TOKENS = 16;

describe('conformance with llama.cpp', () => {
  for (const c of CASES) {
    it(`${c.name} (${c.type})`, async () => {
      const path = models.model(c.name.replace(/\W+/g, '_'), c.shape, c.type, {
        tied: c.tied, seed: 11, arch: c.arch, tokenizer: c.arch === 'qwen2' ? 'gpt2' : 'llama',
      });
      const prompt = promptOf(c.promptTokens, c.shape.vocabSize, c.promptTokens);
      const refModel: LlamaModel = await loadReferenceModel(path);
      let ref;
      try {
        ref = await referenceGreedy(refModel, prompt, GEN_TOKENS, { threads: 1, kvType: 'F32' });
      } finally {
        await refModel.dispose();
      }
      const m = openModel(path);
      const pipe = new LocalPipeline([loadStage(m, wholeModel(m.cfg), kernels)]);
      const logitsSeen: Float32Array[] = [];
      const wrapped = {
        vocabSize: pipe.vocabSize,
        logits: async (b: Parameters<typeof pipe.logits>[0]) => {
          const l = await pipe.logits(b);
          logitsSeen.push(l.slice(l.length - pipe.vocabSize));
          return l;
        },
        truncate: pipe.truncate.bind(pipe),
        dropSequence: pipe.dropSequence.bind(pipe),
      };
      const ours = await generate(wrapped, {
        promptIds: prompt, maxTokens: GEN_TOKENS, contextLength: m.cfg.contextLength, ignoreEos: true,
        sampler: { temperature: 0, topK: 0, topP: 1, minP: 0, repeatPenalty: 1, repeatLastN: 64, seed: 0 },
      });
      m.file.close();
      // node-llama-cpp ends its generator at an end-of-generation token; we ignore EOS, so compare the common prefix
      // and check that what stopped llama.cpp is an EOG token for us too.
      expect(ref.tokens.length).toBeGreaterThanOrEqual(4);
      expect(ours.tokens.slice(0, ref.tokens.length)).toEqual(ref.tokens);
      if (ref.tokens.length < GEN_TOKENS) expect(ours.tokens[ref.tokens.length]).toBe(2);
      let maxDelta = 0;
      for (let step = 0; step < ref.top.length; step++) {
        const all = topLogprobs(logitsSeen[step]!, logitsSeen[step]!.length);
        const byId = new Map(all.map((t) => [t.id, t.logprob]));
        for (const { id, logprob } of ref.top[step]!) {
          if (!Number.isFinite(logprob)) continue;
          maxDelta = Math.max(maxDelta, Math.abs(byId.get(id)! - logprob));
        }
      }
      console.log(`conformance ${c.name} ${c.type}: max |Δ logprob| = ${maxDelta.toExponential(2)} over ${ref.top.length} steps`);
      expect(maxDelta).toBeLessThan(TOLERANCE[c.type]);
    });
  }
});
