/**
 * `npm run bench:step`: where a decode step's time goes — every kernel call of a `LocalPipeline` step timed, per
 * batch size, in one process. The figures the kernel work in docs/kernel-decision.md was steered by.
 *   node dist/bench/step.js [--preset medium] [--type q4_0] [--threads 1] [--batches 1,4,16] [--steps 24]
 */
import { cpus } from 'node:os';
import { ensureSyntheticModel } from '../src/cli/synth.js';
import { createKernels } from '../src/engine/kernels/index.js';
import type { Kernels } from '../src/engine/kernels/types.js';
import { loadStage, openModel, wholeModel } from '../src/engine/model/load.js';
import { LocalPipeline } from '../src/engine/model/pipeline.js';
import type { SynthPreset, SynthTypeName } from '../src/engine/synth.js';
import { arg } from './cli.js';

const HELP = `Usage: node dist/bench/step.js [--preset tiny|small|medium] [--type q4_0] [--threads 1] [--batches 1,4,16] [--steps 24]

For each batch size B: B sequences are prefilled with 16 tokens, then decoded together for --steps steps; prints the
mean time per step and how much of it each kernel took (matmul, attention, …; "other" is everything outside the
kernels: JavaScript, KV-cache writes, argument checks). Speed is never asserted.`;

if (process.argv.includes('--help') || process.argv.includes('-h')) {
  console.log(HELP);
  process.exit(0);
}

const preset = arg('preset', 'medium') as SynthPreset;
const type = arg('type', 'q4_0') as SynthTypeName;
const threads = Number(arg('threads', '1'));
const batches = arg('batches', '1,4,16').split(',').map(Number);
const steps = Number(arg('steps', '24'));
const TIMED = ['matmul', 'attention', 'swiglu', 'rmsNorm', 'add', 'addBias', 'rope', 'getRow'] as const;

const base = createKernels({ threads });
const msByKernel = new Map<string, number>();
// The same kernels, each call timed (prepareWeight and the rest pass through untouched).
const timed: Kernels = Object.create(base) as Kernels;
for (const name of TIMED) {
  const f = (base[name] as (...a: unknown[]) => unknown).bind(base);
  (timed as unknown as Record<string, unknown>)[name] = (...a: unknown[]): unknown => {
    const t = performance.now();
    const r = f(...a);
    msByKernel.set(name, (msByKernel.get(name) ?? 0) + performance.now() - t);
    return r;
  };
}

const model = openModel(ensureSyntheticModel(preset, type));
const pipe = new LocalPipeline([loadStage(model, wholeModel(model.cfg), timed)]);
const V = model.cfg.vocabSize;
const PROMPT = 16;

console.log(`# Decode step breakdown — ${preset} ${type}, ${threads} thread(s), ${cpus()[0]?.model ?? 'cpu'}, node ${process.version}`);
console.log(`| B | ms per step | tok/s | ${TIMED.join(' | ')} | other |`);
console.log(`|---|---|---|${TIMED.map(() => '---').join('|')}|---|`);
for (const B of batches) {
  const logits = new Float32Array(B * V);
  for (let s = 0; s < B; s++) {
    pipe.logitsSync({
      nTokens: PROMPT, seqIds: new Int32Array(PROMPT).fill(s), positions: Int32Array.from({ length: PROMPT }, (_, i) => i),
      tokens: Int32Array.from({ length: PROMPT }, (_, i) => 3 + ((i * 31 + s * 7) % (V - 3))), logitRows: Int32Array.of(PROMPT - 1),
      logitsOut: logits,
    });
  }
  msByKernel.clear();
  const t0 = performance.now();
  for (let i = 0; i < steps; i++) {
    pipe.logitsSync({
      nTokens: B, seqIds: Int32Array.from({ length: B }, (_, s) => s), positions: new Int32Array(B).fill(PROMPT + i),
      tokens: Int32Array.from({ length: B }, (_, s) => 3 + ((i * 13 + s) % (V - 3))), logitsOut: logits,
    });
  }
  const perStep = (performance.now() - t0) / steps;
  const parts = TIMED.map((k) => (msByKernel.get(k) ?? 0) / steps);
  const other = perStep - parts.reduce((a, b) => a + b, 0);
  console.log(`| ${B} | ${perStep.toFixed(3)} | ${((B * 1000) / perStep).toFixed(1)} | ${parts.map((x) => x.toFixed(3)).join(' | ')} | ${other.toFixed(3)} |`);
  for (let s = 0; s < B; s++) await pipe.dropSequence(s);
}
base.dispose();
