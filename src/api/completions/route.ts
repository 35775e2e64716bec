/**
 * POST /v1/completions: validate, submit to the cluster, and answer whole or as Server-Sent Events. Both modes run
 * the same loop over the task's events (drive), so they produce the same text, logprobs and finish reason.
 */
import { randomUUID } from 'node:crypto';
import type { FastifyPluginAsync, FastifyReply } from 'fastify';
import type { InferenceService } from '../../cluster/coordinator/service.js';
import type { Logger } from '../../cluster/log.js';
import { ApiError } from '../errors.js';
import { contextExceeded, parseCompletionRequest, type CompletionRequest } from './request.js';
import { completionBodySchema, stripNulls, type CompletionBody } from './schema.js';
import { SseWriter } from './sse.js';
import { TaskFeed } from './task.js';
import { appendLogprobs, CompletionAssembler, emptyLogprobs, type CompletionLogprobs, type TokenStep } from './text.js';

export type CompletionOutcome = 'stop' | 'length' | 'error' | 'cancelled';

/** What one completion did; the hook the lead's metrics plugin can count from. */
export interface CompletionStats {
  readonly id: string;
  readonly stream: boolean;
  readonly promptTokens: number;
  readonly completionTokens: number;
  readonly outcome: CompletionOutcome;
  /** Milliseconds from submit to the first generated token (null when none came). */
  readonly firstTokenMs: number | null;
  readonly totalMs: number;
}

export interface CompletionsRouteOptions {
  readonly service: InferenceService;
  readonly logger: Logger;
  readonly onCompletion?: (stats: CompletionStats) => void;
}

type Outcome =
  | { readonly kind: 'done'; readonly finishReason: 'stop' | 'length'; readonly tail: string }
  | { readonly kind: 'failed'; readonly message: string }
  | { readonly kind: 'client-gone' };

interface Run {
  readonly id: string;
  readonly created: number;
  readonly model: string;
  readonly req: CompletionRequest;
  readonly feed: TaskFeed;
  readonly started: number;
  completionTokens: number;
  firstTokenMs: number | null;
  clientGone: boolean;
}

function unavailable(service: InferenceService): ApiError {
  let phase = '';
  try {
    phase = ` (the cluster is ${service.status().phase})`;
  } catch {
    // status() is diagnostics only; the 503 stands without it.
  }
  return new ApiError(503, `cluster unavailable${phase}: the task could not run; try again later`, null, 'cluster_unavailable');
}

/** Pull the task's events through the text assembler until it ends; `onStep` sees every token's output. */
async function drive(run: Run, asm: CompletionAssembler, onStep: (step: TokenStep) => Promise<void>): Promise<Outcome> {
  for (;;) {
    const e = await run.feed.next();
    if (run.clientGone) return { kind: 'client-gone' };
    if (e.type === 'token') {
      run.completionTokens++;
      run.firstTokenMs ??= performance.now() - run.started;
      const step = asm.push(e.token, e.logprobs);
      await onStep(step);
      if (step.stopped) {
        run.feed.cancel();
        return { kind: 'done', finishReason: 'stop', tail: '' };
      }
      continue;
    }
    // 'cancelled' here was not our doing (we return before it on a stop sequence or a gone client): a failure.
    if (e.reason === 'error' || e.reason === 'cancelled') {
      const why = e.reason === 'error' ? 'failed' : 'was cancelled by the cluster';
      return { kind: 'failed', message: `the task ${why} after ${run.completionTokens} token(s)` };
    }
    const end = asm.finish();
    return { kind: 'done', finishReason: end.stopped ? 'stop' : e.reason, tail: end.text };
  }
}

function usage(run: Run): { prompt_tokens: number; completion_tokens: number; total_tokens: number } {
  const p = run.req.promptIds.length;
  return { prompt_tokens: p, completion_tokens: run.completionTokens, total_tokens: p + run.completionTokens };
}

function envelope(run: Run, text: string, logprobs: CompletionLogprobs | null, finishReason: 'stop' | 'length' | null): Record<string, unknown> {
  return {
    id: run.id, object: 'text_completion', created: run.created, model: run.model,
    choices: [{ index: 0, text, logprobs, finish_reason: finishReason }],
  };
}

