import { writeGguf, type GgufTensorToWrite } from './gguf/writer.js';
import { GGMLType } from './gguf/types.js';
import { meta, type GgufMetaEntry } from './gguf/values.js';
import { SplitMix32 } from './prng.js';
import { quantizeTensor } from './quant/rows.js';
import { syntheticBpeVocab, syntheticSpmVocab, vocabMetadata } from './tokenizer/synthetic.js';

/** The shape of a synthesized Llama model. */
export interface SynthShape {
  readonly dim: number;
  readonly nLayers: number;
  readonly nHeads: number;
  readonly nKvHeads: number;
  readonly ffDim: number;
  readonly vocabSize: number;
  readonly contextLength: number;
}

export const SYNTH_PRESETS = {
  tiny: { dim: 256, nLayers: 2, nHeads: 4, nKvHeads: 2, ffDim: 512, vocabSize: 1024, contextLength: 512 },
  small: { dim: 512, nLayers: 6, nHeads: 8, nKvHeads: 4, ffDim: 1536, vocabSize: 8192, contextLength: 1024 },
  medium: { dim: 768, nLayers: 12, nHeads: 12, nKvHeads: 4, ffDim: 2048, vocabSize: 32000, contextLength: 2048 },
} as const satisfies Record<string, SynthShape>;

export type SynthPreset = keyof typeof SYNTH_PRESETS;

export const SYNTH_TYPES = {
  f32: GGMLType.F32, f16: GGMLType.F16, bf16: GGMLType.BF16, q8_0: GGMLType.Q8_0, q4_0: GGMLType.Q4_0,
  q4_k: GGMLType.Q4_K, q5_k: GGMLType.Q5_K, q6_k: GGMLType.Q6_K,
} as const;

export type SynthTypeName = keyof typeof SYNTH_TYPES;

/** llama.cpp's general.file_type for each weight type (LLAMA_FTYPE_*). */
const FILE_TYPE: Record<SynthTypeName, number> = { f32: 0, f16: 1, q4_0: 2, q8_0: 7, q4_k: 15, q5_k: 17, q6_k: 18, bf16: 32 };

export interface SynthOptions {
  readonly shape: SynthShape;
  readonly seed: number;
  readonly type: SynthTypeName;
  readonly tied: boolean;
  readonly tokenizer?: 'llama' | 'gpt2';
  /** 'qwen2' adds Q/K/V biases and uses NEOX rotary embeddings (llama.cpp decides by architecture). */
  readonly arch?: 'llama' | 'qwen2';
  readonly name?: string;
}

/**
 * Why these scales: every projection has std 1/sqrt(fan-in), so each layer adds O(1) per element to the residual
 * stream, comparable to the unit-std embedding. The final norm gets random signs (see below) so a tied head does not
 * make each token predict itself; with both, greedy decoding wanders instead of repeating one token.
 */
const EMBED_STD = 1;

function gaussianMatrix(rng: SplitMix32, rows: number, cols: number, std: number): Float32Array {
  const a = new Float32Array(rows * cols);
  for (let i = 0; i < a.length; i++) a[i] = rng.nextGaussian() * std;
  return a;
}

function normVector(rng: SplitMix32, n: number): Float32Array {
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) a[i] = 1 + 0.1 * rng.nextGaussian();
  return a;
}

function f32Bytes(a: Float32Array): Uint8Array {
  return new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
}

