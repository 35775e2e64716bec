import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { formatBytePair, formatBytes, formatPlan, parseByteSize, parseWorkerSpecs } from '../src/cluster/plan-format.js';
import { PlanError, modelShapeFromTensors, planLayers, type ModelShape, type Plan, type PlanOptions, type WorkerBudget } from '../src/cluster/planner.js';

const GiB = 2 ** 30;
const MiB = 2 ** 20;

function uniformModel(nLayers: number, layerBytes: number, extra: Partial<ModelShape> = {}): ModelShape {
  return {
    nLayers,
    bytesPerLayer: Array<number>(nLayers).fill(layerBytes),
    embeddingBytes: 0,
    headBytes: 0,
    kvBytesPerTokenPerLayer: 0,
    contextTokens: 1,
    maxBatchSequences: 1,
    ...extra,
  };
}

const noHops: PlanOptions = { hopSeconds: 0, coordinatorHops: 0 };

function layersOf(plan: Plan): Record<string, number> {
  return Object.fromEntries(plan.stages.map((s) => [s.workerId, s.lastLayer - s.firstLayer]));
}

function expectPlanError(fn: () => unknown, code: PlanError['code']): PlanError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(PlanError);
    expect((err as PlanError).code).toBe(code);
    return err as PlanError;
  }
  throw new Error('expected a PlanError');
}

/** The invariants every plan must satisfy, whatever the input. */
function checkInvariants(plan: Plan, model: ModelShape, workers: readonly WorkerBudget[], reserve = 0): void {
  let next = 0;
  for (const [i, s] of plan.stages.entries()) {
    expect(s.firstLayer).toBe(next); // contiguous, in order, no gaps or overlaps
    expect(s.lastLayer).toBeGreaterThan(s.firstLayer); // no empty stages
    next = s.lastLayer;
    expect(s.hasEmbedding).toBe(i === 0);
    expect(s.hasHead).toBe(i === plan.stages.length - 1);
    const w = workers.find((x) => x.id === s.workerId)!;
    let weights = 0;
    for (let l = s.firstLayer; l < s.lastLayer; l++) weights += model.bytesPerLayer[l]!;
    if (s.hasEmbedding) weights += model.embeddingBytes;
    if (s.hasHead) weights += model.headBytes;
    const kv = (s.lastLayer - s.firstLayer) * model.kvBytesPerTokenPerLayer * model.contextTokens * model.maxBatchSequences;
    expect(s.weightBytes).toBeCloseTo(weights, 3);
    expect(s.kvBytes).toBeCloseTo(kv, 3);
    expect(s.memoryBytes).toBeLessThanOrEqual(w.memoryBytes); // budgets respected, KV included
    expect(s.memoryBytes).toBeCloseTo(weights + kv + reserve, 3);
  }
  expect(next).toBe(model.nLayers); // every layer assigned exactly once
  const ids = [...plan.stages.map((s) => s.workerId), ...plan.unused.map((u) => u.workerId)].sort();
  expect(ids).toEqual(workers.map((w) => w.id).sort()); // each worker either used once or reported as left out
  expect(plan.tokensPerSecond).toBeGreaterThan(0);
}

