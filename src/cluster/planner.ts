/**
 * Layer planner (pure: no IO, no clocks, no randomness). Splits a model's layers into contiguous ranges, one per
 * worker, so that
 *   - every worker's share fits its memory budget, KV cache for contextTokens × maxBatchSequences included;
 *   - the first stage also holds the token embedding and the last the output head;
 *   - work follows speed: by default the slowest stage is made as fast as possible (stage times ∝ 1/speed
 *     balance out, i.e. layers in proportion to speed), then the single-stream time per token is minimised.
 *
 * The split is found by dynamic programming over (worker, layer boundary), which is exact for the objective and
 * copes with uneven layer sizes, any number of workers and tight memory. Stage order is chosen among a few
 * candidate orders (slowest → fastest by default, so the head, which is read on every token, lands on a fast
 * worker); ties go to the earlier candidate and the earlier worker id. Same input → same plan.
 */
import { formatBytePair, formatBytes } from './plan-format.js';

export interface ModelShape {
  readonly nLayers: number;
  /** Weight bytes of each transformer block, in layer order. */
  readonly bytesPerLayer: readonly number[];
  /** Token embedding table (held by the first stage; only one row is read per token). */
  readonly embeddingBytes: number;
  /** Output matrix + final norm (held by the last stage; read in full on every token). */
  readonly headBytes: number;
  /** K and V for one token in one layer (2 × kvHeads × headDim × bytes per element). */
  readonly kvBytesPerTokenPerLayer: number;
  readonly contextTokens: number;
  readonly maxBatchSequences: number;
}

export interface WorkerBudget {
  readonly id: string;
  /** Memory this worker may use for weights + KV cache (+ PlanOptions.reserveBytesPerWorker). */
  readonly memoryBytes: number;
  /** Measured weight-streaming speed in bytes per second (e.g. matrix-vector GB/s × 1e9). */
  readonly speed: number;
}

export type PlanObjective = 'throughput' | 'latency';

export interface PlanOptions {
  /**
   * 'throughput' (default): minimise the slowest stage — layers in proportion to speed — which is what many
   * concurrent sequences need. 'latency': minimise single-stream time per token, i.e. pack the fastest workers.
   */
  readonly objective?: PlanObjective;
  /** Network + scheduling cost of one hop per token, in seconds. Default 0.0003 (a LAN round of ~300 µs). */
  readonly hopSeconds?: number;
  /** Hops per token besides those between stages (coordinator → first stage, last stage → coordinator). Default 2. */
  readonly coordinatorHops?: number;
  /** Memory each used worker keeps back for activations and runtime. Default 0. */
  readonly reserveBytesPerWorker?: number;
}

export interface PlanStage {
  readonly workerId: string;
  readonly firstLayer: number;
  /** Exclusive. */
  readonly lastLayer: number;
  readonly hasEmbedding: boolean;
  readonly hasHead: boolean;
  /** Layers + embedding/head held by this stage. */
  readonly weightBytes: number;
  readonly kvBytes: number;
  /** weightBytes + kvBytes + reserve: what the stage needs. */
  readonly memoryBytes: number;
  /** What the worker offers. */
  readonly budgetBytes: number;
  readonly speed: number;
  /** Bytes of weights read per token (layers, plus the head on the last stage) ÷ speed. */
  readonly secondsPerToken: number;
}

export interface UnusedWorker {
  readonly workerId: string;
  readonly reason: string;
}

export interface Plan {
  readonly objective: PlanObjective;
  readonly nLayers: number;
  readonly stages: readonly PlanStage[];
  readonly unused: readonly UnusedWorker[];
  /** Total memory the plan uses across stages. */
  readonly neededBytes: number;
  readonly offeredBytes: number;
  readonly hopSeconds: number;
  readonly hopsPerToken: number;
  /** Single stream: all stage times + all hops. */
  readonly secondsPerToken: number;
  readonly tokensPerSecond: number;
  /** Slowest stage (compute + one hop): the pipeline's beat when several sequences are in flight. */
  readonly bottleneckSeconds: number;
  readonly bottleneckWorkerId: string;
  /** min(maxBatchSequences ÷ secondsPerToken, 1 ÷ bottleneckSeconds); ignores batching gains inside a stage. */
  readonly pipelinedTokensPerSecond: number;
  readonly maxBatchSequences: number;
  /** A few sentences on why the plan looks the way it does. */
  readonly explanation: string;
}

