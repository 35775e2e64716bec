/**
 * `npm run bench`: Butterfly against llama.cpp (node-llama-cpp 3.21.1) on the same synthesized files, each run in a
 * fresh child process, printed as tables with ratios. Models are synthesized once into .cache/models/.
 *   node dist/bench/engine.js [--preset medium] [--types f32,q8_0,q4_0,q4_k] [--threads 1,2]
 */
import { execFileSync } from 'node:child_process';
import { statSync } from 'node:fs';
import { cpus } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ensureSyntheticModel } from '../src/cli/synth.js';
import type { SynthPreset, SynthTypeName } from '../src/engine/synth.js';
import { BATCH_SIZES, DECODE_TOKENS, PLATEAU_BATCH, PREFILL_TOKENS, type RunResult } from './engine-common.js';
import { arg, median } from './cli.js';

const HELP = `Usage: node dist/bench/engine.js [--preset tiny|small|medium] [--types f32,q8_0,q4_0,q4_k] [--threads 1,2] [--repeat N]

Runs Butterfly and llama.cpp (node-llama-cpp) on the same synthesized model, each in a fresh process, and prints:
  1. prefill (${PREFILL_TOKENS}-token prompt), single-stream decode (${DECODE_TOKENS} tokens), batched decode of
     B = ${BATCH_SIZES.join(', ')} sequences (aggregate tok/s) and resident memory, with Butterfly ÷ llama.cpp;
  2. Butterfly's batching efficiency: batched tok/s ÷ (B × single-stream tok/s), and ÷ min(B × single-stream,
     the compute bound), where the compute bound is the aggregate decode tok/s of ${PLATEAU_BATCH} sequences (past
     which more sequences add no throughput); prefill tok/s (every weight read serves ${PREFILL_TOKENS} tokens) is
     shown beside it.
With --repeat N (default 1) each engine runs N times per row, alternating, and every figure is the median of its N
runs (this 2-vCPU VM's speed drifts by ±10% with its neighbours' load).
Models are cached in .cache/models/. Speed is never asserted; compare ratios within one run.`;

if (process.argv.includes('--help') || process.argv.includes('-h')) {
  console.log(HELP);
  process.exit(0);
}

const preset = arg('preset', 'medium') as SynthPreset;
const types = arg('types', 'f32,q8_0,q4_0,q4_k').split(',') as SynthTypeName[];
const threadCounts = arg('threads', '1,2').split(',').map(Number);
const repeat = Math.max(1, Math.floor(Number(arg('repeat', '1'))) || 1);
const runner = join(dirname(fileURLToPath(import.meta.url)), 'engine-run.js');

function run(engine: string, model: string, threads: number): RunResult {
  const out = execFileSync(process.execPath, [runner, engine, model, String(threads)], { encoding: 'utf8', maxBuffer: 1 << 20 });
  return JSON.parse(out.trim().split('\n').pop()!) as RunResult;
}

/** Every figure of several runs of one engine, each the median of its runs. */
function medianRun(runs: RunResult[]): RunResult {
  const m = (f: (r: RunResult) => number | undefined): number | undefined => {
    const xs = runs.map(f).filter((x): x is number => x !== undefined);
    return xs.length ? median(xs) : undefined;
  };
  const batched: Record<string, number> = {};
  for (const B of Object.keys(runs[0]!.batched)) batched[B] = m((r) => r.batched[B])!;
  return {
    prefillTokPerS: m((r) => r.prefillTokPerS)!, decodeTokPerS: m((r) => r.decodeTokPerS)!, batched,
    plateauTokPerS: m((r) => r.plateauTokPerS), baselineRssBytes: m((r) => r.baselineRssBytes)!,
    decodeRssBytes: m((r) => r.decodeRssBytes)!, rssBytes: m((r) => r.rssBytes)!,
  };
}

const f = (x: number): string => x.toFixed(1);
const r = (a: number, b: number): string => (b > 0 ? (a / b).toFixed(2) + '×' : '-');
const mib = (b: number): string => (b / 2 ** 20).toFixed(0);

interface Row { type: SynthTypeName; threads: number; fileBytes: number; b: RunResult; l: RunResult }
const rows: Row[] = [];

console.log(`# Butterfly vs llama.cpp — ${preset} model, ${cpus()[0]?.model ?? 'cpu'}, ${cpus().length} vCPU, node ${process.version}${repeat > 1 ? `, medians of ${repeat} alternating runs` : ''}`);
console.log(`| model | type | threads | prefill tok/s (ratio) | decode tok/s (ratio) | ${BATCH_SIZES.map((b) => `batched B=${b} tok/s (ratio)`).join(' | ')} | RSS MiB serving 1 stream: total, above runtime (file; llama.cpp total) |`);
console.log(`|---|---|---|---|---|${BATCH_SIZES.map(() => '---').join('|')}|---|`);
for (const type of types) {
  const model = ensureSyntheticModel(preset, type);
  const fileBytes = statSync(model).size;
  for (const threads of threadCounts) {
    const bs: RunResult[] = [], ls: RunResult[] = [];
    for (let i = 0; i < repeat; i++) {
      bs.push(run('butterfly', model, threads));
      ls.push(run('llamacpp', model, threads));
    }
    const b = medianRun(bs), l = medianRun(ls);
    rows.push({ type, threads, fileBytes, b, l });
    const batched = BATCH_SIZES.map((B) => `${f(b.batched[B]!)} (${r(b.batched[B]!, l.batched[B]!)})`).join(' | ');
    const model_ = b.decodeRssBytes - b.baselineRssBytes;
    console.log(`| ${preset} | ${type} | ${threads} | ${f(b.prefillTokPerS)} (${r(b.prefillTokPerS, l.prefillTokPerS)}) | ${f(b.decodeTokPerS)} (${r(b.decodeTokPerS, l.decodeTokPerS)}) | ${batched} | ${mib(b.decodeRssBytes)}, ${mib(model_)} = ${(model_ / fileBytes).toFixed(2)}× file (${mib(fileBytes)}; ${mib(l.decodeRssBytes)}) |`);
  }
}

console.log('');
console.log(`# Butterfly batching efficiency — aggregate tok/s of B sequences ÷ (B × single-stream tok/s), and ÷ min(that, compute bound = ${PLATEAU_BATCH} sequences' aggregate)`);
console.log(`| type | threads | single tok/s | ${BATCH_SIZES.map((B) => `B=${B} tok/s (÷ B×single, ÷ min(B×single, bound))`).join(' | ')} | bound: B=${PLATEAU_BATCH} tok/s | prefill tok/s | peak RSS MiB |`);
console.log(`|---|---|---|${BATCH_SIZES.map(() => '---').join('|')}|---|---|---|`);
for (const { type, threads, b } of rows) {
  const bound = b.plateauTokPerS ?? Infinity;
  const cells = BATCH_SIZES.map((B) => {
    const agg = b.batched[B]!;
    const ideal = B * b.decodeTokPerS;
    return `${f(agg)} (${r(agg, ideal)}, ${r(agg, Math.min(ideal, bound))})`;
  });
  console.log(`| ${type} | ${threads} | ${f(b.decodeTokPerS)} | ${cells.join(' | ')} | ${b.plateauTokPerS ? f(b.plateauTokPerS) : '-'} | ${f(b.prefillTokPerS)} | ${mib(b.rssBytes)} |`);
}
