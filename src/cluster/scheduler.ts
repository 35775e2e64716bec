/**
 * Continuous batching, as a pure state machine over tasks (no IO, no clock): requests join and leave between steps,
 * every step packs one token per decoding sequence plus prompt chunks of prefilling ones, and up to `maxInFlight`
 * micro-batches travel the pipeline at once so every stage stays busy. A task is in at most one micro-batch at a
 * time (its next token depends on the previous one). What a task produces depends only on its own prompt, sampler
 * and the engine — never on its batch mates — because the engine computes each row independently.
 */
import { Sampler, topLogprobs, type SamplerParams, type TokenLogprob } from '../engine/sampler.js';

export interface TaskInput {
  readonly taskId: string;
  readonly promptIds: readonly number[];
  readonly maxTokens: number;
  readonly sampler: SamplerParams;
  readonly topLogprobs: number;
  readonly ignoreEos: boolean;
}

export interface SchedulerConfig {
  readonly maxInFlight: number;
  readonly maxBatchTokens: number;
  readonly prefillChunkTokens: number;
  readonly maxActiveSequences: number;
  readonly contextLength: number;
  readonly eogIds: ReadonlySet<number>;
}

export interface BatchRow {
  readonly taskId: string;
  /** index into the batch's logit rows, or -1 when this chunk produces no logits (mid-prompt) */
  readonly logitIndex: number;
}

/** What the last stage needs to sample a logit row itself (see transport SamplingSpec). */
export interface RowSampling {
  readonly sampler: readonly number[];
  readonly recent: readonly number[];
  readonly topLogprobs: number;
}

/** A logit row sampled on the last stage. */
export interface SampledRow {
  readonly token: number;
  readonly rngState: number;
  readonly logprobs: TokenLogprob[] | null;
}

export interface MicroBatch {
  readonly batchId: number;
  /** One per logit row, in logitRows order. */
  readonly sampling: readonly RowSampling[];
  readonly seqIds: Int32Array;
  readonly positions: Int32Array;
  readonly tokens: Int32Array;
  readonly logitRows: Int32Array;
  readonly rows: readonly BatchRow[];
}

export type FinishReason = 'stop' | 'length' | 'cancelled' | 'error';

export type TaskEvent =
  | { readonly type: 'admitted'; readonly taskId: string; readonly seqId: number }
  | { readonly type: 'dispatched'; readonly taskId: string; readonly batchId: number }
  | { readonly type: 'token'; readonly taskId: string; readonly token: number; readonly index: number; readonly logprobs: TokenLogprob[] | null }
  | { readonly type: 'finished'; readonly taskId: string; readonly seqId: number; readonly reason: FinishReason; readonly tokens: readonly number[] };

interface TaskRun {
  readonly input: TaskInput;
  readonly seqId: number;
  sampler: Sampler;
  readonly generated: number[];
  /** prompt tokens already sent through the pipeline */
  prefilled: number;
  /** the token to feed next (last sampled), once the prompt is done */
  pending: number | null;
  inFlight: number | null;
  dispatchedOnce: boolean;
}

export class BatchScheduler {
  private readonly queue: TaskInput[] = [];
  private readonly active = new Map<string, TaskRun>();
  private readonly inFlight = new Map<number, MicroBatch>();
  private readonly freeSeqIds: number[] = [];
  private nextSeqId = 0;
  private nextBatchId = 1;

  constructor(readonly cfg: SchedulerConfig) {}

  get queuedCount(): number {
    return this.queue.length;
  }

  get activeCount(): number {
    return this.active.size;
  }

  get inFlightCount(): number {
    return this.inFlight.size;
  }

  /** Tasks currently running, with their sequence slot (for KV cache bookkeeping and status). */
  activeTasks(): Array<{ taskId: string; seqId: number; generated: number; prefilled: number }> {
    return [...this.active.values()].map((r) => ({ taskId: r.input.taskId, seqId: r.seqId, generated: r.generated.length, prefilled: r.prefilled }));
  }

  submit(task: TaskInput): TaskEvent[] {
    if (task.promptIds.length === 0) throw new RangeError('the prompt is empty');
    if (task.promptIds.length >= this.cfg.contextLength) {
      throw new RangeError(`the prompt has ${task.promptIds.length} tokens but the context holds ${this.cfg.contextLength}`);
    }
    if (this.active.has(task.taskId) || this.queue.some((q) => q.taskId === task.taskId)) throw new Error(`duplicate task id ${task.taskId}`);
    this.queue.push(task);
    return this.admit();
  }

