/**
 * Writes small, seeded Llama-architecture GGUF models that llama.cpp (node-llama-cpp) can load: a synthetic
 * vocabulary plus F32 weights drawn from a seeded PRNG. Shared by tests that compare against llama.cpp.
 */
import { meta, type GgufMetaEntry } from '../../src/engine/gguf/values.js';
import { writeGguf, type GgufTensorToWrite } from '../../src/engine/gguf/writer.js';
import { GGMLType } from '../../src/engine/gguf/types.js';
import { SplitMix32 } from '../../src/engine/prng.js';
import { vocabMetadata, type SyntheticVocab } from '../../src/engine/tokenizer/synthetic.js';

export interface TinyLlamaOptions {
  readonly vocab: SyntheticVocab;
  readonly seed?: number;
  readonly dim?: number;
  readonly ffDim?: number;
  readonly layers?: number;
  readonly heads?: number;
  readonly kvHeads?: number;
  readonly contextLength?: number;
  readonly rmsEps?: number;
  readonly ropeFreqBase?: number;
  /** Standard deviation of the random matrices. */
  readonly weightScale?: number;
  readonly extraMetadata?: ReadonlyArray<[string, GgufMetaEntry]>;
}

/** The resolved shape a tiny model was written with. */
export interface TinyLlamaShape {
  readonly dim: number;
  readonly ffDim: number;
  readonly layers: number;
  readonly heads: number;
  readonly kvHeads: number;
  readonly contextLength: number;
  readonly vocabSize: number;
}

function f32Tensor(name: string, dims: number[], fill: (i: number) => number): GgufTensorToWrite {
  const n = dims.reduce((a, b) => a * b, 1);
  const values = new Float32Array(n);
  for (let i = 0; i < n; i++) values[i] = fill(i);
  return { name, type: GGMLType.F32, dims, data: new Uint8Array(values.buffer) };
}

/** Writes the model to `path` and returns its shape. */
export function writeTinyLlama(path: string, opts: TinyLlamaOptions): TinyLlamaShape {
  const dim = opts.dim ?? 32;
  const heads = opts.heads ?? 4;
  const kvHeads = opts.kvHeads ?? heads;
  const ffDim = opts.ffDim ?? 64;
  const layers = opts.layers ?? 1;
  const contextLength = opts.contextLength ?? 128;
  const vocabSize = opts.vocab.tokens.length;
  if (dim % heads !== 0 || heads % kvHeads !== 0) throw new Error('tiny model: dim must divide by heads, heads by kvHeads');
  const headDim = dim / heads;
  const kvDim = headDim * kvHeads;
  const rng = new SplitMix32(opts.seed ?? 1234);
  const scale = opts.weightScale ?? 0.05;
  const randn = (): number => rng.nextGaussian() * scale;
  const ones = (): number => 1;

  // dims are ggml order: ne0 (the input / contiguous dimension) first.
  const tensors: GgufTensorToWrite[] = [f32Tensor('token_embd.weight', [dim, vocabSize], randn)];
  for (let l = 0; l < layers; l++) {
    const p = `blk.${l}.`;
    tensors.push(
      f32Tensor(`${p}attn_norm.weight`, [dim], ones),
      f32Tensor(`${p}attn_q.weight`, [dim, dim], randn),
      f32Tensor(`${p}attn_k.weight`, [dim, kvDim], randn),
      f32Tensor(`${p}attn_v.weight`, [dim, kvDim], randn),
      f32Tensor(`${p}attn_output.weight`, [dim, dim], randn),
      f32Tensor(`${p}ffn_norm.weight`, [dim], ones),
      f32Tensor(`${p}ffn_gate.weight`, [dim, ffDim], randn),
      f32Tensor(`${p}ffn_up.weight`, [dim, ffDim], randn),
      f32Tensor(`${p}ffn_down.weight`, [ffDim, dim], randn),
    );
  }
  tensors.push(f32Tensor('output_norm.weight', [dim], ones), f32Tensor('output.weight', [dim, vocabSize], randn));

  const metadata: Array<[string, GgufMetaEntry]> = [
    ['general.architecture', meta.str('llama')],
    ['general.name', meta.str('butterfly-tiny')],
    ['general.file_type', meta.u32(0)], // all F32
    ['llama.block_count', meta.u32(layers)],
    ['llama.context_length', meta.u32(contextLength)],
    ['llama.embedding_length', meta.u32(dim)],
    ['llama.feed_forward_length', meta.u32(ffDim)],
    ['llama.attention.head_count', meta.u32(heads)],
    ['llama.attention.head_count_kv', meta.u32(kvHeads)],
    ['llama.attention.layer_norm_rms_epsilon', meta.f32(opts.rmsEps ?? 1e-5)],
    ['llama.rope.dimension_count', meta.u32(headDim)],
    ['llama.rope.freq_base', meta.f32(opts.ropeFreqBase ?? 10000)],
    ['llama.vocab_size', meta.u32(vocabSize)],
    ...vocabMetadata(opts.vocab),
    ...(opts.extraMetadata ?? []),
  ];
  writeGguf(path, { metadata, tensors });
  return { dim, ffDim, layers, heads, kvHeads, contextLength, vocabSize };
}