async function whole(service: InferenceService, run: Run): Promise<Outcome & { body?: Record<string, unknown> }> {
  const asm = new CompletionAssembler(service.tokenizer, run.req.stop, run.req.logprobs);
  let text = '';
  const lp = run.req.logprobs === null ? null : emptyLogprobs();
  const out = await drive(run, asm, async (step) => {
    text += step.text;
    if (lp && step.logprobs) appendLogprobs(lp, step.logprobs);
  });
  if (out.kind === 'failed') throw run.completionTokens === 0 ? unavailable(service) : new ApiError(503, `cluster unavailable: ${out.message}`, null, 'cluster_unavailable');
  if (out.kind !== 'done') return out;
  return { ...out, body: { ...envelope(run, text + out.tail, lp, out.finishReason), usage: usage(run) } };
}

async function stream(service: InferenceService, run: Run, reply: FastifyReply, logger: Logger): Promise<Outcome> {
  const asm = new CompletionAssembler(service.tokenizer, run.req.stop, run.req.logprobs);
  const sse = new SseWriter(reply);
  let out: Outcome;
  try {
    out = await drive(run, asm, (step) => sse.send(envelope(run, step.text, step.logprobs, null)));
  } catch (err) {
    // Before the first chunk fastify's error handler can still answer; after it, only the stream can say it.
    if (!sse.isOpen) throw err;
    logger.error(`completion ${run.id} failed mid-stream: ${(err as Error).stack ?? String(err)}`);
    await sse.send(new ApiError(500, 'internal server error', null, 'internal_error').toJSON());
    sse.end();
    return { kind: 'failed', message: 'internal error' };
  }
  if (out.kind === 'failed') {
    // Nothing sent yet: a plain 503, as for a whole response. Otherwise the status is long gone; say it in-stream.
    if (!sse.isOpen) throw unavailable(service);
    await sse.send(new ApiError(503, `cluster unavailable: ${out.message}`, null, 'cluster_unavailable').toJSON());
    sse.end();
    return out;
  }
  if (out.kind === 'client-gone') {
    sse.end();
    return out;
  }
  await sse.send(envelope(run, out.tail, null, out.finishReason));
  if (run.req.includeUsage) await sse.send({ ...envelope(run, '', null, null), choices: [], usage: usage(run) });
  await sse.done();
  return out;
}

export function completionsRoute(opts: CompletionsRouteOptions): FastifyPluginAsync {
  const { service, logger } = opts;
  return async (app) => {
    app.post(
      '/v1/completions',
      {
        schema: { body: completionBodySchema },
        preValidation: async (request) => {
          request.body = stripNulls(request.body);
        },
      },
      async (request, reply) => {
        const req = parseCompletionRequest(request.body as CompletionBody, service.tokenizer, service.contextLength);
        const id = `cmpl-${randomUUID().replaceAll('-', '')}`;
        const started = performance.now();
        let feed: TaskFeed;
        try {
          feed = new TaskFeed(service, id, req);
        } catch (err) {
          if (err instanceof RangeError) throw contextExceeded(req.promptIds.length, service.contextLength, err.message);
          throw err;
        }
        const run: Run = {
          id, created: Math.floor(Date.now() / 1000), model: service.modelName, req, feed, started,
          completionTokens: 0, firstTokenMs: null, clientGone: false,
        };
        // A client that hangs up before the end no longer wants the tokens: free the cluster's slot.
        // (The response's 'close', not the request's: the request closes as soon as its body has been read.)
        reply.raw.on('close', () => {
          if (reply.raw.writableFinished) return;
          run.clientGone = true;
          feed.cancel();
        });
        let outcome: CompletionOutcome = 'error';
        try {
          const out = req.stream ? await stream(service, run, reply, logger) : await whole(service, run);
          outcome = out.kind === 'done' ? out.finishReason : out.kind === 'client-gone' ? 'cancelled' : 'error';
          // Streams answered on the hijacked socket; a gone client needs no answer (fastify sends none then).
          return 'body' in out ? out.body : undefined;
        } finally {
          feed.cancel();
          opts.onCompletion?.({
            id, stream: req.stream, promptTokens: req.promptIds.length, completionTokens: run.completionTokens, outcome,
            firstTokenMs: run.firstTokenMs, totalMs: performance.now() - started,
          });
        }
      },
    );
  };
}