export type PlanErrorCode = 'invalid-input' | 'does-not-fit' | 'cannot-split';

/** The cluster cannot serve this model (or the input is nonsense). The message is meant for the operator. */
export class PlanError extends Error {
  override readonly name = 'PlanError';
  constructor(
    readonly code: PlanErrorCode,
    message: string,
    readonly neededBytes = 0,
    readonly offeredBytes = 0,
  ) {
    super(message);
  }
}

const DEFAULT_HOP_SECONDS = 0.0003;
const DEFAULT_COORDINATOR_HOPS = 2;
/** Candidate orders grow as n²; past this many workers only the linear set is tried. */
const MAX_WORKERS_FOR_PAIR_ORDERS = 8;
/** Relative slack when re-imposing the optimal bottleneck in the second pass (float noise only). */
const BOTTLENECK_SLACK = 1e-9;

function compareIds(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

function validate(model: ModelShape, workers: readonly WorkerBudget[], options: PlanOptions): void {
  const bad = (msg: string): never => {
    throw new PlanError('invalid-input', msg);
  };
  const nonNegative = (v: number, what: string): void => {
    if (!Number.isFinite(v) || v < 0) bad(`${what} must be a non-negative number, got ${v}`);
  };
  if (!Number.isInteger(model.nLayers) || model.nLayers < 1) bad(`the model must have at least one layer, got ${model.nLayers}`);
  if (model.bytesPerLayer.length !== model.nLayers) bad(`bytesPerLayer has ${model.bytesPerLayer.length} entries for ${model.nLayers} layers`);
  model.bytesPerLayer.forEach((b, i) => nonNegative(b, `bytesPerLayer[${i}]`));
  nonNegative(model.embeddingBytes, 'embeddingBytes');
  nonNegative(model.headBytes, 'headBytes');
  nonNegative(model.kvBytesPerTokenPerLayer, 'kvBytesPerTokenPerLayer');
  if (!Number.isInteger(model.contextTokens) || model.contextTokens < 1) bad(`contextTokens must be a positive integer, got ${model.contextTokens}`);
  if (!Number.isInteger(model.maxBatchSequences) || model.maxBatchSequences < 1) bad(`maxBatchSequences must be a positive integer, got ${model.maxBatchSequences}`);
  if (workers.length === 0) bad('there are no workers to plan for');
  const seen = new Set<string>();
  for (const w of workers) {
    if (seen.has(w.id)) bad(`worker id "${w.id}" appears twice`);
    seen.add(w.id);
    nonNegative(w.memoryBytes, `memory of worker "${w.id}"`);
    if (!Number.isFinite(w.speed) || w.speed <= 0) bad(`speed of worker "${w.id}" must be positive, got ${w.speed}`);
  }
  nonNegative(options.hopSeconds ?? 0, 'hopSeconds');
  nonNegative(options.coordinatorHops ?? 0, 'coordinatorHops');
  nonNegative(options.reserveBytesPerWorker ?? 0, 'reserveBytesPerWorker');
}

/** Everything the DP needs, precomputed once. */
interface Costs {
  readonly L: number;
  /** prefix sums: weights[l] = bytes of layers [0, l) */
  readonly weightPrefix: Float64Array;
  readonly kvPerLayer: number;
  readonly embeddingBytes: number;
  readonly headBytes: number;
  readonly reserve: number;
  readonly hopSeconds: number;
}

function stageWeightBytes(c: Costs, from: number, to: number): number {
  return c.weightPrefix[to]! - c.weightPrefix[from]! + (from === 0 ? c.embeddingBytes : 0) + (to === c.L ? c.headBytes : 0);
}

/** Memory a stage holding layers [from, to) needs: weights, KV cache, reserve. */
function stageMemoryBytes(c: Costs, from: number, to: number): number {
  return stageWeightBytes(c, from, to) + (to - from) * c.kvPerLayer + c.reserve;
}

/** Seconds per token for a stage: layer weights (and the head) are streamed once per token; the embedding is not. */
function stageSeconds(c: Costs, from: number, to: number, speed: number): number {
  return (c.weightPrefix[to]! - c.weightPrefix[from]! + (to === c.L ? c.headBytes : 0)) / speed;
}

interface Split {
  /** bounds[i] = first layer of worker i in this order; bounds[n] = L. Equal neighbours = worker unused. */
  readonly bounds: number[];
  readonly maxSeconds: number;
  readonly sumSeconds: number;
}

/**
 * Best split of layers over `order`. mode 'minmax': minimise the slowest stage. mode 'sum': minimise total time
 * (stage compute + one hop per used stage), optionally with every stage at most `capSeconds`; ties on the sum go
 * to the smaller maximum, which keeps the DP exact (both keys are monotone under extension).
 */
function bestSplit(c: Costs, order: readonly WorkerBudget[], mode: 'minmax' | 'sum', capSeconds = Infinity): Split | null {
  const n = order.length;
  const L = c.L;
  // primary[i][l], secondary[i][l]: best value with the first i workers covering layers [0, l).
  const primary = Array.from({ length: n + 1 }, () => new Float64Array(L + 1).fill(Infinity));
  const secondary = Array.from({ length: n + 1 }, () => new Float64Array(L + 1).fill(Infinity));
  const choice = Array.from({ length: n + 1 }, () => new Int32Array(L + 1).fill(-1));
  primary[0]![0] = 0;
  secondary[0]![0] = 0;
  for (let i = 1; i <= n; i++) {
    const w = order[i - 1]!;
    const pPrev = primary[i - 1]!;
    const sPrev = secondary[i - 1]!;
    const pCur = primary[i]!;
    const sCur = secondary[i]!;
    const chCur = choice[i]!;
    for (let to = 0; to <= L; to++) {
      // Worker unused: carries the previous state over (from === to).
      if (pPrev[to]! < Infinity) {
        pCur[to] = pPrev[to]!;
        sCur[to] = sPrev[to]!;
        chCur[to] = to;
      }
      for (let from = to - 1; from >= 0; from--) {
        if (pPrev[from] === Infinity) continue;
        if (stageMemoryBytes(c, from, to) > w.memoryBytes) break; // larger ranges only grow
        const t = stageSeconds(c, from, to, w.speed);
        if (t > capSeconds) break;
        let p: number;
        let s: number;
        if (mode === 'minmax') {
          p = Math.max(pPrev[from]!, t);
          s = sPrev[from]! + t + c.hopSeconds;
        } else {
          p = pPrev[from]! + t + c.hopSeconds;
          s = Math.max(sPrev[from]!, t);
        }
        if (p < pCur[to]! || (p === pCur[to]! && s < sCur[to]!)) {
          pCur[to] = p;
          sCur[to] = s;
          chCur[to] = from;
        }
      }
    }
  }
  if (primary[n]![L] === Infinity) return null;
  const bounds = new Array<number>(n + 1);
  bounds[n] = L;
  for (let i = n; i >= 1; i--) bounds[i - 1] = choice[i]![bounds[i]!]!;
  let maxSeconds = 0;
  let sumSeconds = 0;
  for (let i = 0; i < n; i++) {
    if (bounds[i] === bounds[i + 1]) continue;
    const t = stageSeconds(c, bounds[i]!, bounds[i + 1]!, order[i]!.speed);
    maxSeconds = Math.max(maxSeconds, t);
    sumSeconds += t + c.hopSeconds;
  }
  return { bounds, maxSeconds, sumSeconds };
}

function splitFor(c: Costs, order: readonly WorkerBudget[], objective: PlanObjective): Split | null {
  if (objective === 'latency') return bestSplit(c, order, 'sum');
  const balanced = bestSplit(c, order, 'minmax');
  if (!balanced) return null;
  // Second pass: among splits with that bottleneck, the one with the least single-stream time.
  return bestSplit(c, order, 'sum', balanced.maxSeconds * (1 + BOTTLENECK_SLACK)) ?? balanced;
}

function better(a: Split, b: Split, objective: PlanObjective): boolean {
  const [a1, a2, b1, b2] = objective === 'latency' ? [a.sumSeconds, a.maxSeconds, b.sumSeconds, b.maxSeconds] : [a.maxSeconds, a.sumSeconds, b.maxSeconds, b.sumSeconds];
  return a1 < b1 || (a1 === b1 && a2 < b2);
}

/**
 * Stage orders to try. The base order runs slowest → fastest (ties by id): the head, read on every token, lands on
 * a fast worker and the embedding, read one row per token, on a slow one. The variants move one worker to either
 * end (or, for small clusters, any pair to the two ends) so a worker that alone can hold the embedding or the
 * head can take that role.
 */
function candidateOrders(workers: readonly WorkerBudget[]): WorkerBudget[][] {
  const base = [...workers].sort((a, b) => a.speed - b.speed || compareIds(a.id, b.id));
  const orders = new Map<string, WorkerBudget[]>();
  const add = (order: WorkerBudget[]): void => {
    const key = order.map((w) => w.id).join('\u0000');
    if (!orders.has(key)) orders.set(key, order);
  };
  const without = (...skip: WorkerBudget[]): WorkerBudget[] => base.filter((w) => !skip.includes(w));
  add(base);
  for (const w of base) {
    add([...without(w), w]);
    add([w, ...without(w)]);
  }
  if (base.length <= MAX_WORKERS_FOR_PAIR_ORDERS) {
    for (const first of base) for (const last of base) if (first !== last) add([first, ...without(first, last), last]);
  }
  return [...orders.values()];
}

/**
 * Plan a split of `model` over `workers`. Throws PlanError when the model cannot fit, naming what it needs and
 * what the cluster offers ("needs 7.4 GiB, the cluster offers 5.0 GiB").
 */
export function planLayers(model: ModelShape, workers: readonly WorkerBudget[], options: PlanOptions = {}): Plan {
  validate(model, workers, options);
  const objective = options.objective ?? 'throughput';
  const hopSeconds = options.hopSeconds ?? DEFAULT_HOP_SECONDS;
  const coordinatorHops = options.coordinatorHops ?? DEFAULT_COORDINATOR_HOPS;
  const L = model.nLayers;
  const weightPrefix = new Float64Array(L + 1);
  for (let l = 0; l < L; l++) weightPrefix[l + 1] = weightPrefix[l]! + model.bytesPerLayer[l]!;
  const costs: Costs = {
    L,
    weightPrefix,
    kvPerLayer: model.kvBytesPerTokenPerLayer * model.contextTokens * model.maxBatchSequences,
    embeddingBytes: model.embeddingBytes,
    headBytes: model.headBytes,
    reserve: options.reserveBytesPerWorker ?? 0,
    hopSeconds,
  };
  const offeredBytes = workers.reduce((s, w) => s + w.memoryBytes, 0);

  let best: { split: Split; order: WorkerBudget[] } | null = null;
  for (const order of candidateOrders(workers)) {
    const split = splitFor(costs, order, objective);
    if (split && (!best || better(split, best.split, objective))) best = { split, order };
  }
  if (!best) throw refusal(model, workers, costs, offeredBytes);

  const { split, order } = best;
  const stages: PlanStage[] = [];
  const unused: UnusedWorker[] = [];
  for (let i = 0; i < order.length; i++) {
    const w = order[i]!;
    const from = split.bounds[i]!;
    const to = split.bounds[i + 1]!;
    if (from === to) continue;
    const weightBytes = stageWeightBytes(costs, from, to);
    const kvBytes = (to - from) * costs.kvPerLayer;
    stages.push({
      workerId: w.id,
      firstLayer: from,
      lastLayer: to,
      hasEmbedding: from === 0,
      hasHead: to === L,
      weightBytes,
      kvBytes,
      memoryBytes: weightBytes + kvBytes + costs.reserve,
      budgetBytes: w.memoryBytes,
      speed: w.speed,
      secondsPerToken: stageSeconds(costs, from, to, w.speed),
    });
  }
  const used = new Set(stages.map((s) => s.workerId));
  for (const w of [...workers].sort((a, b) => compareIds(a.id, b.id))) {
    if (!used.has(w.id)) unused.push({ workerId: w.id, reason: whyUnused(w, costs, objective) });
  }

  const hopsPerToken = stages.length - 1 + coordinatorHops;
  const computeSeconds = stages.reduce((s, st) => s + st.secondsPerToken, 0);
  const secondsPerToken = computeSeconds + hopsPerToken * hopSeconds;
  const slowest = stages.reduce((a, b) => (b.secondsPerToken > a.secondsPerToken ? b : a));
  const bottleneckSeconds = slowest.secondsPerToken + hopSeconds;
  const pipelinedTokensPerSecond = Math.min(model.maxBatchSequences / secondsPerToken, 1 / bottleneckSeconds);
  const neededBytes = stages.reduce((s, st) => s + st.memoryBytes, 0);

  const plan: Omit<Plan, 'explanation'> = {
    objective,
    nLayers: L,
    stages,
    unused,
    neededBytes,
    offeredBytes,
    hopSeconds,
    hopsPerToken,
    secondsPerToken,
    tokensPerSecond: 1 / secondsPerToken,
    bottleneckSeconds,
    bottleneckWorkerId: slowest.workerId,
    pipelinedTokensPerSecond,
    maxBatchSequences: model.maxBatchSequences,
  };
  return { ...plan, explanation: explain(plan, costs) };
}

function whyUnused(w: WorkerBudget, c: Costs, objective: PlanObjective): string {
  let smallest = Infinity;
  for (let l = 0; l < c.L; l++) smallest = Math.min(smallest, stageMemoryBytes(c, l, l + 1));
  if (w.memoryBytes < smallest) {
    return `its ${formatBytes(w.memoryBytes)} cannot hold even one layer with its KV cache (${formatBytes(smallest)})`;
  }
  return objective === 'latency'
    ? 'faster workers hold the whole model; using it would add time per token'
    : 'giving it layers would not shorten the slowest stage';
}

function refusal(model: ModelShape, workers: readonly WorkerBudget[], c: Costs, offeredBytes: number): PlanError {
  const weights = c.weightPrefix[c.L]! + c.embeddingBytes + c.headBytes;
  const kv = c.kvPerLayer * c.L;
  const needed = weights + kv + c.reserve;
  const kvNote = `KV cache ${formatBytes(kv)} for ${model.contextTokens} tokens × ${model.maxBatchSequences} sequences`;
  if (needed > offeredBytes) {
    const [need, offer] = formatBytePair(needed, offeredBytes);
    return new PlanError(
      'does-not-fit',
      `the model needs ${need}, the cluster offers ${offer} (weights ${formatBytes(weights)}, ${kvNote}); add workers or memory, or lower the context or batch size`,
      needed,
      offeredBytes,
    );
  }
  const largest = Math.max(...workers.map((w) => w.memoryBytes));
  let biggestPiece = 0;
  let pieceName = '';
  for (let l = 0; l < c.L; l++) {
    const m = stageMemoryBytes(c, l, l + 1);
    if (m > biggestPiece) [biggestPiece, pieceName] = [m, l === 0 ? 'layer 0 with the embedding' : l === c.L - 1 ? `layer ${l} with the head` : `layer ${l}`];
  }
  const [need, offer] = formatBytePair(needed, offeredBytes);
  return new PlanError(
    'cannot-split',
    `the model needs ${need} and the cluster offers ${offer} in total, but no split into contiguous layer ranges fits every worker: ` +
      `the largest piece (${pieceName}, KV cache included) needs ${formatBytes(biggestPiece)} and the largest worker offers ${formatBytes(largest)}`,
    needed,
    offeredBytes,
  );
}

function explain(p: Omit<Plan, 'explanation'>, c: Costs): string {
  const lines: string[] = [];
  const n = p.stages.length;
  const workerCount = n + p.unused.length;
  if (n === 1) {
    lines.push(`All ${p.nLayers} layers fit on worker "${p.stages[0]!.workerId}".`);
  } else if (p.objective === 'throughput') {
    lines.push(
      `${p.nLayers} layers split over ${n} of ${workerCount} workers so stage times balance (layers roughly in proportion to speed, capped by memory); the slowest stage is "${p.bottleneckWorkerId}".`,
    );
  } else {
    lines.push(`${p.nLayers} layers split over ${n} of ${workerCount} workers, packing the fastest workers first to minimise single-stream time per token.`);
  }
  const full = p.stages.filter((s) => s.memoryBytes >= s.budgetBytes * 0.98);
  if (full.length > 0) lines.push(`Memory-bound: ${full.map((s) => `"${s.workerId}"`).join(', ')} ${full.length === 1 ? 'is' : 'are'} filled to its budget.`);
  for (const u of p.unused) lines.push(`Left out: "${u.workerId}" — ${u.reason}.`);
  lines.push(
    `KV cache: ${formatBytes(c.kvPerLayer)} per layer (context × ${p.maxBatchSequences} sequence${p.maxBatchSequences === 1 ? '' : 's'}), included in every stage's memory.`,
  );
  lines.push(
    `Predicted: ${p.tokensPerSecond.toFixed(1)} tokens/s for one sequence (${(p.secondsPerToken * 1e3).toFixed(2)} ms/token, of which ${p.hopsPerToken} hop${p.hopsPerToken === 1 ? '' : 's'} × ${(p.hopSeconds * 1e3).toFixed(2)} ms); ` +
      `up to ${p.pipelinedTokensPerSecond.toFixed(1)} tokens/s with ${p.maxBatchSequences} sequence${p.maxBatchSequences === 1 ? '' : 's'} in flight (before batching gains).`,
  );
  return lines.join('\n');
}

/** A tensor's name and size, as listed by a GGUF reader. */
export interface TensorSize {
  readonly name: string;
  readonly byteLength: number;
}

/**
 * Build a ModelShape from a GGUF tensor list (llama.cpp names: blk.N.*, token_embd.weight, output.weight,
 * output_norm.weight). With tied embeddings (no output.weight) the last stage needs its own copy of token_embd.
 */
export function modelShapeFromTensors(
  tensors: readonly TensorSize[],
  shape: Pick<ModelShape, 'nLayers' | 'kvBytesPerTokenPerLayer' | 'contextTokens' | 'maxBatchSequences'>,
): ModelShape {
  const bytesPerLayer = new Array<number>(shape.nLayers).fill(0);
  let embeddingBytes = 0;
  let outputBytes: number | null = null;
  let headExtraBytes = 0;
  for (const t of tensors) {
    const m = /^blk\.(\d+)\./.exec(t.name);
    if (m) {
      const layer = Number(m[1]);
      if (layer >= shape.nLayers) throw new PlanError('invalid-input', `tensor ${t.name} belongs to layer ${layer}, but the model has ${shape.nLayers} layers`);
      bytesPerLayer[layer]! += t.byteLength;
    } else if (t.name === 'token_embd.weight') embeddingBytes += t.byteLength;
    else if (t.name === 'output.weight') outputBytes = t.byteLength;
    else headExtraBytes += t.byteLength; // output_norm.weight, rope tables…: small, kept with the head
  }
  return { ...shape, bytesPerLayer, embeddingBytes, headBytes: (outputBytes ?? embeddingBytes) + headExtraBytes };
}
