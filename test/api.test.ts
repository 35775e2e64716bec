import OpenAI from 'openai';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import fc from 'fast-check';
import type { FastifyInstance } from 'fastify';
import { buildApiApp, startApiServer, type ApiServer, type CompletionStats } from '../src/api/server.js';
import { FAKE_TEXT, FakeService } from './helpers/api-fake-service.js';

let fake: FakeService;
let app: FastifyInstance;
let stats: CompletionStats[];

beforeEach(async () => {
  fake = new FakeService();
  stats = [];
  app = await buildApiApp(fake, { onCompletion: (s) => stats.push(s) });
});

afterEach(async () => {
  await app.close();
});

interface Completion {
  id: string;
  object: string;
  created: number;
  model: string;
  choices: Array<{ index: number; text: string; finish_reason: string | null; logprobs: Logprobs | null }>;
  usage?: { prompt_tokens: number; completion_tokens: number; total_tokens: number };
}
interface Logprobs {
  tokens: string[];
  token_logprobs: Array<number | null>;
  top_logprobs: Array<Record<string, number>>;
  text_offset: number[];
}
interface ErrorBody {
  error: { message: string; type: string; param: string | null; code: string | null };
}

async function complete(body: unknown): Promise<{ status: number; json: Completion & ErrorBody }> {
  const res = await app.inject({ method: 'POST', url: '/v1/completions', payload: body as object });
  return { status: res.statusCode, json: res.json() };
}

/** `data: …` events of an SSE body; '[DONE]' stays a string. */
function sseEvents(body: string): unknown[] {
  expect(body.endsWith('\n\n')).toBe(true);
  return body
    .split('\n\n')
    .filter((s) => s.length > 0)
    .map((s) => {
      expect(s.startsWith('data: ')).toBe(true);
      const data = s.slice('data: '.length);
      return data === '[DONE]' ? data : JSON.parse(data);
    });
}

async function streamed(body: object): Promise<{ status: number; type: string | undefined; events: unknown[] }> {
  const res = await app.inject({ method: 'POST', url: '/v1/completions', payload: { ...body, stream: true } });
  return { status: res.statusCode, type: res.headers['content-type'] as string | undefined, events: sseEvents(res.body) };
}

function chunkTexts(events: unknown[]): string[] {
  return events.filter((e): e is Completion => typeof e === 'object' && e !== null && 'choices' in e).flatMap((e) => e.choices.map((c) => c.text));
}

async function until(cond: () => boolean, ms = 2000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 5));
  }
}

/** The text of the first n scripted tokens as a continuation (keeps the leading space; EOS renders as nothing). */
function scriptText(n = fake.script.length): string {
  const d = fake.tokenizer.newStreamDecoder();
  return fake.script.slice(0, n).map((id) => d.push(id)).join('') + d.flush();
}

describe('read-only routes', () => {
  it('serves health, models, status and state', async () => {
    expect((await app.inject({ url: '/health' })).json()).toEqual({ ok: true });
    const models = (await app.inject({ url: '/v1/models' })).json();
    expect(models).toMatchObject({ object: 'list', data: [{ id: 'fake-llama', object: 'model', owned_by: 'butterfly' }] });
    expect((await app.inject({ url: '/api/v1/status' })).json()).toEqual(JSON.parse(JSON.stringify(fake.status())));
    expect((await app.inject({ url: '/api/v1/state' })).json()).toEqual(fake.stateJSON());
  });

  it('answers unknown routes with a 404 in the OpenAI error shape', async () => {
    for (const [method, url] of [['GET', '/nope'], ['POST', '/v1/chat/completions'], ['GET', '/v1/completions']] as const) {
      const res = await app.inject({ method, url });
      expect(res.statusCode).toBe(404);
      const body = res.json() as ErrorBody;
      expect(body.error).toMatchObject({ type: 'invalid_request_error', code: 'not_found', param: null });
      expect(body.error.message).toContain(url);
    }
  });
});