describe('planner: splits', () => {
  it('splits in proportion to speed when memory is plentiful', () => {
    const plan = planLayers(uniformModel(12, 100 * MiB), [
      { id: 'fast', memoryBytes: 8 * GiB, speed: 30e9 },
      { id: 'slow', memoryBytes: 8 * GiB, speed: 10e9 },
    ]);
    expect(layersOf(plan)).toEqual({ slow: 3, fast: 9 });
    expect(plan.stages.map((s) => s.workerId)).toEqual(['slow', 'fast']); // the head side goes to the fast worker
  });

  it('splits evenly across equal workers', () => {
    const workers = ['a', 'b', 'c', 'd'].map((id) => ({ id, memoryBytes: GiB, speed: 20e9 }));
    const plan = planLayers(uniformModel(12, 10 * MiB), workers);
    expect(Object.values(layersOf(plan))).toEqual([3, 3, 3, 3]);
    expect(plan.stages.map((s) => s.workerId)).toEqual(['a', 'b', 'c', 'd']); // ties broken by id
  });

  it('caps a fast worker at its memory and gives the rest to others (KV cache included)', () => {
    const model = uniformModel(12, 100 * MiB, { kvBytesPerTokenPerLayer: 8 * 1024, contextTokens: 1024, maxBatchSequences: 2 }); // 16 MiB KV per layer
    const plan = planLayers(model, [
      { id: 'fast', memoryBytes: 3 * 116 * MiB + MiB, speed: 100e9 }, // room for exactly 3 layers with their KV
      { id: 'slow', memoryBytes: 8 * GiB, speed: 10e9 },
    ]);
    expect(layersOf(plan)).toEqual({ fast: 3, slow: 9 });
    checkInvariants(plan, model, [
      { id: 'fast', memoryBytes: 3 * 116 * MiB + MiB, speed: 100e9 },
      { id: 'slow', memoryBytes: 8 * GiB, speed: 10e9 },
    ]);
    expect(plan.explanation).toMatch(/Memory-bound: "fast"/);
  });

  it('handles uneven layers: balances bytes, not layer counts', () => {
    const model: ModelShape = { ...uniformModel(6, 0), bytesPerLayer: [600, 100, 100, 100, 100, 200].map((b) => b * MiB) };
    const plan = planLayers(model, [{ id: 'a', memoryBytes: GiB, speed: 1e9 }, { id: 'b', memoryBytes: GiB, speed: 1e9 }], noHops);
    // 600 | 100+100+100+100+200 = 600: perfectly balanced with 1 and 5 layers.
    expect(plan.stages.map((s) => [s.firstLayer, s.lastLayer])).toEqual([[0, 1], [1, 6]]);
  });

  it('puts the embedding on the first stage and the head on the last, counting both against memory', () => {
    const model = uniformModel(4, 100 * MiB, { embeddingBytes: 300 * MiB, headBytes: 300 * MiB });
    const workers = [
      { id: 'a', memoryBytes: 500 * MiB, speed: 1e9 },
      { id: 'b', memoryBytes: 500 * MiB, speed: 1e9 },
    ];
    const plan = planLayers(model, workers);
    checkInvariants(plan, model, workers);
    expect(plan.stages.map((s) => s.memoryBytes / MiB)).toEqual([500, 500]);
  });

  it('picks the one worker that can hold the head as the last stage', () => {
    const model = uniformModel(6, 50 * MiB, { headBytes: 500 * MiB });
    const workers = [
      // Slowest, so the default order puts it first; it cannot hold everything (800 MiB) but it alone fits the head.
      { id: 'big', memoryBytes: 700 * MiB, speed: 1e9 },
      { id: 'small1', memoryBytes: 200 * MiB, speed: 5e9 },
      { id: 'small2', memoryBytes: 200 * MiB, speed: 6e9 },
    ];
    const plan = planLayers(model, workers);
    checkInvariants(plan, model, workers);
    expect(plan.stages.at(-1)!.workerId).toBe('big');
  });

  it('leaves out workers that get no layers, and says why', () => {
    const plan = planLayers(uniformModel(4, 100 * MiB), [
      { id: 'a', memoryBytes: 8 * GiB, speed: 20e9 },
      { id: 'b', memoryBytes: 8 * GiB, speed: 20e9 },
      { id: 'tiny', memoryBytes: 10 * MiB, speed: 50e9 },
      { id: 'snail', memoryBytes: 8 * GiB, speed: 0.1e9 },
    ]);
    expect(layersOf(plan)).toEqual({ a: 2, b: 2 });
    expect(plan.unused).toEqual([
      { workerId: 'snail', reason: 'giving it layers would not shorten the slowest stage' },
      { workerId: 'tiny', reason: 'its 10.0 MiB cannot hold even one layer with its KV cache (100.0 MiB)' },
    ]);
    expect(plan.explanation).toMatch(/Left out: "tiny" — its 10\.0 MiB cannot hold/);
  });

  it('more workers than layers: one layer each at most', () => {
    const workers = Array.from({ length: 8 }, (_, i) => ({ id: `w${i}`, memoryBytes: GiB, speed: 1e9 }));
    const model = uniformModel(3, 10 * MiB);
    const plan = planLayers(model, workers);
    checkInvariants(plan, model, workers);
    expect(plan.stages).toHaveLength(3);
    expect(plan.unused).toHaveLength(5);
  });

  it("'latency' packs the fastest worker instead of balancing", () => {
    const workers = [
      { id: 'fast', memoryBytes: 8 * GiB, speed: 30e9 },
      { id: 'slow', memoryBytes: 8 * GiB, speed: 10e9 },
    ];
    const plan = planLayers(uniformModel(12, 100 * MiB), workers, { objective: 'latency' });
    expect(layersOf(plan)).toEqual({ fast: 12 });
    expect(plan.unused[0]!.reason).toMatch(/faster workers hold the whole model/);
  });
});

