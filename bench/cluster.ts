/**
 * `npm run bench:cluster`: the cluster on this host. Single-stream decode tok/s with 1, 2, 3 stages (worker
 * processes over loopback TCP) against the same engine in-process, aggregate tok/s at 1, 4 and 16 concurrent
 * streams, activation bytes per token per hop, and the cost of one hop.
 *   node dist/bench/cluster.js [--preset small] [--type q8_0] [--tokens 64]
 */
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { cpus } from 'node:os';
import { startEmbeddedCluster } from '../src/cluster/embedded.js';
import { silentLogger } from '../src/cluster/log.js';
import { ensureSyntheticModel } from '../src/cli/synth.js';
import { createKernels } from '../src/engine/kernels/index.js';
import { loadStage, openModel, wholeModel } from '../src/engine/model/load.js';
import { LocalPipeline } from '../src/engine/model/pipeline.js';
import { generate } from '../src/engine/generate.js';
import type { SynthPreset, SynthTypeName } from '../src/engine/synth.js';
import type { TaskInput } from '../src/cluster/scheduler.js';
import type { CoordinatorNode } from '../src/cluster/coordinator/coordinator-node.js';
import { arg } from './cli.js';

const preset = arg('preset', 'small') as SynthPreset;
const type = arg('type', 'q8_0') as SynthTypeName;
const TOKENS = Number(arg('tokens', '64'));
const BIN = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'bin', 'butterfly.js');
const greedy = { temperature: 0, topK: 0, topP: 1, minP: 0, repeatPenalty: 1, repeatLastN: 64, seed: 0 };
const prompt = (i: number): number[] => Array.from({ length: 8 }, (_, k) => 1 + ((k * 37 + i * 101) % 900));

function run(node: CoordinatorNode, input: Omit<TaskInput, 'taskId'>): Promise<number> {
  return new Promise((resolve, reject) => {
    let n = 0;
    node.submit(input, { onToken: () => n++, onFinish: (r) => (r === 'error' ? reject(new Error('task failed')) : resolve(n)) });
  });
}

/** Tokens per second over `streams` concurrent greedy requests (excluding the first token of each: prefill). */
async function aggregate(node: CoordinatorNode, streams: number): Promise<number> {
  await run(node, { promptIds: prompt(99), maxTokens: 4, topLogprobs: 0, ignoreEos: true, sampler: greedy }); // warm-up
  const t0 = performance.now();
  const counts = await Promise.all(Array.from({ length: streams }, (_, i) => run(node, { promptIds: prompt(i), maxTokens: TOKENS, topLogprobs: 0, ignoreEos: true, sampler: greedy })));
  const ms = performance.now() - t0;
  return (counts.reduce((a, b) => a + b, 0) * 1000) / ms;
}

const model = ensureSyntheticModel(preset, type);
const m = openModel(model);
const dim = m.cfg.dim;
const threads = Math.max(1, cpus().length);

// Baseline: the same engine in this process, no sockets.
const kernels = createKernels({ threads: 1 });
const local = new LocalPipeline([loadStage(m, wholeModel(m.cfg), kernels)]);
await generate(local, { promptIds: prompt(99), maxTokens: 4, contextLength: m.cfg.contextLength, sampler: greedy, ignoreEos: true });
const base = await generate(local, { promptIds: prompt(0), maxTokens: TOKENS, contextLength: m.cfg.contextLength, sampler: greedy, ignoreEos: true });
const baseTokPerS = base.timings.decode_tokens_per_s;
kernels.dispose();

console.log(`# Butterfly cluster on one host — ${preset} ${type}, ${cpus()[0]?.model ?? 'cpu'}, ${threads} vCPU, node ${process.version}`);
console.log(`in-process engine (1 thread): ${baseTokPerS.toFixed(1)} tok/s single-stream decode`);
console.log(`activation bytes per token per hop: ${dim * 4} (F32 hidden state, dim ${dim}) + 40-byte frame header + JSON control part`);
console.log('');
console.log('| stages | single-stream tok/s (vs in-process) | 4 streams tok/s | 16 streams tok/s (vs 1 stream) | per-hop overhead µs/token |');
console.log('|---|---|---|---|---|');
for (const stages of [1, 2, 3]) {
  const cluster = await startEmbeddedCluster({ modelPath: model, workers: stages, command: [process.execPath, BIN], logger: silentLogger, workerLogs: false, threadsPerWorker: 1 });
  try {
    const node = cluster.coordinator;
    const single = await aggregate(node, 1);
    const four = await aggregate(node, 4);
    const sixteen = await aggregate(node, 16);
    const msPerToken = 1000 / single;
    // Hops per token: coordinator → first stage, stage → stage, last stage → coordinator: stages + 1 in all. The
    // overhead is the time per token beyond the in-process engine's, spread over those hops (with several stages on
    // this host, stages also get their own cores, which can make the figure small or negative).
    const hopUs = ((msPerToken - 1000 / baseTokPerS) * 1000) / (stages + 1);
    console.log(`| ${stages} | ${single.toFixed(1)} (${(single / baseTokPerS).toFixed(2)}×) | ${four.toFixed(1)} | ${sixteen.toFixed(1)} (${(sixteen / single).toFixed(2)}×) | ${hopUs.toFixed(0)} |`);
  } finally {
    await cluster.stop('bench done');
  }
}
m.file.close();