describe('extension point', () => {
  it('registers extra plugins (where GET /metrics goes) under the same error handling', async () => {
    const withMetrics = await buildApiApp(fake, {
      plugins: [
        async (p) => {
          p.get('/metrics', async (_req, reply) => reply.type('text/plain').send('butterfly_up 1\n'));
          p.get('/boom', async () => {
            throw new Error('secret detail');
          });
        },
      ],
    });
    try {
      const metrics = await withMetrics.inject({ url: '/metrics' });
      expect([metrics.statusCode, metrics.body]).toEqual([200, 'butterfly_up 1\n']);
      const boom = await withMetrics.inject({ url: '/boom' });
      expect(boom.statusCode).toBe(500);
      expect(boom.json()).toEqual({ error: { message: 'internal server error', type: 'server_error', param: null, code: 'internal_error' } });
    } finally {
      await withMetrics.close();
    }
  });

  it('reports each finished completion to onCompletion', async () => {
    await complete({ prompt: [1, 2], max_tokens: 3 });
    expect(stats).toHaveLength(1);
    expect(stats[0]).toMatchObject({ stream: false, promptTokens: 2, completionTokens: 3, outcome: 'length' });
    expect(stats[0]!.firstTokenMs).toBeGreaterThanOrEqual(0);
    expect(stats[0]!.totalMs).toBeGreaterThanOrEqual(stats[0]!.firstTokenMs!);
  });
});

describe('POST /v1/completions', () => {
  it('completes a string prompt: text, finish reason, usage, OpenAI envelope', async () => {
    const { status, json } = await complete({ model: "whatever", prompt: "Once upon a time", temperature: 0, max_tokens: 100 });
    expect(status).toBe(200);
    const promptIds = fake.tokenizer.encode('Once upon a time', { addBos: fake.tokenizer.addBos });
    expect(fake.submitted[0]!.promptIds).toEqual(promptIds);
    expect(json.id).toMatch(/^cmpl-[0-9a-f]{32}$/);
    expect(json.id).toBe(fake.submitted[0]!.taskId);
    expect(json).toMatchObject({ object: 'text_completion', model: 'fake-llama' });
    expect(Math.abs(json.created - Date.now() / 1000)).toBeLessThan(5);
    expect(json.choices).toEqual([{ index: 0, text: FAKE_TEXT, logprobs: null, finish_reason: 'stop' }]);
    expect(json.usage).toEqual({ prompt_tokens: promptIds.length, completion_tokens: fake.script.length, total_tokens: promptIds.length + fake.script.length });
  });
});

describe('POST /v1/completions: parameters', () => {
  it('maps OpenAI defaults and the sampler extensions onto the task', async () => {
    expect((await complete({ prompt: 'x' })).status).toBe(200);
    expect(fake.submitted[0]).toMatchObject({
      maxTokens: 16, topLogprobs: 0, ignoreEos: false,
      sampler: { temperature: 1, topK: 0, topP: 1, minP: 0, repeatPenalty: 1, repeatLastN: 64, seed: 0 },
    });
    const body = { prompt: 'x', max_tokens: 5, temperature: 0.7, top_p: 0.9, top_k: 40, min_p: 0.05, repeat_penalty: 1.1, seed: 7, ignore_eos: true };
    expect((await complete(body)).status).toBe(200);
    expect(fake.submitted[1]).toMatchObject({
      maxTokens: 5, ignoreEos: true, sampler: { temperature: 0.7, topK: 40, topP: 0.9, minP: 0.05, repeatPenalty: 1.1, seed: 7 },
    });
  });

  it('treats null fields as not given (as OpenAI does)', async () => {
    const { status } = await complete({ prompt: 'x', temperature: null, max_tokens: null, stop: null, logprobs: null, seed: null, n: null });
    expect(status).toBe(200);
    expect(fake.submitted[0]).toMatchObject({ maxTokens: 16, topLogprobs: 0, sampler: { temperature: 1, seed: 0 } });
  });

  it('maps any integer seed onto the sampler\'s 32 bits', async () => {
    await complete({ prompt: 'x', seed: -1 });
    await complete({ prompt: 'x', seed: 2 ** 32 + 5 });
    expect(fake.submitted.map((t) => t.sampler.seed)).toEqual([2 ** 32 - 1, 5]);
  });

  it('feeds token-id prompts as given, and accepts one-element prompt arrays', async () => {
    await complete({ prompt: [5, 6, 7] });
    await complete({ prompt: [[8, 9]] });
    await complete({ prompt: ['Hi there'] });
    expect(fake.submitted.map((t) => t.promptIds)).toEqual([[5, 6, 7], [8, 9], fake.tokenizer.encode('Hi there', { addBos: fake.tokenizer.addBos })]);
  });

  it('stops at max_tokens with finish_reason "length"', async () => {
    const { json } = await complete({ prompt: 'x', max_tokens: 3 });
    expect(json.choices[0]).toMatchObject({ text: scriptText(3), finish_reason: 'length' });
    expect(json.usage!.completion_tokens).toBe(3);
  });

  it('renders end-of-generation tokens as no text (ignore_eos keeps going past them)', async () => {
    const n = fake.script.length + 2;
    const { json } = await complete({ prompt: 'x', max_tokens: n, ignore_eos: true });
    expect(json.choices[0]).toMatchObject({ text: FAKE_TEXT + scriptText(2), finish_reason: 'length' });
    expect(json.choices[0]!.text).not.toContain('</s>');
    expect(json.usage!.completion_tokens).toBe(n);
  });
});

