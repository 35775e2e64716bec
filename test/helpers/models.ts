import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { writeSyntheticModel, type SynthShape, type SynthTypeName } from '../../src/engine/synth.js';

/** A temp folder of synthesized models for one test file; call cleanup() in afterAll. */
export class ModelDir {
  readonly dir = mkdtempSync(join(tmpdir(), 'butterfly-test-'));
  private readonly made = new Map<string, string>();

  model(name: string, shape: SynthShape, type: SynthTypeName, opts: { tied?: boolean; seed?: number; tokenizer?: 'llama' | 'gpt2'; arch?: 'llama' | 'qwen2' } = {}): string {
    const key = `${name}-${type}-${opts.tied ? 'tied' : 'untied'}-${opts.seed ?? 1}-${opts.tokenizer ?? 'llama'}-${opts.arch ?? 'llama'}`;
    const hit = this.made.get(key);
    if (hit) return hit;
    const path = join(this.dir, `${key}.gguf`);
    writeSyntheticModel(path, { shape, seed: opts.seed ?? 1, type, tied: opts.tied ?? false, tokenizer: opts.tokenizer ?? 'llama', arch: opts.arch });
    this.made.set(key, path);
    return path;
  }

  cleanup(): void {
    rmSync(this.dir, { recursive: true, force: true });
  }
}

export const SHAPES = {
  /** tiny, GQA 2, all quant-friendly (multiples of 256) */
  tiny: { dim: 256, nLayers: 3, nHeads: 4, nKvHeads: 2, ffDim: 512, vocabSize: 600, contextLength: 256 },
  /** GQA 1 (plain multi-head) */
  mha: { dim: 64, nLayers: 2, nHeads: 4, nKvHeads: 4, ffDim: 96, vocabSize: 400, contextLength: 256 },
  /** GQA 4, odd sizes (head dim 18, ff 100, vocab 777) */
  odd: { dim: 72, nLayers: 3, nHeads: 4, nKvHeads: 1, ffDim: 100, vocabSize: 777, contextLength: 256 },
} as const satisfies Record<string, SynthShape>;
