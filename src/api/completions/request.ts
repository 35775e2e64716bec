/**
 * From a schema-valid body to what the cluster runs: prompt ids, sampler, limits. Everything the schema cannot say
 * (ids beyond the vocabulary, features we do not implement, empty prompts) is refused here with a 400, before any
 * work reaches the cluster.
 */
import { DEFAULT_SAMPLER, type SamplerParams } from '../../engine/sampler.js';
import type { Tokenizer } from '../../engine/tokenizer/index.js';
import { ApiError } from '../errors.js';
import type { CompletionBody } from './schema.js';

export interface CompletionRequest {
  readonly promptIds: readonly number[];
  readonly maxTokens: number;
  readonly sampler: SamplerParams;
  /** Top alternatives to report per token; null when logprobs were not asked for. */
  readonly logprobs: number | null;
  readonly stop: readonly string[];
  readonly stream: boolean;
  readonly includeUsage: boolean;
  readonly ignoreEos: boolean;
}

/** OpenAI's defaults: sample from the full distribution at temperature 1, 16 tokens. */
export const DEFAULT_MAX_TOKENS = 16;

function unsupported(param: string, message: string): ApiError {
  return new ApiError(400, message, param, 'unsupported_parameter');
}

function rejectUnsupported(b: CompletionBody): void {
  if (b.echo === true) throw unsupported('echo', 'echo is not supported');
  if (b.n !== undefined && b.n !== 1) throw unsupported('n', 'only n = 1 is supported (send one request per completion)');
  if (b.best_of !== undefined && b.best_of !== 1) throw unsupported('best_of', 'only best_of = 1 is supported');
  if (b.suffix !== undefined && b.suffix !== '') throw unsupported('suffix', 'suffix (insertion) is not supported');
  if (b.logit_bias !== undefined && Object.keys(b.logit_bias).length > 0) throw unsupported('logit_bias', 'logit_bias is not supported');
  for (const p of ['presence_penalty', 'frequency_penalty'] as const) {
    if (b[p] !== undefined && b[p] !== 0) throw unsupported(p, `${p} is not supported; use repeat_penalty (e.g. 1.1)`);
  }
}

function promptIds(prompt: CompletionBody['prompt'], tokenizer: Tokenizer): number[] {
  const p: unknown = Array.isArray(prompt) && prompt.length === 1 && typeof prompt[0] !== 'number' ? prompt[0] : prompt;
  if (typeof p === 'string') {
    if (p.length === 0) throw new ApiError(400, 'prompt is empty', 'prompt', 'invalid_value');
    return tokenizer.encode(p, { addBos: tokenizer.addBos });
  }
  const ids = p as number[];
  if (ids.length === 0) throw new ApiError(400, 'prompt is empty', 'prompt', 'invalid_value');
  const bad = ids.find((id) => id >= tokenizer.vocabSize);
  if (bad !== undefined) {
    throw new ApiError(400, `prompt token id ${bad} is outside the vocabulary (ids 0..${tokenizer.vocabSize - 1})`, 'prompt', 'invalid_value');
  }
  return ids;
}

/** The sampler draws from a 32-bit seed; any integer seed maps onto it (negative and huge ones included). */
function seed32(seed: number | undefined): number {
  return seed === undefined ? DEFAULT_SAMPLER.seed : Number(BigInt.asUintN(32, BigInt(seed)));
}

export function parseCompletionRequest(b: CompletionBody, tokenizer: Tokenizer, contextLength: number): CompletionRequest {
  rejectUnsupported(b);
  const ids = promptIds(b.prompt, tokenizer);
  if (ids.length >= contextLength) throw contextExceeded(ids.length, contextLength);
  return {
    promptIds: ids,
    maxTokens: b.max_tokens ?? DEFAULT_MAX_TOKENS,
    sampler: {
      temperature: b.temperature ?? 1,
      topK: b.top_k ?? 0,
      topP: b.top_p ?? 1,
      minP: b.min_p ?? 0,
      repeatPenalty: b.repeat_penalty ?? 1,
      repeatLastN: DEFAULT_SAMPLER.repeatLastN,
      seed: seed32(b.seed),
    },
    logprobs: b.logprobs ?? null,
    stop: b.stop === undefined ? [] : typeof b.stop === 'string' ? [b.stop] : b.stop,
    stream: b.stream === true,
    includeUsage: b.stream_options?.include_usage === true,
    ignoreEos: b.ignore_eos === true,
  };
}

export function contextExceeded(promptTokens: number, contextLength: number, detail?: string): ApiError {
  const msg = `the prompt has ${promptTokens} tokens but the model's context holds ${contextLength} (the prompt must be shorter to leave room for a completion)`;
  return new ApiError(400, detail ? `${msg}: ${detail}` : msg, 'prompt', 'context_length_exceeded');
}
