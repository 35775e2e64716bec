/**
 * `npm run bench:context`: single-stream decode speed after prompts of growing length, Butterfly against llama.cpp
 * (node-llama-cpp 3.21.1, F32 KV cache like Butterfly's, no flash attention) on the same synthesized file, each
 * measurement in a fresh child process. Attention reads the whole cache every token, so this shows how decode slows
 * as the context fills. Speed is never asserted.
 *   node dist/bench/context.js [--preset medium] [--type q4_0] [--threads 1] [--positions 16,500,1000,1900]
 */
import { execFileSync } from 'node:child_process';
import { cpus } from 'node:os';
import { fileURLToPath } from 'node:url';
import { ensureSyntheticModel } from '../src/cli/synth.js';
import { createKernels } from '../src/engine/kernels/index.js';
import { loadStage, openModel, wholeModel } from '../src/engine/model/load.js';
import { LocalPipeline } from '../src/engine/model/pipeline.js';
import type { SynthPreset, SynthTypeName } from '../src/engine/synth.js';
import { arg, median } from './cli.js';

/** Tokens decoded after the prompt; the median time per token is reported. */
const DECODE_TOKENS = 48;

const HELP = `Usage: node dist/bench/context.js [--preset tiny|small|medium] [--type q4_0] [--threads 1] [--positions 16,500,1000,1900]

Prefills a prompt of each length, then decodes ${DECODE_TOKENS} greedy tokens and prints the median decode tok/s of
Butterfly and llama.cpp (node-llama-cpp, F32 KV cache) on the same synthesized model, each in a fresh process.`;

function promptOf(n: number, vocab: number): number[] {
  return Array.from({ length: n }, (_, i) => (i === 0 ? 1 : 3 + ((i * 7919) % (vocab - 3))));
}

async function butterfly(model: string, positions: number, threads: number): Promise<number> {
  const m = openModel(model);
  const kernels = createKernels({ threads });
  const p = new LocalPipeline([loadStage(m, wholeModel(m.cfg), kernels)]);
  const V = m.cfg.vocabSize;
  const logits = new Float32Array(V);
  const prompt = promptOf(positions, V);
  p.logitsSync({
    nTokens: positions, seqIds: new Int32Array(positions), positions: Int32Array.from(prompt, (_, i) => i),
    tokens: Int32Array.from(prompt), logitRows: Int32Array.of(positions - 1), logitsOut: logits,
  });
  const times: number[] = [];
  let tok = 5;
  for (let i = 0; i < DECODE_TOKENS; i++) {
    const t = performance.now();
    p.logitsSync({
      nTokens: 1, seqIds: Int32Array.of(0), positions: Int32Array.of(positions + i), tokens: Int32Array.of(tok),
      logitRows: Int32Array.of(0), logitsOut: logits,
    });
    times.push(performance.now() - t);
    let best = 0;
    for (let j = 1; j < V; j++) if (logits[j]! > logits[best]!) best = j;
    tok = best;
  }
  kernels.dispose();
  return 1000 / median(times);
}

async function llamaCpp(model: string, positions: number, threads: number): Promise<number> {
  const { getLlama, LlamaLogLevel } = await import('node-llama-cpp');
  const llama = await getLlama({ gpu: false, build: 'never', logLevel: LlamaLogLevel.error, maxThreads: threads });
  const lm = await llama.loadModel({ modelPath: model, gpuLayers: 0 });
  const shape = openModel(model);
  const V = shape.cfg.vocabSize;
  shape.file.close();
  const ctx = await lm.createContext({
    contextSize: positions + DECODE_TOKENS + 16, sequences: 1, batchSize: 512, threads, flashAttention: false,
    experimentalKvCacheKeyType: 'F32', experimentalKvCacheValueType: 'F32',
  } as never);
  const s = ctx.getSequence();
  await s.evaluateWithoutGeneratingNewTokens(promptOf(positions, V) as never);
  const times: number[] = [];
  let t = performance.now();
  for await (const _tok of s.evaluate([5] as never, { temperature: 0 })) {
    const now = performance.now();
    times.push(now - t);
    t = now;
    if (times.length >= DECODE_TOKENS) break;
  }
  await ctx.dispose();
  await lm.dispose();
  return 1000 / median(times);
}

const self = fileURLToPath(import.meta.url);
if (process.argv[2] === '--child') {
  const [, , , engine, model, positions, threads] = process.argv;
  const tokPerS = engine === 'llamacpp'
    ? await llamaCpp(model!, Number(positions), Number(threads))
    : await butterfly(model!, Number(positions), Number(threads));
  process.stdout.write(`${tokPerS}\n`);
  process.exit(0);
}
if (process.argv.includes('--help') || process.argv.includes('-h')) {
  console.log(HELP);
  process.exit(0);
}

const preset = arg('preset', 'medium') as SynthPreset;
const type = arg('type', 'q4_0') as SynthTypeName;
const threads = Number(arg('threads', '1'));
const positionList = arg('positions', '16,500,1000,1900').split(',').map(Number);
const model = ensureSyntheticModel(preset, type);
const run = (engine: string, positions: number): number => {
  const out = execFileSync(process.execPath, [self, '--child', engine, model, String(positions), String(threads)], { encoding: 'utf8' });
  return Number(out.trim().split('\n').pop());
};

console.log(`# Decode after long prompts — ${preset} ${type}, ${threads} thread(s), ${cpus()[0]?.model ?? 'cpu'}, node ${process.version}`);
console.log('| prompt positions | Butterfly decode tok/s | llama.cpp decode tok/s (F32 KV) | ratio |');
console.log('|---|---|---|---|');
for (const positions of positionList) {
  const b = run('butterfly', positions);
  const l = run('llamacpp', positions);
  console.log(`| ${positions} | ${b.toFixed(1)} | ${l.toFixed(1)} | ${(b / l).toFixed(2)}× |`);
}