  /** Cancel a task; if it is in flight its result is discarded when it returns. */
  cancel(taskId: string): TaskEvent[] {
    const qi = this.queue.findIndex((q) => q.taskId === taskId);
    if (qi >= 0) {
      this.queue.splice(qi, 1);
      return [{ type: 'finished', taskId, seqId: -1, reason: 'cancelled', tokens: [] }];
    }
    const run = this.active.get(taskId);
    if (!run) return [];
    return [this.finish(run, 'cancelled'), ...this.admit()];
  }

  /** The next micro-batch to send, or null when no slot is free or nothing is ready. */
  nextBatch(): { batch: MicroBatch; events: TaskEvent[] } | null {
    if (this.inFlight.size >= this.cfg.maxInFlight) return null;
    const ready = [...this.active.values()].filter((r) => r.inFlight === null);
    if (ready.length === 0) return null;
    // Spread sequences over the in-flight slots so the pipeline's stages all have work.
    const maxSeqs = Math.max(1, Math.ceil(this.active.size / this.cfg.maxInFlight));
    const seqIds: number[] = [];
    const positions: number[] = [];
    const tokens: number[] = [];
    const logitRows: number[] = [];
    const rows: BatchRow[] = [];
    const sampling: RowSampling[] = [];
    const members: TaskRun[] = [];
    let budget = this.cfg.maxBatchTokens;
    // Decoding sequences first (one token each, latency-critical), then prompt chunks.
    ready.sort((a, b) => Number(a.pending === null) - Number(b.pending === null));
    for (const run of ready) {
      if (members.length >= maxSeqs || budget <= 0) break;
      const prompt = run.input.promptIds;
      if (run.prefilled < prompt.length) {
        const n = Math.min(prompt.length - run.prefilled, this.cfg.prefillChunkTokens, budget);
        for (let i = 0; i < n; i++) {
          seqIds.push(run.seqId);
          positions.push(run.prefilled + i);
          tokens.push(prompt[run.prefilled + i]!);
        }
        const done = run.prefilled + n === prompt.length;
        if (done) {
          logitRows.push(tokens.length - 1);
          sampling.push(this.rowSampling(run));
        }
        rows.push({ taskId: run.input.taskId, logitIndex: done ? logitRows.length - 1 : -1 });
        run.prefilled += n;
        budget -= n;
      } else if (run.pending !== null) {
        seqIds.push(run.seqId);
        positions.push(prompt.length + run.generated.length - 1);
        tokens.push(run.pending);
        logitRows.push(tokens.length - 1);
        sampling.push(this.rowSampling(run));
        rows.push({ taskId: run.input.taskId, logitIndex: logitRows.length - 1 });
        budget -= 1;
      } else {
        continue;
      }
      members.push(run);
    }
    if (members.length === 0) return null;
    const batch: MicroBatch = {
      batchId: this.nextBatchId++,
      seqIds: Int32Array.from(seqIds),
      positions: Int32Array.from(positions),
      tokens: Int32Array.from(tokens),
      logitRows: Int32Array.from(logitRows),
      rows,
      sampling,
    };
    const events: TaskEvent[] = [];
    for (const run of members) {
      run.inFlight = batch.batchId;
      if (!run.dispatchedOnce) {
        run.dispatchedOnce = true;
        events.push({ type: 'dispatched', taskId: run.input.taskId, batchId: batch.batchId });
      }
    }
    this.inFlight.set(batch.batchId, batch);
    return { batch, events };
  }

  /** Logits (logitRows.length × vocab) came back for a batch: sample here and advance its tasks. */
  complete(batchId: number, logits: Float32Array, vocabSize: number): TaskEvent[] {
    const batch = this.inFlight.get(batchId);
    if (!batch) throw new Error(`result for unknown batch ${batchId}`);
    if (logits.length !== batch.logitRows.length * vocabSize) {
      throw new Error(`batch ${batchId}: expected ${batch.logitRows.length}×${vocabSize} logits, got ${logits.length} values`);
    }
    return this.advance(batch, (run, logitIndex) => {
      const l = logits.subarray(logitIndex * vocabSize, (logitIndex + 1) * vocabSize);
      const token = run.sampler.sample(l, this.recentTokens(run));
      return { token, logprobs: run.input.topLogprobs > 0 ? topLogprobs(l, run.input.topLogprobs) : null };
    });
  }

