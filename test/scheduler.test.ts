/**
 * BatchScheduler unit tests: admission, chunking, ordering, in-flight limits, cancellation, stop rules, sequence
 * slots, failures — plus a randomized model check of its structural invariants under any interleaving.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { BatchScheduler, type MicroBatch, type SchedulerConfig, type TaskEvent, type TaskInput } from '../src/cluster/scheduler.js';
import { SplitMix32 } from '../src/engine/prng.js';
import { GREEDY } from './sim/scenario.js';

const V = 8;
const EOG = 0;

function config(over: Partial<SchedulerConfig> = {}): SchedulerConfig {
  return { maxInFlight: 1, maxBatchTokens: 64, prefillChunkTokens: 64, maxActiveSequences: 4, contextLength: 64, eogIds: new Set([EOG]), ...over };
}

/** A greedy task whose prompt is `prompt` tokens long (ids 1, 2, …) or the given ids. */
function task(taskId: string, prompt: number | number[], over: Partial<TaskInput> = {}): TaskInput {
  const promptIds = typeof prompt === 'number' ? Array.from({ length: prompt }, (_, i) => 1 + (i % (V - 1))) : prompt;
  return { taskId, promptIds, maxTokens: 8, sampler: GREEDY, topLogprobs: 0, ignoreEos: false, ...over };
}

/** Logits for every logit row of `b` under which greedy sampling picks `token` (one per row, or the same for all). */
function logitsPicking(b: MicroBatch, token: number | readonly number[]): Float32Array {
  const out = new Float32Array(b.logitRows.length * V);
  for (let r = 0; r < b.logitRows.length; r++) out[r * V + (typeof token === 'number' ? token : token[r]!)] = 1;
  return out;
}

function next(s: BatchScheduler): { batch: MicroBatch; events: TaskEvent[] } {
  const n = s.nextBatch();
  if (!n) throw new Error('expected a batch');
  return n;
}

/** Per row: which task, and the positions it covers. */
function layout(b: MicroBatch): Array<{ taskId: string; positions: number[]; logits: boolean }> {
  let t = 0;
  const seqOf = (i: number): number => b.seqIds[i]!;
  return b.rows.map((row) => {
    const seq = seqOf(t);
    const positions: number[] = [];
    while (t < b.seqIds.length && seqOf(t) === seq && (positions.length === 0 || b.positions[t] === positions[positions.length - 1]! + 1)) positions.push(b.positions[t++]!);
    return { taskId: row.taskId, positions, logits: row.logitIndex >= 0 };
  });
}

const types = (events: readonly TaskEvent[]): string[] => events.map((e) => `${e.type}:${e.taskId}`);