/** Build the metadata and tensors of a synthetic model (deterministic in the options). */
export function synthesizeModel(opts: SynthOptions): { metadata: Array<[string, GgufMetaEntry]>; tensors: GgufTensorToWrite[] } {
  const s = opts.shape;
  const headDim = s.dim / s.nHeads;
  if (!Number.isInteger(headDim) || headDim % 2 !== 0) throw new Error(`dim ${s.dim} / ${s.nHeads} heads must be an even integer`);
  if (s.nHeads % s.nKvHeads !== 0) throw new Error(`${s.nHeads} heads are not a multiple of ${s.nKvHeads} KV heads`);
  const wtype = SYNTH_TYPES[opts.type];
  const arch = opts.arch ?? 'llama';
  const rng = new SplitMix32(opts.seed);
  const kvDim = s.nKvHeads * headDim;
  const tensors: GgufTensorToWrite[] = [];
  const mat = (name: string, rows: number, cols: number, std: number): void => {
    const w = gaussianMatrix(rng, rows, cols, std);
    tensors.push({ name, type: wtype, dims: [cols, rows], data: quantizeTensor(wtype, w, rows, cols) });
  };
  const vec = (name: string, n: number): void => {
    tensors.push({ name, type: GGMLType.F32, dims: [n], data: f32Bytes(normVector(rng, n)) });
  };
  mat('token_embd.weight', s.vocabSize, s.dim, EMBED_STD);
  for (let l = 0; l < s.nLayers; l++) {
    const p = `blk.${l}.`;
    vec(p + 'attn_norm.weight', s.dim);
    mat(p + 'attn_q.weight', s.dim, s.dim, 1 / Math.sqrt(s.dim));
    mat(p + 'attn_k.weight', kvDim, s.dim, 1 / Math.sqrt(s.dim));
    mat(p + 'attn_v.weight', kvDim, s.dim, 1 / Math.sqrt(s.dim));
    if (arch === 'qwen2') {
      for (const [name, n] of [['attn_q.bias', s.dim], ['attn_k.bias', kvDim], ['attn_v.bias', kvDim]] as const) {
        tensors.push({ name: p + name, type: GGMLType.F32, dims: [n], data: f32Bytes(gaussianMatrix(rng, 1, n, 0.5)) });
      }
    }
    mat(p + 'attn_output.weight', s.dim, s.dim, 1 / Math.sqrt(s.dim));
    vec(p + 'ffn_norm.weight', s.dim);
    mat(p + 'ffn_gate.weight', s.ffDim, s.dim, 1 / Math.sqrt(s.dim));
    mat(p + 'ffn_up.weight', s.ffDim, s.dim, 1 / Math.sqrt(s.dim));
    mat(p + 'ffn_down.weight', s.dim, s.ffDim, 1 / Math.sqrt(s.ffDim));
  }
  // Random signs in the final norm decorrelate a token's embedding from the hidden state it produces, which
  // (with a tied head) otherwise makes every token predict itself.
  tensors.push({ name: 'output_norm.weight', type: GGMLType.F32, dims: [s.dim], data: f32Bytes(gaussianMatrix(rng, 1, s.dim, 1)) });
  if (!opts.tied) mat('output.weight', s.vocabSize, s.dim, 2 / Math.sqrt(s.dim));

  const vocab = opts.tokenizer === 'gpt2'
    ? syntheticBpeVocab({ size: s.vocabSize, seed: opts.seed })
    : syntheticSpmVocab({ size: s.vocabSize, seed: opts.seed });
  const metadata: Array<[string, GgufMetaEntry]> = [
    ['general.architecture', meta.str(arch)],
    ['general.name', meta.str(opts.name ?? 'butterfly-synthetic')],
    ['general.file_type', meta.u32(FILE_TYPE[opts.type])],
    [`${arch}.context_length`, meta.u32(s.contextLength)],
    [`${arch}.embedding_length`, meta.u32(s.dim)],
    [`${arch}.block_count`, meta.u32(s.nLayers)],
    [`${arch}.feed_forward_length`, meta.u32(s.ffDim)],
    [`${arch}.attention.head_count`, meta.u32(s.nHeads)],
    [`${arch}.attention.head_count_kv`, meta.u32(s.nKvHeads)],
    [`${arch}.rope.dimension_count`, meta.u32(headDim)],
    [`${arch}.rope.freq_base`, meta.f32(10000)],
    [`${arch}.attention.layer_norm_rms_epsilon`, meta.f32(1e-5)],
    [`${arch}.vocab_size`, meta.u32(s.vocabSize)],
    ...vocabMetadata(vocab),
  ];
  return { metadata, tensors };
}

export function writeSyntheticModel(path: string, opts: SynthOptions): void {
  writeGguf(path, synthesizeModel(opts));
}