  /**
   * The last stage sampled the batch's rows itself (with the specs in batch.sampling): adopt its tokens and advance
   * each task's sampler to the returned PRNG state — the same state sampling here would have left.
   */
  completeSampled(batchId: number, rows: readonly SampledRow[]): TaskEvent[] {
    const batch = this.inFlight.get(batchId);
    if (!batch) throw new Error(`result for unknown batch ${batchId}`);
    if (rows.length !== batch.logitRows.length) throw new Error(`batch ${batchId}: expected ${batch.logitRows.length} sampled rows, got ${rows.length}`);
    return this.advance(batch, (run, logitIndex) => {
      const r = rows[logitIndex]!;
      run.sampler = new Sampler(run.sampler.params, r.rngState);
      return { token: r.token, logprobs: run.input.topLogprobs > 0 ? r.logprobs : null };
    });
  }

  private advance(batch: MicroBatch, pick: (run: TaskRun, logitIndex: number) => { token: number; logprobs: TokenLogprob[] | null }): TaskEvent[] {
    this.inFlight.delete(batch.batchId);
    const events: TaskEvent[] = [];
    for (const row of batch.rows) {
      const run = this.active.get(row.taskId);
      if (!run || run.inFlight !== batch.batchId) continue; // cancelled meanwhile
      run.inFlight = null;
      if (row.logitIndex < 0) continue;
      const { token, logprobs } = pick(run, row.logitIndex);
      run.generated.push(token);
      events.push({ type: 'token', taskId: row.taskId, token, index: run.generated.length - 1, logprobs });
      const total = run.input.promptIds.length + run.generated.length;
      if (!run.input.ignoreEos && this.cfg.eogIds.has(token)) events.push(this.finish(run, 'stop'));
      else if (run.generated.length >= run.input.maxTokens || total >= this.cfg.contextLength) events.push(this.finish(run, 'length'));
      else run.pending = token;
    }
    events.push(...this.admit());
    return events;
  }

  /** The tokens the repetition penalty may look at: the last repeatLastN of prompt + generated. */
  private recentTokens(run: TaskRun): number[] {
    const n = run.sampler.params.repeatLastN;
    const g = run.generated;
    if (g.length >= n) return g.slice(g.length - n);
    const p = run.input.promptIds;
    return p.slice(Math.max(0, p.length - (n - g.length))).concat(g);
  }

  private rowSampling(run: TaskRun): RowSampling {
    return { sampler: run.sampler.toWire(), recent: this.recentTokens(run), topLogprobs: run.input.topLogprobs };
  }

  /** A batch was lost (stage failure): its tasks fail (recovery arrives with checkpoints). */
  failBatch(batchId: number): TaskEvent[] {
    const batch = this.inFlight.get(batchId);
    if (!batch) return [];
    this.inFlight.delete(batchId);
    const events: TaskEvent[] = [];
    for (const row of batch.rows) {
      const run = this.active.get(row.taskId);
      if (run && run.inFlight === batchId) events.push(this.finish(run, 'error'));
    }
    events.push(...this.admit());
    return events;
  }

  /** Fail everything (pipeline gone). */
  failAll(): TaskEvent[] {
    const events: TaskEvent[] = [];
    for (const run of [...this.active.values()]) events.push(this.finish(run, 'error'));
    for (const q of this.queue.splice(0)) events.push({ type: 'finished', taskId: q.taskId, seqId: -1, reason: 'error', tokens: [] });
    this.inFlight.clear();
    return events;
  }

  private finish(run: TaskRun, reason: FinishReason): TaskEvent {
    this.active.delete(run.input.taskId);
    this.freeSeqIds.push(run.seqId);
    return { type: 'finished', taskId: run.input.taskId, seqId: run.seqId, reason, tokens: run.generated.slice() };
  }

  private admit(): TaskEvent[] {
    const events: TaskEvent[] = [];
    while (this.queue.length > 0 && this.active.size < this.cfg.maxActiveSequences) {
      const input = this.queue.shift()!;
      // Lowest free slot first, so sequence ids stay small and reuse is predictable.
      this.freeSeqIds.sort((a, b) => a - b);
      const seqId = this.freeSeqIds.length > 0 ? this.freeSeqIds.shift()! : this.nextSeqId++;
      this.active.set(input.taskId, {
        input, seqId, sampler: new Sampler(input.sampler), generated: [], prefilled: 0, pending: null, inFlight: null, dispatchedOnce: false,
      });
      events.push({ type: 'admitted', taskId: input.taskId, seqId });
    }
    return events;
  }
}
