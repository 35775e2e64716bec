/**
 * What one simulated run is made of — cluster shape, scheduler limits, latencies, tasks and faults — and a seeded
 * generator of random ones. A scenario is plain data, so a failing seed can be printed, regenerated and replayed.
 */
import { SplitMix32 } from '../../src/engine/prng.js';
import type { SamplerParams } from '../../src/engine/sampler.js';
import type { TaskInput } from '../../src/cluster/scheduler.js';

/** Times are ms after the anchor: the simulation's start, or the moment the pipeline is ready (or lost). */
export type Anchor = 'start' | 'ready';

export interface SimTask {
  readonly input: TaskInput;
  readonly anchor: Anchor;
  readonly atMs: number;
  /** Cancel this long after submitting (whatever state the task is in by then). */
  readonly cancelAfterMs: number | null;
}

export type SimFault =
  /** The process dies: its links close, messages in flight to it are lost. */
  | { readonly kind: 'kill'; readonly worker: number; readonly anchor: Anchor; readonly atMs: number }
  /** The process freezes (GC pause, swapping): no heartbeats, no processing, then it carries on. */
  | { readonly kind: 'stall'; readonly worker: number; readonly anchor: Anchor; readonly atMs: number; readonly forMs: number }
  /** The process loses its KV caches but stays up (restarted in place, memory reclaimed): batches then get refused. */
  | { readonly kind: 'forget'; readonly worker: number; readonly anchor: Anchor; readonly atMs: number };

export interface Range {
  readonly min: number;
  readonly max: number;
}

export interface Scenario {
  readonly seed: number;
  /** Weight-streaming speed of each worker (bytes/s); the planner splits layers by it. */
  readonly workerSpeeds: readonly number[];
  readonly nLayers: number;
  readonly vocabSize: number;
  readonly contextLength: number;
  readonly eogIds: readonly number[];
  readonly scheduler: {
    readonly maxBatchTokens: number;
    readonly prefillChunkTokens: number;
    readonly maxActiveSequences: number;
    readonly maxInFlight?: number;
  };
  readonly suspectAfterMs: number;
  readonly joinMs: Range;
  readonly loadMs: Range;
  readonly linkMs: Range;
  readonly computeMs: Range;
  readonly tasks: readonly SimTask[];
  readonly faults: readonly SimFault[];
  /** Fake time after which unfinished tasks count as hung. */
  readonly horizonMs: number;
}

export const GREEDY: SamplerParams = { temperature: 0, topK: 0, topP: 1, minP: 0, repeatPenalty: 1, repeatLastN: 64, seed: 0 };

class Dice {
  private readonly rng: SplitMix32;
  constructor(seed: number) {
    this.rng = new SplitMix32(seed);
  }
  int(min: number, max: number): number {
    return min + Math.floor(this.rng.nextFloat() * (max - min + 1));
  }
  real(min: number, max: number): number {
    return min + this.rng.nextFloat() * (max - min);
  }
  chance(p: number): boolean {
    return this.rng.nextFloat() < p;
  }
  u32(): number {
    return this.rng.nextU32();
  }
}

export interface ScenarioKnobs {
  /** Probability that a scenario kills a worker / stalls one / cancels each task. */
  readonly killRate: number;
  readonly stallRate: number;
  readonly forgetRate: number;
  readonly cancelRate: number;
  /** Probability that a task's prompt is longer than the context allows. */
  readonly overlongRate: number;
  readonly maxWorkers: number;
  readonly maxTasks: number;
}

export const DEFAULT_KNOBS: ScenarioKnobs = { killRate: 0.15, stallRate: 0.15, forgetRate: 0.1, cancelRate: 0.1, overlongRate: 0.03, maxWorkers: 5, maxTasks: 12 };