describe('POST /v1/completions: streaming', () => {
  it('streams one SSE chunk per token that concatenate to the whole text, then [DONE]', async () => {
    const whole = await complete({ prompt: 'x', max_tokens: 100 });
    const { status, type, events } = await streamed({ prompt: 'x', max_tokens: 100 });
    expect(status).toBe(200);
    expect(type).toMatch(/^text\/event-stream/);
    expect(events.at(-1)).toBe('[DONE]');
    const chunks = events.slice(0, -1) as Completion[];
    // One chunk per generated token, plus the final one that carries finish_reason.
    expect(chunks).toHaveLength(fake.script.length + 1);
    expect(chunkTexts(events).join('')).toBe(whole.json.choices[0]!.text);
    for (const c of chunks.slice(0, -1)) {
      expect(c).toMatchObject({ id: chunks[0]!.id, object: 'text_completion', model: 'fake-llama' });
      expect(c.choices[0]!.finish_reason).toBeNull();
    }
    expect(chunks.at(-1)!.choices[0]!.finish_reason).toBe('stop');
  });

  it('never splits a UTF-8 character across chunks (byte-fallback tokens are held back)', async () => {
    const euroBytes = fake.script.filter((id) => fake.tokenizer.tokenBytes(id).length === 1 && fake.tokenizer.tokenBytes(id)[0]! >= 0x80);
    expect(euroBytes.length).toBe(3); // the test means something only if '€' really arrives as three tokens
    const texts = chunkTexts((await streamed({ prompt: 'x', max_tokens: 100 })).events);
    expect(texts.some((t) => t.includes('€'))).toBe(true);
    for (const t of texts) expect(t).not.toContain('\uFFFD');
  });

  it('adds a usage chunk when stream_options.include_usage is set', async () => {
    const { events } = await streamed({ prompt: [1, 2, 3], max_tokens: 4, stream_options: { include_usage: true } });
    const usageChunk = events.at(-2) as Completion;
    expect(usageChunk.choices).toEqual([]);
    expect(usageChunk.usage).toEqual({ prompt_tokens: 3, completion_tokens: 4, total_tokens: 7 });
  });
});

