import { GgufError } from '../gguf/errors.js';
import type { GgufFile } from '../gguf/reader.js';

/** Rotary embedding layout: llama pairs consecutive elements; NEOX (qwen2) pairs i with i + nDims/2. */
export type RopeStyle = 'norm' | 'neox';

/** The shape of a Llama-family model, read from GGUF metadata. */
export interface LlamaConfig {
  readonly arch: 'llama' | 'qwen2';
  readonly dim: number;
  readonly nLayers: number;
  readonly nHeads: number;
  readonly nKvHeads: number;
  readonly headDim: number;
  readonly ffDim: number;
  readonly vocabSize: number;
  readonly contextLength: number;
  readonly ropeDims: number;
  readonly ropeFreqBase: number;
  readonly ropeStyle: RopeStyle;
  readonly rmsEps: number;
  /** true when output.weight is absent and the head reuses token_embd.weight */
  readonly tiedEmbeddings: boolean;
  /** qwen2 carries biases on the Q, K and V projections */
  readonly qkvBias: boolean;
}

const SUPPORTED_ARCHS = ['llama', 'qwen2'] as const;

export function configFromGguf(file: GgufFile): LlamaConfig {
  const arch = file.getString('general.architecture');
  if (!(SUPPORTED_ARCHS as readonly string[]).includes(arch)) {
    throw new GgufError(file.path, `architecture '${arch}' is not supported (supported: ${SUPPORTED_ARCHS.join(', ')})`, {
      key: 'general.architecture',
    });
  }
  const a = arch as LlamaConfig['arch'];
  const num = (k: string, fallback?: number): number => file.getNumber(`${a}.${k}`, fallback);
  const dim = num('embedding_length');
  const nHeads = num('attention.head_count');
  const nKvHeads = num('attention.head_count_kv', nHeads);
  const headDim = num('attention.key_length', dim / nHeads);
  const embd = file.requireTensor('token_embd.weight');
  const vocabSize = embd.dims[1] ?? 0;
  const bad = (key: string, why: string): never => {
    throw new GgufError(file.path, why, { key: `${a}.${key}` });
  };
  if (!Number.isInteger(headDim) || headDim <= 0 || headDim % 2 !== 0) bad('attention.head_count', `head size ${headDim} must be a positive even integer`);
  if (nKvHeads <= 0 || nHeads % nKvHeads !== 0) bad('attention.head_count_kv', `${nHeads} heads are not a multiple of ${nKvHeads} KV heads`);
  if (num('attention.value_length', headDim) !== headDim) bad('attention.value_length', 'value head size differing from key head size is not supported');
  if (embd.dims[0] !== dim) bad('embedding_length', `token_embd.weight has rows of ${embd.dims[0]}, not ${dim}`);
  return {
    arch: a,
    dim,
    nLayers: num('block_count'),
    nHeads,
    nKvHeads,
    headDim,
    ffDim: num('feed_forward_length'),
    vocabSize,
    contextLength: num('context_length', 2048),
    ropeDims: num('rope.dimension_count', headDim),
    ropeFreqBase: num('rope.freq_base', 10000),
    ropeStyle: a === 'qwen2' ? 'neox' : 'norm',
    rmsEps: num('attention.layer_norm_rms_epsilon', 1e-5),
    tiedEmbeddings: file.tensorInfo('output.weight') === undefined,
    qkvBias: file.tensorInfo('blk.0.attn_q.bias') !== undefined,
  };
}

/** Names of the tensors a layer owns, in the order they are used. */
export function layerTensorNames(layer: number, cfg: Pick<LlamaConfig, 'qkvBias'>): string[] {
  const p = `blk.${layer}.`;
  const names = ['attn_norm.weight', 'attn_q.weight', 'attn_k.weight', 'attn_v.weight', 'attn_output.weight',
    'ffn_norm.weight', 'ffn_gate.weight', 'ffn_up.weight', 'ffn_down.weight'];
  if (cfg.qkvBias) names.push('attn_q.bias', 'attn_k.bias', 'attn_v.bias');
  return names.map((n) => p + n);
}
