import type { LogitsProvider } from './model/pipeline.js';
import { Sampler, topLogprobs, type SamplerParams, type TokenLogprob } from './sampler.js';

export interface GenerateRequest {
  readonly seqId?: number;
  readonly promptIds: readonly number[];
  readonly maxTokens: number;
  readonly sampler: SamplerParams;
  /** how many top log-probabilities to report per generated token (0 = none) */
  readonly topLogprobs?: number;
  /** end-of-generation test (EOS/EOT); ignored when ignoreEos */
  readonly isEog?: (id: number) => boolean;
  readonly ignoreEos?: boolean;
  readonly contextLength: number;
  /** prompt tokens per forward pass during prefill */
  readonly prefillChunkTokens?: number;
}

export interface GenerateTimings {
  prompt_tokens: number;
  prompt_ms: number;
  prompt_tokens_per_s: number;
  decode_tokens: number;
  decode_ms: number;
  decode_tokens_per_s: number;
}

export interface GenerateResult {
  readonly tokens: number[];
  readonly topLogprobs: TokenLogprob[][];
  readonly finishReason: 'stop' | 'length';
  readonly timings: GenerateTimings;
}

export class PromptTooLongError extends Error {
  constructor(readonly promptTokens: number, readonly contextLength: number) {
    super(`the prompt has ${promptTokens} tokens but the context holds ${contextLength}`);
    this.name = 'PromptTooLongError';
  }
}

const rate = (n: number, ms: number): number => (ms > 0 ? (n * 1000) / ms : 0);

/**
 * Prefill the prompt, then sample and feed tokens one at a time. Everything that decides a token (logits, sampler
 * state, recent-token window) is a function of the prompt, the seed and the tokens so far — nothing else.
 */
export async function generate(
  provider: LogitsProvider,
  req: GenerateRequest,
  onToken?: (id: number, logprobs: TokenLogprob[] | null) => void,
): Promise<GenerateResult> {
  const seqId = req.seqId ?? 0;
  const prompt = req.promptIds;
  if (prompt.length === 0) throw new Error('the prompt is empty');
  if (prompt.length >= req.contextLength) throw new PromptTooLongError(prompt.length, req.contextLength);
  const chunk = req.prefillChunkTokens ?? 256;
  const sampler = new Sampler(req.sampler);
  const history = [...prompt];
  const out: number[] = [];
  const lps: TokenLogprob[][] = [];

  const t0 = performance.now();
  let logits: Float32Array = new Float32Array(0);
  // One row of logits per call, consumed (sampled) before the next call: a local provider may reuse this buffer.
  const logitsOut = new Float32Array(provider.vocabSize);
  for (let start = 0; start < prompt.length; start += chunk) {
    const n = Math.min(chunk, prompt.length - start);
    const last = start + n === prompt.length;
    logits = await provider.logits({
      nTokens: n,
      seqIds: new Int32Array(n).fill(seqId),
      positions: Int32Array.from({ length: n }, (_, i) => start + i),
      tokens: Int32Array.from(prompt.slice(start, start + n)),
      logitRows: last ? Int32Array.of(n - 1) : new Int32Array(0),
      logitsOut,
    });
  }
  const t1 = performance.now();

  let finish: GenerateResult['finishReason'] = 'length';
  const maxTokens = Math.min(req.maxTokens, req.contextLength - prompt.length);
  for (let i = 0; i < maxTokens; i++) {
    if (i > 0) {
      const pos = prompt.length + i - 1;
      logits = await provider.logits({
        nTokens: 1,
        seqIds: Int32Array.of(seqId),
        positions: Int32Array.of(pos),
        tokens: Int32Array.of(out[i - 1]!),
        logitsOut,
      });
    }
    const id = sampler.sample(logits, history);
    const lp = req.topLogprobs ? topLogprobs(logits, req.topLogprobs) : null;
    out.push(id);
    history.push(id);
    if (lp) lps.push(lp);
    onToken?.(id, lp);
    if (!req.ignoreEos && req.isEog?.(id)) {
      finish = 'stop';
      break;
    }
  }
  const t2 = performance.now();
  const promptMs = t1 - t0;
  const decodeMs = t2 - t1;
  const decodeTokens = Math.max(0, out.length - 1);
  return {
    tokens: out,
    topLogprobs: lps,
    finishReason: finish,
    timings: {
      prompt_tokens: prompt.length,
      prompt_ms: promptMs,
      prompt_tokens_per_s: rate(prompt.length, promptMs),
      decode_tokens: decodeTokens,
      decode_ms: decodeMs,
      decode_tokens_per_s: rate(decodeTokens, decodeMs),
    },
  };
}