describe('POST /v1/completions: logprobs', () => {
  it('returns tokens, token_logprobs, top_logprobs and text_offset per generated token', async () => {
    const n = fake.script.length - 1; // no EOS, which has no entry
    const { json } = await complete({ prompt: 'x', max_tokens: 100, logprobs: 3 });
    expect(fake.submitted[0]!.topLogprobs).toBe(3);
    const lp = json.choices[0]!.logprobs!;
    expect(lp.tokens).toHaveLength(n);
    expect(lp.token_logprobs).toEqual(new Array(n).fill(-0.25));
    expect(lp.top_logprobs).toHaveLength(n);
    lp.top_logprobs.forEach((top, i) => {
      expect(Object.keys(top)).toHaveLength(3);
      expect(top[lp.tokens[i]!]).toBe(-0.25); // the sampled token is among its alternatives, under the same label
    });
    // Offsets index the text by code point; the byte pieces of '€' are labelled as OpenAI does.
    const text = [...json.choices[0]!.text];
    lp.tokens.forEach((t, i) => {
      if (t.startsWith('bytes:')) return;
      expect(text.slice(lp.text_offset[i]!, lp.text_offset[i]! + [...t].length).join('')).toBe(t);
    });
    expect(lp.tokens.filter((t) => t.startsWith('bytes:\\x'))).toHaveLength(3);
    expect(lp.text_offset).toEqual([...lp.text_offset].sort((a, b) => a - b));
  });

  it('with logprobs: 0 still reports the sampled token\'s logprob, with empty alternatives', async () => {
    const { json } = await complete({ prompt: 'x', max_tokens: 2, logprobs: 0 });
    expect(fake.submitted[0]!.topLogprobs).toBe(1);
    expect(json.choices[0]!.logprobs).toMatchObject({ token_logprobs: [-0.25, -0.25], top_logprobs: [{}, {}] });
  });

  it('streams one logprobs entry per chunk, matching the whole response', async () => {
    const whole = (await complete({ prompt: 'x', max_tokens: 100, logprobs: 2 })).json.choices[0]!.logprobs!;
    const chunks = (await streamed({ prompt: 'x', max_tokens: 100, logprobs: 2 })).events.slice(0, -1) as Completion[];
    const merged: Logprobs = { tokens: [], token_logprobs: [], top_logprobs: [], text_offset: [] };
    for (const c of chunks) {
      const lp = c.choices[0]!.logprobs;
      if (!lp) continue;
      expect(lp.tokens).toHaveLength(1);
      for (const k of Object.keys(merged) as Array<keyof Logprobs>) (merged[k] as unknown[]).push(...lp[k]);
    }
    expect(merged).toEqual(whole);
  });
});

describe('POST /v1/completions: stop sequences', () => {
  it('cuts the text before the first stop sequence, finishes with "stop" and cancels the task', async () => {
    const { json } = await complete({ prompt: 'x', max_tokens: 100, stop: ['nowhere', 'cat'] });
    expect(json.choices[0]).toMatchObject({ text: ' Hello world, the ', finish_reason: 'stop' });
    await until(() => fake.activeTasks === 0);
    expect(fake.cancelled).toEqual([fake.submitted[0]!.taskId]);
    expect(json.usage!.completion_tokens).toBeLessThan(fake.script.length);
  });

  it('finds a stop sequence that spans tokens, streamed or not, without leaking any of it', async () => {
    // Pick a stop made of the end of one token's text and the start of the next.
    const pieces = fake.script.map((id) => new TextDecoder().decode(fake.tokenizer.tokenBytes(id)));
    const i = pieces.findIndex((p, k) => k > 2 && p.length >= 2 && (pieces[k + 1] ?? '').length >= 2);
    const stop = pieces[i]!.slice(-2) + pieces[i + 1]!.slice(0, 2);
    const expected = FAKE_TEXT.slice(0, FAKE_TEXT.indexOf(stop));
    const whole = await complete({ prompt: 'x', max_tokens: 100, stop });
    expect(whole.json.choices[0]).toMatchObject({ text: expected, finish_reason: 'stop' });
    const { events } = await streamed({ prompt: 'x', max_tokens: 100, stop });
    expect(chunkTexts(events).join('')).toBe(expected);
    expect((events.at(-2) as Completion).choices[0]!.finish_reason).toBe('stop');
  });

  it('releases text held back as a possible stop sequence when the completion ends', async () => {
    const stop = 'today and tomorrow'; // "today" ends the text: held back, then released at the end
    const whole = await complete({ prompt: 'x', max_tokens: 100, stop });
    expect(whole.json.choices[0]).toMatchObject({ text: FAKE_TEXT, finish_reason: 'stop' });
    const { events } = await streamed({ prompt: 'x', max_tokens: 100, stop });
    expect(chunkTexts(events).join('')).toBe(FAKE_TEXT);
    expect(fake.cancelled).toEqual([]);
  });
});

