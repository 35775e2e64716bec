import { existsSync, mkdirSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { InvalidArgumentError, type Command } from 'commander';
import { SYNTH_PRESETS, SYNTH_TYPES, writeSyntheticModel, type SynthPreset, type SynthTypeName } from '../engine/synth.js';
import { intArg } from './options.js';
import { modelCacheDir } from './paths.js';

function choice<T extends string>(name: string, allowed: readonly T[]): (v: string) => T {
  return (v) => {
    if (!(allowed as readonly string[]).includes(v)) throw new InvalidArgumentError(`${name} must be one of ${allowed.join(', ')}`);
    return v as T;
  };
}

export interface SynthCliOptions {
  out: string;
  preset: SynthPreset;
  seed: number;
  type: SynthTypeName;
  tied: boolean;
  tokenizer: 'llama' | 'gpt2';
  arch: 'llama' | 'qwen2';
}

export function synthesize(opts: SynthCliOptions, log: (line: string) => void): void {
  const t0 = performance.now();
  mkdirSync(dirname(opts.out), { recursive: true });
  log(`synthesizing ${opts.preset} ${opts.type}${opts.tied ? ' tied' : ''} model (seed ${opts.seed}) → ${opts.out}`);
  writeSyntheticModel(opts.out, {
    shape: SYNTH_PRESETS[opts.preset], seed: opts.seed, type: opts.type, tied: opts.tied, tokenizer: opts.tokenizer, arch: opts.arch,
    name: `butterfly-${opts.preset}-${opts.type}`,
  });
  const mib = statSync(opts.out).size / 2 ** 20;
  log(`wrote ${mib.toFixed(1)} MiB in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
}

/** The cached path of a synthesized model, created on first use. */
export function ensureSyntheticModel(preset: SynthPreset, type: SynthTypeName, seed = 1, log: (line: string) => void = (l) => process.stderr.write(l + '\n')): string {
  const path = join(modelCacheDir(), `${preset}-${type}-s${seed}.gguf`);
  if (!existsSync(path)) synthesize({ out: path, preset, seed, type, tied: false, tokenizer: 'llama', arch: 'llama' }, log);
  return path;
}

export function registerModel(program: Command): void {
  const model = program.command('model').description('create and inspect model files');
  model
    .command('synth')
    .description('write a seeded synthetic Llama GGUF (loadable by llama.cpp) with a working tokenizer')
    .requiredOption('-o, --out <file>', 'output GGUF path')
    .option('--preset <name>', `model size: ${Object.keys(SYNTH_PRESETS).join('|')}`, choice('--preset', Object.keys(SYNTH_PRESETS) as SynthPreset[]), 'tiny')
    .option('--seed <n>', 'weights seed', intArg('--seed', 0, 0xffffffff), 1)
    .option('--type <t>', `weight type: ${Object.keys(SYNTH_TYPES).join('|')}`, choice('--type', Object.keys(SYNTH_TYPES) as SynthTypeName[]), 'f32')
    .option('--tied', 'tie the output head to the token embedding (no output.weight)', false)
    .option('--tokenizer <kind>', 'tokenizer kind: llama (SentencePiece) | gpt2 (byte-level BPE)', choice('--tokenizer', ['llama', 'gpt2'] as const), 'llama')
    .option('--arch <arch>', 'architecture: llama | qwen2 (Q/K/V biases, NEOX rope)', choice('--arch', ['llama', 'qwen2'] as const), 'llama')
    .action((opts: SynthCliOptions) => {
      synthesize(opts, (l) => process.stderr.write(l + '\n'));
    });
}