describe('BatchScheduler', () => {
  it('admits at most maxActiveSequences tasks; the rest wait in order and take freed slots', () => {
    const s = new BatchScheduler(config({ maxActiveSequences: 2 }));
    expect(types(s.submit(task('a', 2)))).toEqual(['admitted:a']);
    expect(types(s.submit(task('b', 2)))).toEqual(['admitted:b']);
    expect(s.submit(task('c', 2))).toEqual([]);
    expect(s.submit(task('d', 2))).toEqual([]);
    expect([s.activeCount, s.queuedCount]).toEqual([2, 2]);
    const events = s.cancel('a');
    expect(types(events)).toEqual(['finished:a', 'admitted:c']);
    expect(events[1]).toMatchObject({ type: 'admitted', taskId: 'c', seqId: 0 });
    expect([s.activeCount, s.queuedCount]).toEqual([2, 1]);
  });

  it('refuses empty, over-long and duplicate prompts at submission', () => {
    const s = new BatchScheduler(config({ contextLength: 10, maxActiveSequences: 1 }));
    expect(() => s.submit(task('e', []))).toThrow(RangeError);
    expect(() => s.submit(task('long', 10))).toThrow(/context holds 10/);
    s.submit(task('a', 9));
    s.submit(task('q', 1));
    expect(() => s.submit(task('a', 1))).toThrow(/duplicate/);
    expect(() => s.submit(task('q', 1))).toThrow(/duplicate/); // also while queued
  });

  it('prefills in chunks of prefillChunkTokens, producing logits only for the last chunk', () => {
    const s = new BatchScheduler(config({ prefillChunkTokens: 4 }));
    s.submit(task('a', 10));
    const seen: Array<ReturnType<typeof layout>[number]> = [];
    for (let i = 0; i < 3; i++) {
      const { batch } = next(s);
      seen.push(...layout(batch));
      expect(batch.logitRows.length).toBe(i < 2 ? 0 : 1);
      expect(s.complete(batch.batchId, logitsPicking(batch, 3), V).map((e) => e.type)).toEqual(i < 2 ? [] : ['token']);
    }
    expect(seen).toEqual([
      { taskId: 'a', positions: [0, 1, 2, 3], logits: false },
      { taskId: 'a', positions: [4, 5, 6, 7], logits: false },
      { taskId: 'a', positions: [8, 9], logits: true },
    ]);
    // Then one decode token per step, at the next position, carrying the sampled token.
    const { batch } = next(s);
    expect([...batch.positions, ...batch.tokens, ...batch.logitRows]).toEqual([10, 3, 0]);
  });

  it('never puts more than maxBatchTokens tokens in a batch, splitting prompts across batches', () => {
    const s = new BatchScheduler(config({ maxBatchTokens: 6, prefillChunkTokens: 8 }));
    s.submit(task('a', 5));
    s.submit(task('b', 5));
    const first = next(s).batch;
    expect(layout(first)).toEqual([
      { taskId: 'a', positions: [0, 1, 2, 3, 4], logits: true },
      { taskId: 'b', positions: [0], logits: false },
    ]);
    s.complete(first.batchId, logitsPicking(first, 2), V);
    const second = next(s).batch;
    expect(layout(second)).toEqual([
      { taskId: 'a', positions: [5], logits: true },
      { taskId: 'b', positions: [1, 2, 3, 4], logits: true },
    ]);
    expect(second.tokens.length).toBeLessThanOrEqual(6);
  });

  it('puts decoding sequences before prompt chunks', () => {
    // maxInFlight 2 with two tasks allows one sequence per batch, so the order decides who goes.
    const s = new BatchScheduler(config({ maxInFlight: 2, prefillChunkTokens: 4 }));
    s.submit(task('long', 8));
    s.submit(task('short', 1));
    const a = next(s).batch; // long's first chunk
    const b = next(s).batch; // short's whole prompt
    expect([layout(a)[0]!.taskId, layout(b)[0]!.taskId]).toEqual(['long', 'short']);
    s.complete(b.batchId, logitsPicking(b, 5), V);
    s.complete(a.batchId, logitsPicking(a, 5), V);
    // long (inserted first) still has prompt left; short is decoding: short goes first.
    const c = next(s).batch;
    expect(layout(c)).toEqual([{ taskId: 'short', positions: [1], logits: true }]);
    expect(layout(next(s).batch)).toEqual([{ taskId: 'long', positions: [4, 5, 6, 7], logits: true }]);
  });

  it('keeps at most maxInFlight batches in flight and each task in at most one', () => {
    const s = new BatchScheduler(config({ maxInFlight: 2 }));
    for (const id of ['a', 'b', 'c', 'd']) s.submit(task(id, 3));
    const x = next(s).batch;
    const y = next(s).batch;
    expect(s.nextBatch()).toBeNull();
    expect(s.inFlightCount).toBe(2);
    const inX = layout(x).map((r) => r.taskId);
    const inY = layout(y).map((r) => r.taskId);
    expect([...inX, ...inY].sort()).toEqual(['a', 'b', 'c', 'd']); // spread over the slots, none twice
    s.complete(x.batchId, logitsPicking(x, 4), V);
    const z = next(s).batch;
    expect(layout(z).map((r) => r.taskId)).toEqual(inX); // y's tasks are still in flight
    expect(s.nextBatch()).toBeNull();

    const one = new BatchScheduler(config({ maxInFlight: 4 }));
    one.submit(task('solo', 3));
    next(one);
    expect(one.nextBatch()).toBeNull(); // a free slot, but the only task awaits its result
  });

  it('emits dispatched once per task, on its first batch', () => {
    const s = new BatchScheduler(config({ prefillChunkTokens: 2 }));
    s.submit(task('a', 3));
    const first = next(s);
    expect(types(first.events)).toEqual(['dispatched:a']);
    s.complete(first.batch.batchId, logitsPicking(first.batch, 2), V);
    expect(next(s).events).toEqual([]);
  });

  it('discards the result of a task cancelled while in flight, and its batch mates carry on', () => {
    const s = new BatchScheduler(config());
    s.submit(task('a', 2));
    s.submit(task('b', 3));
    const { batch } = next(s);
    expect(layout(batch).map((r) => r.taskId)).toEqual(['a', 'b']);
    expect(s.cancel('a')).toEqual([{ type: 'finished', taskId: 'a', seqId: 0, reason: 'cancelled', tokens: [] }]);
    const events = s.complete(batch.batchId, logitsPicking(batch, 5), V);
    expect(types(events)).toEqual(['token:b']);
    expect(s.activeTasks().map((t) => t.taskId)).toEqual(['b']);
    expect(s.cancel('a')).toEqual([]); // already gone
    expect(s.cancel('nobody')).toEqual([]);
  });

  it('cancels a queued task without giving it a slot', () => {
    const s = new BatchScheduler(config({ maxActiveSequences: 1 }));
    s.submit(task('a', 2));
    s.submit(task('q', 2));
    expect(s.cancel('q')).toEqual([{ type: 'finished', taskId: 'q', seqId: -1, reason: 'cancelled', tokens: [] }]);
    expect(s.queuedCount).toBe(0);
  });

  it('stops on an end-of-generation token unless ignoreEos', () => {
    const s = new BatchScheduler(config());
    s.submit(task('stops', 2));
    s.submit(task('ignores', 2, { ignoreEos: true }));
    const { batch } = next(s);
    const events = s.complete(batch.batchId, logitsPicking(batch, EOG), V);
    expect(events.filter((e) => e.type === 'finished')).toEqual([{ type: 'finished', taskId: 'stops', seqId: 0, reason: 'stop', tokens: [EOG] }]);
    const again = next(s).batch;
    expect(layout(again)).toEqual([{ taskId: 'ignores', positions: [2], logits: true }]);
    expect(Array.from(again.tokens)).toEqual([EOG]); // the EOG token is fed back like any other
  });

  it('stops at maxTokens, and at the context length whichever comes first', () => {
    const s = new BatchScheduler(config({ contextLength: 12 }));
    s.submit(task('max', 2, { maxTokens: 3, ignoreEos: true }));
    s.submit(task('ctx', 9, { maxTokens: 20, ignoreEos: true }));
    const finished: TaskEvent[] = [];
    for (let step = 0; step < 10 && s.activeCount > 0; step++) {
      const { batch } = next(s);
      finished.push(...s.complete(batch.batchId, logitsPicking(batch, 7), V).filter((e) => e.type === 'finished'));
    }
    expect(finished).toEqual([
      { type: 'finished', taskId: 'max', seqId: 0, reason: 'length', tokens: [7, 7, 7] },
      // 9 prompt + 3 generated = 12 = the context: no position left to feed the last token at.
      { type: 'finished', taskId: 'ctx', seqId: 1, reason: 'length', tokens: [7, 7, 7] },
    ]);
  });

  it('reuses the lowest free sequence id first, not the first freed', () => {
    const s = new BatchScheduler(config({ maxActiveSequences: 3 }));
    for (const id of ['a', 'b', 'c']) s.submit(task(id, 1));
    expect(s.activeTasks().map((t) => t.seqId)).toEqual([0, 1, 2]);
    s.cancel('c');
    s.cancel('a'); // free: 2, then 0
    expect(s.submit(task('d', 1))).toEqual([{ type: 'admitted', taskId: 'd', seqId: 0 }]);
    expect(s.submit(task('e', 1))).toEqual([{ type: 'admitted', taskId: 'e', seqId: 2 }]);
    expect(s.submit(task('f', 1))).toEqual([]); // all three slots taken: queued, no new id minted
    expect(s.cancel('b')).toContainEqual({ type: 'admitted', taskId: 'f', seqId: 1 });
  });

  it('failBatch fails only the tasks of that batch, frees their slots, and forgets the batch', () => {
    const s = new BatchScheduler(config({ maxInFlight: 2, maxActiveSequences: 2 }));
    s.submit(task('a', 2));
    s.submit(task('b', 2));
    s.submit(task('waiting', 2));
    const x = next(s).batch;
    const y = next(s).batch;
    const [inX] = layout(x).map((r) => r.taskId);
    const events = s.failBatch(x.batchId);
    expect(types(events)).toEqual([`finished:${inX}`, 'admitted:waiting']);
    expect(events[0]).toMatchObject({ reason: 'error' });
    expect(s.failBatch(x.batchId)).toEqual([]);
    expect(() => s.complete(x.batchId, new Float32Array(V), V)).toThrow(/unknown batch/);
    expect(types(s.complete(y.batchId, logitsPicking(y, 3), V))).toEqual([`token:${layout(y)[0]!.taskId}`]);
  });

  it('failAll fails every running and queued task and clears the pipeline', () => {
    const s = new BatchScheduler(config({ maxActiveSequences: 1 }));
    s.submit(task('a', 2));
    s.submit(task('q', 2));
    const { batch } = next(s);
    s.complete(batch.batchId, logitsPicking(batch, 4), V);
    next(s);
    const events = s.failAll();
    expect(events).toEqual([
      { type: 'finished', taskId: 'a', seqId: 0, reason: 'error', tokens: [4] },
      { type: 'finished', taskId: 'q', seqId: -1, reason: 'error', tokens: [] },
    ]);
    expect([s.activeCount, s.queuedCount, s.inFlightCount]).toEqual([0, 0, 0]);
    expect(types(s.submit(task('after', 1)))).toEqual(['admitted:after']);
    expect(s.activeTasks()[0]?.seqId).toBe(0);
  });

  it('rejects a result of the wrong size and keeps the batch in flight', () => {
    const s = new BatchScheduler(config());
    s.submit(task('a', 2));
    const { batch } = next(s);
    expect(() => s.complete(batch.batchId, new Float32Array(V + 1), V)).toThrow(/expected 1×8/);
    expect(s.inFlightCount).toBe(1);
    expect(types(s.complete(batch.batchId, logitsPicking(batch, 3), V))).toEqual(['token:a']);
  });

  it('samples each task from its own logits row', () => {
    const s = new BatchScheduler(config());
    for (const id of ['a', 'b', 'c']) s.submit(task(id, 2));
    const { batch } = next(s);
    const events = s.complete(batch.batchId, logitsPicking(batch, [5, 6, 7]), V);
    expect(events.map((e) => (e.type === 'token' ? `${e.taskId}=${e.token}` : e.type))).toEqual(['a=5', 'b=6', 'c=7']);
  });

  it('attaches top logprobs only when asked', () => {
    const s = new BatchScheduler(config());
    s.submit(task('plain', 1));
    s.submit(task('lp', 1, { topLogprobs: 2 }));
    const { batch } = next(s);
    const tokens = s.complete(batch.batchId, logitsPicking(batch, 6), V).filter((e) => e.type === 'token');
    expect(tokens.map((e) => (e.type === 'token' ? e.logprobs?.map((l) => l.id) ?? null : 'x'))).toEqual([null, [6, 0]]);
  });

  it('keeps its structural invariants under any interleaving of batches, results, cancels and failures', () => {
    const arbConfig = fc.record({
      maxInFlight: fc.integer({ min: 1, max: 4 }),
      maxBatchTokens: fc.integer({ min: 1, max: 24 }),
      prefillChunkTokens: fc.integer({ min: 1, max: 16 }),
      maxActiveSequences: fc.integer({ min: 1, max: 5 }),
      contextLength: fc.integer({ min: 8, max: 40 }),
    });
    const arbTask = fc.record({ prompt: fc.integer({ min: 1, max: 30 }), maxTokens: fc.integer({ min: 1, max: 10 }), ignoreEos: fc.boolean() });
    fc.assert(
      fc.property(arbConfig, fc.array(arbTask, { minLength: 1, maxLength: 10 }), fc.integer(), (c, specs, seed) => {
        const cfg = config(c);
        const s = new BatchScheduler(cfg);
        const rng = new SplitMix32(seed);
        const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rng.nextFloat() * xs.length)]!;
        const finished = new Map<string, number>();
        const generated = new Map<string, number>();
        const fed = new Map<number, number>(); // seqId → next position the pipeline expects
        const inFlight = new Map<number, MicroBatch>();
        const onEvents = (events: readonly TaskEvent[]): void => {
          for (const e of events) {
            if (e.type === 'finished') finished.set(e.taskId, (finished.get(e.taskId) ?? 0) + 1);
            if (e.type === 'token') {
              expect(e.index).toBe(generated.get(e.taskId) ?? 0);
              generated.set(e.taskId, e.index + 1);
            }
            if (e.type === 'admitted') fed.set(e.seqId, 0);
          }
        };
        const submitted: string[] = [];
        specs.forEach((t, i) => {
          const input = task(`t${i}`, Math.min(t.prompt, cfg.contextLength - 1), { maxTokens: t.maxTokens, ignoreEos: t.ignoreEos });
          submitted.push(input.taskId);
          onEvents(s.submit(input));
        });
        for (let step = 0; step < 2000 && finished.size < submitted.length; step++) {
          const r = rng.nextFloat();
          if (r < 0.05) {
            onEvents(s.cancel(pick(submitted)));
          } else if (r < 0.08 && inFlight.size > 0) {
            const id = pick([...inFlight.keys()]);
            inFlight.delete(id);
            onEvents(s.failBatch(id));
          } else if (r < 0.55 && inFlight.size > 0) {
            const b = inFlight.get(pick([...inFlight.keys()]))!;
            inFlight.delete(b.batchId);
            onEvents(s.complete(b.batchId, logitsPicking(b, Array.from(b.logitRows, () => Math.floor(rng.nextFloat() * V))), V));
          } else {
            const n = s.nextBatch();
            if (!n) continue;
            const b = n.batch;
            onEvents(n.events);
            inFlight.set(b.batchId, b);
            expect(b.tokens.length).toBeLessThanOrEqual(cfg.maxBatchTokens);
            expect(inFlight.size).toBeLessThanOrEqual(cfg.maxInFlight);
            const rowsPerSeq = new Map<number, number>();
            for (let t = 0; t < b.seqIds.length; t++) {
              const seq = b.seqIds[t]!;
              rowsPerSeq.set(seq, (rowsPerSeq.get(seq) ?? 0) + 1);
              // Contiguous per sequence, continuing exactly where its previous batch ended (what a Stage demands).
              expect(b.positions[t]).toBe(fed.get(seq));
              expect(b.positions[t]).toBeLessThan(cfg.contextLength);
              fed.set(seq, b.positions[t]! + 1);
            }
            for (const n of rowsPerSeq.values()) expect(n).toBeLessThanOrEqual(cfg.prefillChunkTokens);
            // A task is never in two in-flight batches.
            const owners = [...inFlight.values()].flatMap((x) => x.rows.map((row) => row.taskId));
            expect(new Set(owners).size).toBe(owners.length);
          }
          expect(s.activeCount).toBeLessThanOrEqual(cfg.maxActiveSequences);
        }
        // Drain: answer every batch until every task has ended (a bounded number of steps).
        for (let step = 0; step < 5000 && finished.size < submitted.length; step++) {
          const n = s.nextBatch();
          if (n) {
            onEvents(n.events);
            inFlight.set(n.batch.batchId, n.batch);
            for (let t = 0; t < n.batch.seqIds.length; t++) fed.set(n.batch.seqIds[t]!, n.batch.positions[t]! + 1);
            continue;
          }
          const b = inFlight.values().next().value as MicroBatch;
          inFlight.delete(b.batchId);
          onEvents(s.complete(b.batchId, logitsPicking(b, 3), V));
        }
        // Everything ends, exactly once, with no slot left behind.
        expect([...finished.keys()].sort()).toEqual([...submitted].sort());
        expect([...finished.values()].every((n) => n === 1)).toBe(true);
        expect([s.activeCount, s.queuedCount]).toEqual([0, 0]);
      }),
      { numRuns: 300, seed: 42 },
    );
  });
});