describe('POST /v1/completions: refusals', () => {
  const cases: Array<[string, unknown, string | null, RegExp]> = [
    ['missing prompt', { max_tokens: 3 }, 'prompt', /missing required field 'prompt'/],
    ['body is an array', [1, 2], null, /body must be a JSON object/],
    ['prompt is a number', { prompt: 42 }, 'prompt', /prompt must be a string, an array of token ids/],
    ['two prompts', { prompt: ['a', 'b'] }, 'prompt', /array holding one string/],
    ['mixed prompt array', { prompt: [1, 'a'] }, 'prompt', /prompt must be/],
    ['empty string prompt', { prompt: '' }, 'prompt', /prompt is empty/],
    ['empty id prompt', { prompt: [] }, 'prompt', /prompt is empty/],
    ['negative token id', { prompt: [1, -2] }, 'prompt', /prompt must be/],
    ['fractional token id', { prompt: [1.5] }, 'prompt', /prompt must be/],
    ['token id beyond the vocabulary', { prompt: [1, 400] }, 'prompt', /token id 400 is outside the vocabulary \(ids 0\.\.399\)/],
    ['max_tokens 0', { prompt: 'x', max_tokens: 0 }, 'max_tokens', /max_tokens must be >= 1/],
    ['max_tokens as a string', { prompt: 'x', max_tokens: '16' }, 'max_tokens', /max_tokens must be integer/],
    ['temperature too high', { prompt: 'x', temperature: 2.5 }, 'temperature', /temperature must be <= 2/],
    ['top_p above 1', { prompt: 'x', top_p: 1.5 }, 'top_p', /top_p must be <= 1/],
    ['negative top_k', { prompt: 'x', top_k: -1 }, 'top_k', /top_k must be >= 0/],
    ['min_p above 1', { prompt: 'x', min_p: 2 }, 'min_p', /min_p must be <= 1/],
    ['repeat_penalty 0', { prompt: 'x', repeat_penalty: 0 }, 'repeat_penalty', /repeat_penalty must be > 0/],
    ['fractional seed', { prompt: 'x', seed: 1.5 }, 'seed', /seed must be integer/],
    ['stream as a string', { prompt: 'x', stream: 'yes' }, 'stream', /stream must be boolean/],
    ['logprobs above 20', { prompt: 'x', logprobs: 21 }, 'logprobs', /logprobs must be <= 20/],
    ['logprobs as a boolean', { prompt: 'x', logprobs: true }, 'logprobs', /logprobs must be integer/],
    ['empty stop', { prompt: 'x', stop: '' }, 'stop', /stop must be a string or an array/],
    ['too many stops', { prompt: 'x', stop: Array.from({ length: 17 }, (_, i) => `s${i}`) }, 'stop', /up to 16/],
    ['stop as a number', { prompt: 'x', stop: 3 }, 'stop', /stop must be/],
    ['echo', { prompt: 'x', echo: true }, 'echo', /echo is not supported/],
    ['n = 2', { prompt: 'x', n: 2 }, 'n', /only n = 1 is supported/],
    ['best_of = 3', { prompt: 'x', best_of: 3 }, 'best_of', /only best_of = 1/],
    ['suffix', { prompt: 'x', suffix: 'end' }, 'suffix', /suffix .* not supported/],
    ['presence_penalty', { prompt: 'x', presence_penalty: 0.5 }, 'presence_penalty', /not supported; use repeat_penalty/],
    ['logit_bias', { prompt: 'x', logit_bias: { '5': 10 } }, 'logit_bias', /logit_bias is not supported/],
  ];

  it.each(cases)('400 for %s', async (_name, body, param, message) => {
    const { status, json } = await complete(body);
    expect(status).toBe(400);
    expect(json.error.type).toBe('invalid_request_error');
    expect(json.error.param).toBe(param);
    expect(json.error.message).toMatch(message);
    expect(fake.submitted).toEqual([]);
  });

  it('400 for bodies that are not JSON, empty, or not JSON at all', async () => {
    const bad = [
      { payload: '{"prompt": "x",', type: 'application/json' },
      { payload: '', type: 'application/json' },
      { payload: 'prompt=x', type: 'text/plain' },
    ];
    for (const b of bad) {
      const res = await app.inject({ method: 'POST', url: '/v1/completions', payload: b.payload, headers: { 'content-type': b.type } });
      expect(res.statusCode, b.payload).toBeGreaterThanOrEqual(400);
      expect(res.statusCode, b.payload).toBeLessThan(500);
      expect((res.json() as ErrorBody).error).toMatchObject({ type: 'invalid_request_error' });
    }
    const invalidJson = await app.inject({ method: 'POST', url: '/v1/completions', payload: '{"prompt":', headers: { 'content-type': 'application/json' } });
    expect(invalidJson.statusCode).toBe(400);
    expect((invalidJson.json() as ErrorBody).error.code).toBe('invalid_json');
    expect(fake.submitted).toEqual([]);
  });

  it('400 context_length_exceeded for a prompt that fills the context', async () => {
    const { status, json } = await complete({ prompt: new Array(fake.contextLength).fill(5) });
    expect(status).toBe(400);
    expect(json.error).toMatchObject({ type: 'invalid_request_error', param: 'prompt', code: 'context_length_exceeded' });
    expect(json.error.message).toMatch(/64 tokens but the model's context holds 64/);
    expect((await complete({ prompt: new Array(fake.contextLength - 1).fill(5), max_tokens: 1 })).status).toBe(200);
  });

  it('maps the service\'s own RangeError to context_length_exceeded', async () => {
    fake.rangeErrorAt = 10;
    const { status, json } = await complete({ prompt: new Array(10).fill(5) });
    expect(status).toBe(400);
    expect(json.error.code).toBe('context_length_exceeded');
  });

  it('never answers a random body with a 5xx, and keeps serving', async () => {
    const field = fc.constantFrom('prompt', 'max_tokens', 'temperature', 'top_p', 'top_k', 'min_p', 'repeat_penalty', 'seed', 'stream', 'logprobs', 'stop', 'echo', 'n', 'stream_options', 'logit_bias', '__proto__', 'constructor');
    const value = fc.oneof(fc.jsonValue({ maxDepth: 2 }), fc.integer({ min: -3, max: 500 }), fc.constant('x'), fc.array(fc.nat(450), { maxLength: 4 }));
    await fc.assert(
      fc.asyncProperty(fc.dictionary(field, value, { maxKeys: 5 }), async (body) => {
        const res = await app.inject({ method: 'POST', url: '/v1/completions', payload: JSON.stringify({ ...body, max_tokens: undefined }), headers: { 'content-type': 'application/json' } });
        expect([200, 400]).toContain(res.statusCode);
        if (res.statusCode === 400) expect((res.json() as ErrorBody).error.message.length).toBeGreaterThan(0);
      }),
      { numRuns: 150 },
    );
    expect((await complete({ prompt: 'still here', max_tokens: 2 })).status).toBe(200);
  });
});

describe('POST /v1/completions: cluster failures', () => {
  it('survives a cluster that sends a token outside the vocabulary: 500, or an error event mid-stream', async () => {
    fake.script = [fake.script[0]!, fake.script[1]!, 9999];
    const whole = await complete({ prompt: 'x', max_tokens: 5 });
    expect(whole.status).toBe(500);
    expect(whole.json.error).toMatchObject({ type: 'server_error', code: 'internal_error' });
    const { events } = await streamed({ prompt: 'x', max_tokens: 5 });
    expect(events).toHaveLength(3);
    expect(events.at(-1)).toMatchObject({ error: { type: 'server_error', code: 'internal_error' } });
    await until(() => fake.activeTasks === 0); // the failed tasks were cancelled, not left running
    expect((await complete({ prompt: 'x', max_tokens: 2 })).status).toBe(200);
  });

  it('503 "cluster unavailable" when the cluster is not serving (task fails inside submit)', async () => {
    fake.phase = 'waiting';
    for (const stream of [false, true]) {
      const res = await app.inject({ method: 'POST', url: '/v1/completions', payload: { prompt: 'x', stream } });
      expect(res.statusCode).toBe(503);
      expect(res.headers['content-type']).toMatch(/^application\/json/);
      const body = res.json() as ErrorBody;
      expect(body.error).toMatchObject({ type: 'server_error', code: 'cluster_unavailable', param: null });
      expect(body.error.message).toMatch(/^cluster unavailable \(the cluster is waiting\)/);
    }
  });

  it('503 when the task fails before its first token', async () => {
    fake.failAfter = 0;
    const { status, json } = await complete({ prompt: 'x' });
    expect(status).toBe(503);
    expect(json.error.code).toBe('cluster_unavailable');
  });

  it('503 when the task fails mid-way in a whole response', async () => {
    fake.failAfter = 3;
    const { status, json } = await complete({ prompt: 'x', max_tokens: 10 });
    expect(status).toBe(503);
    expect(json.error.message).toMatch(/failed after 3 token/);
  });

  it('ends a stream with an error event (and no [DONE]) when the task fails after tokens', async () => {
    fake.failAfter = 3;
    const { status, events } = await streamed({ prompt: 'x', max_tokens: 10 });
    expect(status).toBe(200);
    expect(events).toHaveLength(4);
    expect(chunkTexts(events).join('')).toBe(scriptText(3));
    expect(events.at(-1)).toMatchObject({ error: { type: 'server_error', code: 'cluster_unavailable' } });
    expect(stats.at(-1)).toMatchObject({ outcome: 'error', completionTokens: 3, stream: true });
  });
});

/**
 * Over a real socket: the official `openai` client, and global fetch where a test needs the raw stream.
 */
describe('over a real port', () => {
  let server: ApiServer;
  beforeEach(async () => {
    server = await startApiServer(fake, { host: '127.0.0.1', port: 0, onCompletion: (s) => stats.push(s) });
  });
  afterEach(async () => {
    await server.close();
  });

  it('the official openai client: whole completion', async () => {
    expect(server.url).toBe(`http://127.0.0.1:${server.port}`);
    const client = new OpenAI({ baseURL: `${server.url}/v1`, apiKey: 'unused', maxRetries: 0 });
    const c = await client.completions.create({ model: 'fake-llama', prompt: 'Say hi', max_tokens: 50 });
    expect(c.choices[0]).toMatchObject({ text: FAKE_TEXT, finish_reason: 'stop' });
    expect(c.usage?.completion_tokens).toBeGreaterThan(0);
  });

  it('the official openai client: streamed completion', async () => {
    const client = new OpenAI({ baseURL: `${server.url}/v1`, apiKey: 'unused', maxRetries: 0 });
    const stream = await client.completions.create({ model: 'fake-llama', prompt: 'Say hi', max_tokens: 50, stream: true });
    let text = '';
    let finish: string | null = null;
    for await (const chunk of stream) {
      text += chunk.choices[0]?.text ?? '';
      finish = chunk.choices[0]?.finish_reason ?? finish;
    }
    expect(text).toBe(FAKE_TEXT);
    expect(finish).toBe('stop');
  });

  it('cancels the task when a streaming client disconnects', async () => {
    fake.tokenDelayMs = 20;
    fake.script = fake.script.slice(0, -1); // no EOS: the task would run to max_tokens
    const ctl = new AbortController();
    const res = await fetch(`${server.url}/v1/completions`, {
      method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ prompt: 'x', max_tokens: 1000, stream: true }), signal: ctl.signal,
    });
    const reader = res.body!.getReader();
    const first = await reader.read();
    expect(new TextDecoder().decode(first.value)).toMatch(/^data: /);
    ctl.abort();
    await until(() => fake.cancelled.length === 1);
    expect(fake.cancelled).toEqual([fake.submitted[0]!.taskId]);
    expect(fake.activeTasks).toBe(0);
    await until(() => stats.length === 1);
    expect(stats[0]).toMatchObject({ outcome: 'cancelled', stream: true });
    expect(stats[0]!.completionTokens).toBeGreaterThanOrEqual(1);
  });

  it('cancels the task when a client waiting for a whole response disconnects', async () => {
    fake.tokenDelayMs = 20;
    fake.script = fake.script.slice(0, -1);
    const ctl = new AbortController();
    const pending = fetch(`${server.url}/v1/completions`, {
      method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ prompt: 'x', max_tokens: 1000 }), signal: ctl.signal,
    }).catch((e: Error) => e);
    await until(() => fake.submitted.length === 1);
    ctl.abort();
    expect(await pending).toBeInstanceOf(Error);
    await until(() => fake.cancelled.length === 1);
    expect(fake.activeTasks).toBe(0);
  });

  it('close() ends open streams instead of waiting for them (and their tasks are cancelled)', async () => {
    fake.tokenDelayMs = 20;
    fake.script = fake.script.slice(0, -1);
    const res = await fetch(`${server.url}/v1/completions`, {
      method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ prompt: 'x', max_tokens: 1000, stream: true }),
    });
    await res.body!.getReader().read();
    await server.close();
    // Had close() waited for the stream, the task would have run to max_tokens instead of being cancelled.
    await until(() => fake.cancelled.length === 1);
  });
});