describe('planner: predictions', () => {
  it('predicts time per token from bytes ÷ speed plus hops', () => {
    const model = uniformModel(10, 1e8, { headBytes: 2e8, embeddingBytes: 5e8 });
    const plan = planLayers(
      model,
      [
        { id: 'a', memoryBytes: 100e9, speed: 10e9 },
        { id: 'b', memoryBytes: 100e9, speed: 10e9 },
      ],
      { hopSeconds: 0.001, coordinatorHops: 2 },
    );
    // Layer weights 1e9 + head 2e8 at 10 GB/s = 0.12 s; embedding is not streamed; 1 + 2 hops of 1 ms.
    expect(plan.secondsPerToken).toBeCloseTo(0.12 + 0.003, 9);
    expect(plan.tokensPerSecond).toBeCloseTo(1 / 0.123, 6);
    expect(plan.hopsPerToken).toBe(3);
    // Balanced: 6 layers (0.06 s) vs 4 layers + head (0.06 s).
    expect(layersOf(plan)).toEqual({ a: 6, b: 4 });
    expect(plan.bottleneckSeconds).toBeCloseTo(0.061, 9);
    expect(plan.explanation).toMatch(/Predicted: 8\.1 tokens\/s for one sequence/);
  });
});

describe('planner: refusals', () => {
  it('says what the model needs and what the cluster offers', () => {
    const model = uniformModel(10, 0.7 * GiB, { embeddingBytes: 0.2 * GiB, headBytes: 0.2 * GiB });
    const err = expectPlanError(
      () =>
        planLayers(model, [
          { id: 'a', memoryBytes: 2.5 * GiB, speed: 1e9 },
          { id: 'b', memoryBytes: 2.5 * GiB, speed: 1e9 },
        ]),
      'does-not-fit',
    );
    expect(err.message).toMatch(/^the model needs 7\.4 GiB, the cluster offers 5\.0 GiB \(weights 7\.4 GiB, KV cache 0 B/);
    expect(err.neededBytes).toBeCloseTo(7.4 * GiB, 0);
    expect(err.offeredBytes).toBe(5 * GiB);
  });

  it('counts the KV cache in the refusal', () => {
    const model = uniformModel(4, GiB, { kvBytesPerTokenPerLayer: 256 * 1024, contextTokens: 4096, maxBatchSequences: 1 }); // 1 GiB KV per layer
    const err = expectPlanError(() => planLayers(model, [{ id: 'a', memoryBytes: 6 * GiB, speed: 1e9 }]), 'does-not-fit');
    expect(err.message).toMatch(/needs 8\.0 GiB, the cluster offers 6\.0 GiB .*KV cache 4\.0 GiB for 4096 tokens × 1 sequences/);
  });

  it('explains a model that fits in total but cannot be split', () => {
    const model = uniformModel(2, 3 * GiB);
    const err = expectPlanError(
      () =>
        planLayers(model, [
          { id: 'a', memoryBytes: 2 * GiB, speed: 1e9 },
          { id: 'b', memoryBytes: 2 * GiB, speed: 1e9 },
          { id: 'c', memoryBytes: 2 * GiB, speed: 1e9 },
        ]),
      'cannot-split',
    );
    expect(err.message).toMatch(/needs 6\.0 GiB and the cluster offers 6\.0 GiB in total, but no split .* needs 3\.0 GiB and the largest worker offers 2\.0 GiB/);
  });

  it('rejects nonsense input clearly', () => {
    expect(expectPlanError(() => planLayers(uniformModel(2, 1), []), 'invalid-input').message).toMatch(/no workers/);
    expect(expectPlanError(() => planLayers(uniformModel(2, 1), [{ id: 'a', memoryBytes: 1, speed: 0 }]), 'invalid-input').message).toMatch(/speed of worker "a" must be positive/);
    const dup = [{ id: 'a', memoryBytes: 1, speed: 1 }, { id: 'a', memoryBytes: 1, speed: 1 }];
    expect(expectPlanError(() => planLayers(uniformModel(2, 1), dup), 'invalid-input').message).toMatch(/appears twice/);
    expectPlanError(() => planLayers({ ...uniformModel(2, 1), bytesPerLayer: [1] }, [{ id: 'a', memoryBytes: 9, speed: 1 }]), 'invalid-input');
  });
});

// ---- properties ----

const workersArb = (min: number, max: number): fc.Arbitrary<WorkerBudget[]> =>
  fc
    .array(fc.record({ memoryMiB: fc.integer({ min: 0, max: 4000 }), speedGBps: fc.integer({ min: 1, max: 40 }) }), { minLength: min, maxLength: max })
    .map((ws) => ws.map((w, i) => ({ id: `w${i}`, memoryBytes: w.memoryMiB * MiB, speed: w.speedGBps * 1e9 })));

const modelArb = (maxLayers: number): fc.Arbitrary<ModelShape> =>
  fc
    .record({
      layers: fc.array(fc.integer({ min: 1, max: 400 }), { minLength: 1, maxLength: maxLayers }),
      embeddingMiB: fc.integer({ min: 0, max: 300 }),
      headMiB: fc.integer({ min: 0, max: 300 }),
      kvKiB: fc.integer({ min: 0, max: 64 }),
      contextTokens: fc.integer({ min: 1, max: 512 }),
      maxBatchSequences: fc.integer({ min: 1, max: 4 }),
    })
    .map((m) => ({
      nLayers: m.layers.length,
      bytesPerLayer: m.layers.map((x) => x * MiB),
      embeddingBytes: m.embeddingMiB * MiB,
      headBytes: m.headMiB * MiB,
      kvBytesPerTokenPerLayer: m.kvKiB * 1024,
      contextTokens: m.contextTokens,
      maxBatchSequences: m.maxBatchSequences,
    }));

/** Every permutation and every split, scored like the planner: (slowest stage, then total time). */
function bruteForce(model: ModelShape, workers: readonly WorkerBudget[], hopSeconds: number): { max: number; sum: number } | null {
  const L = model.nLayers;
  const kvPerLayer = model.kvBytesPerTokenPerLayer * model.contextTokens * model.maxBatchSequences;
  let best: { max: number; sum: number } | null = null;
  const perms = (xs: readonly WorkerBudget[]): WorkerBudget[][] => (xs.length <= 1 ? [[...xs]] : xs.flatMap((x, i) => perms([...xs.slice(0, i), ...xs.slice(i + 1)]).map((p) => [x, ...p])));
  const visit = (order: WorkerBudget[], i: number, from: number, max: number, sum: number): void => {
    if (i === order.length) {
      if (from === L && (!best || max < best.max || (max === best.max && sum < best.sum))) best = { max, sum };
      return;
    }
    for (let to = from; to <= L; to++) {
      if (to === from) {
        visit(order, i + 1, from, max, sum);
        continue;
      }
      let bytes = 0;
      for (let l = from; l < to; l++) bytes += model.bytesPerLayer[l]!;
      const head = to === L ? model.headBytes : 0;
      const mem = bytes + head + (from === 0 ? model.embeddingBytes : 0) + (to - from) * kvPerLayer;
      if (mem > order[i]!.memoryBytes) break;
      const t = (bytes + head) / order[i]!.speed;
      visit(order, i + 1, to, Math.max(max, t), sum + t + hopSeconds);
    }
  };
  for (const order of perms(workers)) visit(order, 0, 0, 0, 0);
  return best;
}

describe('planner: properties', () => {
  it('every layer is assigned exactly once, contiguously, within every budget (1..8 workers)', () => {
    fc.assert(
      fc.property(modelArb(24), workersArb(1, 8), (model, workers) => {
        let plan: Plan;
        try {
          plan = planLayers(model, workers);
        } catch (err) {
          expect(err).toBeInstanceOf(PlanError);
          expect((err as PlanError).message).toMatch(/needs .*, the cluster offers|no split/);
          return;
        }
        checkInvariants(plan, model, workers);
      }),
      { numRuns: 150 },
    );
  });

  it('is deterministic and independent of the order workers are listed in', () => {
    fc.assert(
      fc.property(modelArb(16), workersArb(1, 6), fc.nat(), (model, workers, seed) => {
        const shuffled = [...workers].sort((a, b) => ((a.id.charCodeAt(1) * 7919 + seed) % 13) - ((b.id.charCodeAt(1) * 7919 + seed) % 13));
        let a: Plan | PlanError;
        let b: Plan | PlanError;
        try {
          a = planLayers(model, workers);
        } catch (err) {
          a = err as PlanError;
        }
        try {
          b = planLayers(model, shuffled);
        } catch (err) {
          b = err as PlanError;
        }
        if (a instanceof PlanError || b instanceof PlanError) {
          expect(String(a)).toBe(String(b));
          return;
        }
        expect(b.stages).toEqual(a.stages);
        expect(b.explanation).toBe(a.explanation);
      }),
      { numRuns: 100 },
    );
  });

  it('is optimal: matches exhaustive search over every order and split (≤ 3 workers)', () => {
    fc.assert(
      fc.property(modelArb(7), workersArb(1, 3), (model, workers) => {
        const hopSeconds = 0.0003;
        const oracle = bruteForce(model, workers, hopSeconds);
        let plan: Plan | null = null;
        try {
          plan = planLayers(model, workers, { hopSeconds });
        } catch (err) {
          expect(err).toBeInstanceOf(PlanError);
        }
        expect(plan === null).toBe(oracle === null);
        if (!plan || !oracle) return;
        const max = Math.max(...plan.stages.map((s) => s.secondsPerToken));
        const sum = plan.stages.reduce((s, st) => s + st.secondsPerToken + hopSeconds, 0);
        expect(max).toBeCloseTo(oracle.max, 9);
        if (Math.abs(max - oracle.max) < 1e-12) expect(sum).toBeCloseTo(oracle.sum, 9);
      }),
      { numRuns: 200 },
    );
  });

  it('refuses exactly when total need exceeds total offer or no split exists', () => {
    fc.assert(
      fc.property(modelArb(6), workersArb(1, 3), (model, workers) => {
        const oracle = bruteForce(model, workers, 0);
        const outcome = (() => {
          try {
            planLayers(model, workers);
            return 'ok';
          } catch (err) {
            return (err as PlanError).code;
          }
        })();
        if (oracle) expect(outcome).toBe('ok');
        else expect(['does-not-fit', 'cannot-split']).toContain(outcome);
      }),
      { numRuns: 150 },
    );
  });
});

describe('plan formatting and parsing', () => {
  it('formats sizes with one decimal and truthful rounding for need vs offer', () => {
    expect(formatBytes(7.4 * GiB)).toBe('7.4 GiB');
    expect(formatBytes(512 * MiB)).toBe('512.0 MiB');
    expect(formatBytes(100)).toBe('100 B');
    expect(formatBytePair(5.02 * GiB, 5 * GiB)).toEqual(['5.1 GiB', '5.0 GiB']);
    expect(formatBytePair(7.4 * GiB, 4.99 * GiB)).toEqual(['7.4 GiB', '4.9 GiB']);
    expect(formatBytePair(300 * MiB, 200 * MiB)).toEqual(['300.0 MiB', '200.0 MiB']);
  });

  it('prints a plan table with every stage', () => {
    const plan = planLayers(uniformModel(12, 100 * MiB, { embeddingBytes: 50 * MiB, headBytes: 50 * MiB }), parseWorkerSpecs('a=8GiB@30GB/s, b=8GiB@10GB/s'));
    const text = formatPlan(plan);
    expect(text).toMatch(/^Plan: 12 layers on 2 workers \(objective: throughput\)/);
    expect(text).toMatch(/\n1\s+b\s+0–2 \(3\)\s+embedding\s/);
    expect(text).toMatch(/\n2\s+a\s+3–11 \(9\)\s+head\s/);
    expect(text).toContain('Predicted:');
  });

  it('parses CLI worker specs and sizes', () => {
    expect(parseWorkerSpecs('a=8GiB@25GB/s,b=512MiB@800MB/s')).toEqual([
      { id: 'a', memoryBytes: 8 * GiB, speed: 25e9 },
      { id: 'b', memoryBytes: 512 * MiB, speed: 800e6 },
    ]);
    expect(parseWorkerSpecs('4G@1e9')).toEqual([{ id: 'w1', memoryBytes: 4e9, speed: 1e9 }]);
    expect(parseByteSize('1.5GiB')).toBe(1.5 * GiB);
    expect(() => parseWorkerSpecs('a=lots@fast')).toThrow(/cannot read "lots" as a size/);
  });

  it('builds a model shape from GGUF tensor names, tied embeddings included', () => {
    const tensors = [
      { name: 'token_embd.weight', byteLength: 1000 },
      { name: 'blk.0.attn_q.weight', byteLength: 10 },
      { name: 'blk.0.ffn_up.weight', byteLength: 20 },
      { name: 'blk.1.attn_q.weight', byteLength: 11 },
      { name: 'output_norm.weight', byteLength: 4 },
    ];
    const shape = modelShapeFromTensors(tensors, { nLayers: 2, kvBytesPerTokenPerLayer: 8, contextTokens: 16, maxBatchSequences: 1 });
    expect(shape.bytesPerLayer).toEqual([30, 11]);
    expect(shape.embeddingBytes).toBe(1000);
    expect(shape.headBytes).toBe(1004); // tied: the last stage needs its own copy of token_embd
    const untied = modelShapeFromTensors([...tensors, { name: 'output.weight', byteLength: 900 }], { nLayers: 2, kvBytesPerTokenPerLayer: 8, contextTokens: 16, maxBatchSequences: 1 });
    expect(untied.headBytes).toBe(904);
  });
});
