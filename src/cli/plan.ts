/**
 * `butterfly plan`: how the coordinator would split a model over a set of workers — without loading any weights
 * (only the GGUF header is read) and without any worker running. For sizing a cluster before building it.
 */
import { totalmem } from 'node:os';
import { InvalidArgumentError, type Command } from 'commander';
import { formatBytes, formatPlan, parseWorkerSpecs } from '../cluster/plan-format.js';
import { PlanError, modelShapeFromTensors, planLayers, type ModelShape, type PlanObjective, type WorkerBudget } from '../cluster/planner.js';
import { openModel } from '../engine/model/load.js';
import { UsageError } from './errors.js';
import { intArg } from './options.js';

/** What a bare `--workers N` assumes per worker: a share of this machine's memory and a typical DDR bandwidth. */
const LOCAL_MEMORY_FRACTION = 0.8;
const LOCAL_SPEED_BYTES_PER_SECOND = 25e9;
/** The coordinator's default for concurrent sequences (CoordinatorOptions.maxActiveSequences). */
const DEFAULT_SEQUENCES = 16;

/** "a=8GiB@25GB/s,b=4GiB@12GB/s", or a bare count N: N equal local workers sharing 80% of this machine's memory. */
export function workersArg(v: string, totalMemoryBytes = totalmem()): WorkerBudget[] {
  if (/^\d+$/.test(v.trim())) {
    const n = Number(v);
    if (n < 1 || n > 256) throw new InvalidArgumentError('--workers N must be between 1 and 256');
    const memoryBytes = Math.floor((totalMemoryBytes * LOCAL_MEMORY_FRACTION) / n);
    return Array.from({ length: n }, (_, i) => ({ id: `w${i + 1}`, memoryBytes, speed: LOCAL_SPEED_BYTES_PER_SECOND }));
  }
  try {
    const workers = parseWorkerSpecs(v);
    if (workers.length === 0) throw new Error('no workers given');
    return workers;
  } catch (err) {
    throw new InvalidArgumentError(`${(err as Error).message} (or give a count, e.g. --workers 2)`);
  }
}

function objectiveArg(v: string): PlanObjective {
  if (v !== 'throughput' && v !== 'latency') throw new InvalidArgumentError('--objective must be throughput or latency');
  return v;
}

export interface PlanCommandOptions {
  readonly model: string;
  readonly workers: readonly WorkerBudget[];
  readonly context?: number;
  readonly sequences: number;
  readonly objective: PlanObjective;
}

/** The plan as text, or a UsageError carrying the planner's "needs …, the cluster offers …" explanation. */
export function planText(o: PlanCommandOptions): string {
  const model = openModel(o.model);
  let shape: ModelShape;
  try {
    const cfg = model.cfg;
    shape = modelShapeFromTensors(model.file.tensors, {
      nLayers: cfg.nLayers,
      // As ModelCatalog.plannerShape: K and V per token per layer, kept as f32.
      kvBytesPerTokenPerLayer: 2 * cfg.nKvHeads * cfg.headDim * 4,
      contextTokens: o.context ?? cfg.contextLength,
      maxBatchSequences: o.sequences,
    });
  } finally {
    model.file.close();
  }
  try {
    const plan = planLayers(shape, o.workers, { objective: o.objective });
    const weights = shape.bytesPerLayer.reduce((a, b) => a + b, 0) + shape.embeddingBytes + shape.headBytes;
    const head = `Model: ${o.model} — ${shape.nLayers} layers, ${formatBytes(weights)} of weights, context ${shape.contextTokens} × ${shape.maxBatchSequences} sequences\n\n`;
    return head + formatPlan(plan);
  } catch (err) {
    if (err instanceof PlanError) throw new UsageError(`cannot plan ${o.model}: ${err.message}`);
    throw err;
  }
}

export function registerPlan(program: Command, out: (text: string) => void = (t) => process.stdout.write(t)): void {
  program
    .command('plan')
    .description('show how the model would be split over workers (reads only the model header)')
    .requiredOption('-m, --model <file>', 'GGUF model file')
    .requiredOption('--workers <spec>', 'workers as id=memory@speed,… (e.g. a=8GiB@25GB/s,b=4GiB@12GB/s) or a count N of local workers', (v) => workersArg(v))
    .option('--context <n>', 'context tokens per sequence (default: the model\'s)', intArg('--context', 1, 2 ** 24))
    .option('--sequences <n>', 'concurrent sequences whose KV cache must fit', intArg('--sequences', 1, 4096), DEFAULT_SEQUENCES)
    .option('--objective <o>', 'throughput (balance stages) or latency (pack the fastest workers)', objectiveArg, 'throughput' as PlanObjective)
    .action((o: PlanCommandOptions) => {
      out(planText(o));
    });
}
