/**
 * `npm run bench`: Butterfly against llama.cpp (node-llama-cpp 3.21.1) on the same synthesized files, each run in a
 * fresh child process, printed as one table with ratios. Models are synthesized once into .cache/models/.
 *   node dist/bench/engine.js [--preset medium] [--types f32,q8_0,q4_0,q4_k] [--threads 1,2]
 */
import { execFileSync } from 'node:child_process';
import { statSync } from 'node:fs';
import { cpus } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ensureSyntheticModel } from '../src/cli/synth.js';
import type { SynthPreset, SynthTypeName } from '../src/engine/synth.js';
import { BATCH_SIZES, type RunResult } from './engine-common.js';

function arg(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && process.argv[i + 1] ? process.argv[i + 1]! : fallback;
}

const preset = arg('preset', 'medium') as SynthPreset;
const types = arg('types', 'f32,q8_0,q4_0,q4_k').split(',') as SynthTypeName[];
const threadCounts = arg('threads', '1,2').split(',').map(Number);
const runner = join(dirname(fileURLToPath(import.meta.url)), 'engine-run.js');

function run(engine: string, model: string, threads: number): RunResult {
  const out = execFileSync(process.execPath, [runner, engine, model, String(threads)], { encoding: 'utf8', maxBuffer: 1 << 20 });
  return JSON.parse(out.trim().split('\n').pop()!) as RunResult;
}

const f = (x: number): string => x.toFixed(1);
const r = (a: number, b: number): string => (b > 0 ? (a / b).toFixed(2) + '×' : '-');
const mib = (b: number): string => (b / 2 ** 20).toFixed(0);

console.log(`# Butterfly vs llama.cpp — ${preset} model, ${cpus()[0]?.model ?? 'cpu'}, ${cpus().length} vCPU, node ${process.version}`);
console.log(`| model | type | threads | prefill tok/s (ratio) | decode tok/s (ratio) | ${BATCH_SIZES.map((b) => `batched B=${b} tok/s (ratio)`).join(' | ')} | RSS MiB (file MiB, llama.cpp MiB) |`);
console.log(`|---|---|---|---|---|${BATCH_SIZES.map(() => '---').join('|')}|---|`);
for (const type of types) {
  const model = ensureSyntheticModel(preset, type);
  const fileBytes = statSync(model).size;
  for (const threads of threadCounts) {
    const b = run('butterfly', model, threads);
    const l = run('llamacpp', model, threads);
    const batched = BATCH_SIZES.map((B) => `${f(b.batched[B]!)} (${r(b.batched[B]!, l.batched[B]!)})`).join(' | ');
    console.log(`| ${preset} | ${type} | ${threads} | ${f(b.prefillTokPerS)} (${r(b.prefillTokPerS, l.prefillTokPerS)}) | ${f(b.decodeTokPerS)} (${r(b.decodeTokPerS, l.decodeTokPerS)}) | ${batched} | ${mib(b.rssBytes)} (${mib(fileBytes)}, ${mib(l.rssBytes)}) |`);
  }
}
