import { GGMLType } from '../gguf/types.js';
import { dequantizeRow } from '../quant/rows.js';
import type { WeightTensor } from '../tensor.js';
import { layerTensorNames, type LlamaConfig } from './config.js';

/** Where a stage's tensors come from: a local GGUF file, bytes streamed from the coordinator, … */
export type TensorSource = (name: string) => WeightTensor;

/** The layers [firstLayer, lastLayer) of the model a stage owns, plus the embedding and/or head. */
export interface StageRange {
  readonly firstLayer: number;
  readonly lastLayer: number;
  readonly hasEmbedding: boolean;
  readonly hasHead: boolean;
}

export interface LayerWeights {
  readonly attnNorm: Float32Array;
  readonly wq: WeightTensor;
  readonly wk: WeightTensor;
  readonly wv: WeightTensor;
  readonly wo: WeightTensor;
  readonly bq: Float32Array | null;
  readonly bk: Float32Array | null;
  readonly bv: Float32Array | null;
  readonly ffnNorm: Float32Array;
  readonly wGate: WeightTensor;
  readonly wUp: WeightTensor;
  readonly wDown: WeightTensor;
}

export interface StageWeights {
  readonly embedding: WeightTensor | null;
  readonly layers: readonly LayerWeights[];
  readonly outputNorm: Float32Array | null;
  readonly output: WeightTensor | null;
  readonly ropeFreqFactors: Float32Array | null;
}

/** The names of every tensor a stage needs (for planning, hashing and streaming). */
export function stageTensorNames(cfg: LlamaConfig, range: StageRange, hasRopeFreqs = false): string[] {
  const names: string[] = [];
  if (range.hasEmbedding) names.push('token_embd.weight');
  for (let l = range.firstLayer; l < range.lastLayer; l++) names.push(...layerTensorNames(l, cfg));
  if (range.hasHead) {
    names.push('output_norm.weight');
    names.push(cfg.tiedEmbeddings ? 'token_embd.weight' : 'output.weight');
  }
  if (hasRopeFreqs && range.lastLayer > range.firstLayer) names.push('rope_freqs.weight');
  return [...new Set(names)];
}

function vector(t: WeightTensor, expected: number): Float32Array {
  const n = t.rows * t.cols;
  if (n !== expected) throw new Error(`tensor '${t.name}' has ${n} elements, expected ${expected}`);
  const out = new Float32Array(n);
  if (t.type === GGMLType.F32) {
    out.set(new Float32Array(t.data.buffer.slice(t.data.byteOffset, t.data.byteOffset + n * 4)));
  } else {
    dequantizeRow(t.type, t.data, 0, out, 0, n);
  }
  return out;
}

function matrix(t: WeightTensor, rows: number, cols: number): WeightTensor {
  if (t.rows !== rows || t.cols !== cols) {
    throw new Error(`tensor '${t.name}' is ${t.cols}×${t.rows} (ne0×ne1), expected ${cols}×${rows}`);
  }
  return t;
}

export function loadStageWeights(cfg: LlamaConfig, range: StageRange, source: TensorSource, hasRopeFreqs = false): StageWeights {
  const { dim, ffDim } = cfg;
  const kvDim = cfg.nKvHeads * cfg.headDim;
  const qDim = cfg.nHeads * cfg.headDim;
  const layers: LayerWeights[] = [];
  for (let l = range.firstLayer; l < range.lastLayer; l++) {
    const t = (n: string): WeightTensor => source(`blk.${l}.${n}`);
    layers.push({
      attnNorm: vector(t('attn_norm.weight'), dim),
      wq: matrix(t('attn_q.weight'), qDim, dim),
      wk: matrix(t('attn_k.weight'), kvDim, dim),
      wv: matrix(t('attn_v.weight'), kvDim, dim),
      wo: matrix(t('attn_output.weight'), dim, qDim),
      bq: cfg.qkvBias ? vector(t('attn_q.bias'), qDim) : null,
      bk: cfg.qkvBias ? vector(t('attn_k.bias'), kvDim) : null,
      bv: cfg.qkvBias ? vector(t('attn_v.bias'), kvDim) : null,
      ffnNorm: vector(t('ffn_norm.weight'), dim),
      wGate: matrix(t('ffn_gate.weight'), ffDim, dim),
      wUp: matrix(t('ffn_up.weight'), ffDim, dim),
      wDown: matrix(t('ffn_down.weight'), dim, ffDim),
    });
  }
  const embedding = range.hasEmbedding ? matrix(source('token_embd.weight'), cfg.vocabSize, dim) : null;
  let output: WeightTensor | null = null;
  let outputNorm: Float32Array | null = null;
  if (range.hasHead) {
    outputNorm = vector(source('output_norm.weight'), dim);
    output = matrix(source(cfg.tiedEmbeddings ? 'token_embd.weight' : 'output.weight'), cfg.vocabSize, dim);
  }
  const ropeFreqFactors = hasRopeFreqs && layers.length > 0 ? vector(source('rope_freqs.weight'), cfg.ropeDims / 2) : null;
  return { embedding, layers, outputNorm, output, ropeFreqFactors };
}
