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