function randomSampler(d: Dice): SamplerParams {
  if (d.chance(0.5)) return GREEDY;
  return {
    temperature: d.real(0.3, 1.5),
    topK: d.chance(0.5) ? d.int(1, 20) : 0,
    topP: d.chance(0.5) ? d.real(0.5, 1) : 1,
    minP: d.chance(0.3) ? d.real(0, 0.2) : 0,
    repeatPenalty: d.chance(0.3) ? d.real(1, 1.5) : 1,
    repeatLastN: d.int(1, 64),
    seed: d.u32(),
  };
}

/**
 * Faults anchored at the start land after every worker has joined (joinMs ≤ 100 plus a link): a worker lost before
 * the cluster forms just leaves the coordinator waiting for it, which is correct but tests nothing.
 */
function startOrReady<F extends { kind: SimFault['kind'] }>(d: Dice, pStart: number, f: F): F & { anchor: Anchor; atMs: number } {
  return d.chance(pStart) ? { ...f, anchor: 'start', atMs: d.real(150, 1500) } : { ...f, anchor: 'ready', atMs: d.real(0, 1500) };
}

export function randomScenario(seed: number, knobs: ScenarioKnobs = DEFAULT_KNOBS): Scenario {
  const d = new Dice(seed ^ 0x5eed5eed);
  const nWorkers = d.int(1, knobs.maxWorkers);
  const vocabSize = 64;
  // A short context sometimes, so the context-length stop and its edge cases are exercised too.
  const contextLength = d.chance(0.3) ? d.int(30, 60) : 64;
  const tasks: SimTask[] = [];
  const nTasks = d.int(1, knobs.maxTasks);
  for (let i = 0; i < nTasks; i++) {
    const overlong = d.chance(knobs.overlongRate);
    const promptLen = overlong ? d.int(contextLength, contextLength + 5) : d.int(1, Math.min(40, contextLength - 1));
    tasks.push({
      input: {
        taskId: `t${i}`,
        promptIds: Array.from({ length: promptLen }, () => d.int(0, vocabSize - 1)),
        maxTokens: d.int(1, 20),
        sampler: randomSampler(d),
        topLogprobs: d.chance(0.2) ? d.int(1, 3) : 0,
        ignoreEos: d.chance(0.2),
      },
      // A few arrive before the pipeline is ready (they must fail cleanly, not hang).
      anchor: d.chance(0.05) ? 'start' : 'ready',
      atMs: d.chance(0.3) ? 0 : d.real(0, 1500),
      cancelAfterMs: d.chance(knobs.cancelRate) ? d.real(0, 400) : null,
    });
  }
  const faults: SimFault[] = [];
  if (d.chance(knobs.killRate)) {
    faults.push(startOrReady(d, 0.15, { kind: 'kill', worker: d.int(0, nWorkers - 1) }));
  }
  if (d.chance(knobs.stallRate)) {
    faults.push(startOrReady(d, 0.3, { kind: 'stall', worker: d.int(0, nWorkers - 1), forMs: d.real(200, 2500) }));
  }
  if (d.chance(knobs.forgetRate)) faults.push({ kind: 'forget', worker: d.int(0, nWorkers - 1), anchor: 'ready', atMs: d.real(0, 1500) });
  return {
    seed,
    workerSpeeds: Array.from({ length: nWorkers }, () => (d.chance(0.5) ? 1e9 : d.int(5, 40) * 1e8)),
    nLayers: 8,
    vocabSize,
    contextLength,
    eogIds: [0, 1],
    scheduler: {
      maxBatchTokens: d.int(1, 64),
      prefillChunkTokens: d.int(1, 32),
      maxActiveSequences: d.int(1, 8),
      maxInFlight: d.chance(0.5) ? d.int(1, 4) : undefined,
    },
    suspectAfterMs: 1000,
    joinMs: { min: 0, max: 100 },
    // Sometimes a load outlasts the suspect timeout (a big model), so stages can go Suspect before serving starts.
    loadMs: { min: 10, max: d.chance(0.2) ? 3000 : 400 },
    linkMs: { min: 0.05, max: d.chance(0.5) ? 2 : 30 },
    computeMs: { min: 0.1, max: d.chance(0.5) ? 3 : 40 },
    tasks,
    faults,
    horizonMs: 120_000,
  };
}
