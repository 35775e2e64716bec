/**
 * The accepted body of POST /v1/completions: OpenAI's completions fields plus llama.cpp-style sampler extensions
 * (top_k, min_p, repeat_penalty, ignore_eos). Unknown fields are ignored, as OpenAI clients send extras freely.
 * Nulls are stripped before validation (OpenAI treats null as "unset"), so each field has a single type here and
 * ajv's messages stay readable ("max_tokens must be integer").
 */
export const MAX_STOP_SEQUENCES = 16;
export const MAX_LOGPROBS = 20;

const tokenIds = { type: 'array', items: { type: 'integer', minimum: 0 } } as const;

export const completionBodySchema = {
  type: 'object',
  required: ['prompt'],
  properties: {
    model: { type: 'string' },
    prompt: {
      anyOf: [
        { type: 'string' },
        tokenIds,
        { type: 'array', minItems: 1, maxItems: 1, items: { type: 'string' } },
        { type: 'array', minItems: 1, maxItems: 1, items: tokenIds },
      ],
    },
    max_tokens: { type: 'integer', minimum: 1 },
    temperature: { type: 'number', minimum: 0, maximum: 2 },
    top_p: { type: 'number', minimum: 0, maximum: 1 },
    top_k: { type: 'integer', minimum: 0 },
    min_p: { type: 'number', minimum: 0, maximum: 1 },
    repeat_penalty: { type: 'number', exclusiveMinimum: 0, maximum: 100 },
    seed: { type: 'integer' },
    stream: { type: 'boolean' },
    stream_options: { type: 'object', properties: { include_usage: { type: 'boolean' } } },
    logprobs: { type: 'integer', minimum: 0, maximum: MAX_LOGPROBS },
    stop: {
      anyOf: [
        { type: 'string', minLength: 1 },
        { type: 'array', maxItems: MAX_STOP_SEQUENCES, items: { type: 'string', minLength: 1 } },
      ],
    },
    echo: { type: 'boolean' },
    n: { type: 'integer', minimum: 1 },
    best_of: { type: 'integer', minimum: 1 },
    suffix: { type: 'string' },
    presence_penalty: { type: 'number' },
    frequency_penalty: { type: 'number' },
    logit_bias: { type: 'object' },
    ignore_eos: { type: 'boolean' },
    user: { type: 'string' },
  },
} as const;

/** What the schema guarantees (after nulls are stripped). */
export interface CompletionBody {
  readonly model?: string;
  readonly prompt: string | number[] | [string] | [number[]];
  readonly max_tokens?: number;
  readonly temperature?: number;
  readonly top_p?: number;
  readonly top_k?: number;
  readonly min_p?: number;
  readonly repeat_penalty?: number;
  readonly seed?: number;
  readonly stream?: boolean;
  readonly stream_options?: { readonly include_usage?: boolean };
  readonly logprobs?: number;
  readonly stop?: string | string[];
  readonly echo?: boolean;
  readonly n?: number;
  readonly best_of?: number;
  readonly suffix?: string;
  readonly presence_penalty?: number;
  readonly frequency_penalty?: number;
  readonly logit_bias?: Readonly<Record<string, unknown>>;
  readonly ignore_eos?: boolean;
  readonly user?: string;
}

/** OpenAI sends null for "not given"; drop such top-level keys so defaults apply and the schema stays simple. */
export function stripNulls(body: unknown): unknown {
  if (body === null || typeof body !== 'object' || Array.isArray(body)) return body;
  return Object.fromEntries(Object.entries(body).filter(([, v]) => v !== null));
}
