import { GgufError } from '../gguf/errors.js';
import { openGguf, type GgufFile } from '../gguf/reader.js';
import { isSupportedType, rowBytes, typeName } from '../gguf/types.js';
import { mapFileRange } from '../kernels/native.js';
import type { Kernels } from '../kernels/types.js';
import type { WeightTensor } from '../tensor.js';
import { configFromGguf, type LlamaConfig } from './config.js';
import { Stage } from './stage.js';
import { loadStageWeights, type StageRange, type TensorSource } from './weights.js';

export interface OpenedModel {
  readonly file: GgufFile;
  readonly cfg: LlamaConfig;
  readonly hasRopeFreqs: boolean;
}

/** Parse a GGUF file's header and the model shape; reads no tensor data. */
export function openModel(path: string): OpenedModel {
  const file = openGguf(path);
  try {
    const cfg = configFromGguf(file);
    return { file, cfg, hasRopeFreqs: file.tensorInfo('rope_freqs.weight') !== undefined };
  } catch (e) {
    file.close();
    throw e;
  }
}

/**
 * Tensors straight from the model file: memory-mapped when the native addon is present (no copy; only the pages of
 * this stage's tensors ever become resident), otherwise read by offset. Each tensor is loaded once.
 */
export function fileTensorSource(file: GgufFile, opts: { mmap?: boolean } = {}): TensorSource {
  const loaded = new Map<string, WeightTensor>();
  return (name) => {
    const hit = loaded.get(name);
    if (hit) return hit;
    let t: WeightTensor | null = null;
    if (opts.mmap !== false) {
      const info = file.requireTensor(name);
      if (!isSupportedType(info.type)) {
        throw new GgufError(file.path, `tensor type ${typeName(info.type)} is not supported`, { tensor: name });
      }
      const cols = info.dims[0] ?? 1;
      const rows = info.dims.slice(1).reduce((a, b) => a * b, 1);
      if (info.offset + info.byteLength > file.fileBytes) {
        throw new GgufError(file.path, `data ends at byte ${info.offset + info.byteLength} but the file has ${file.fileBytes} bytes (truncated?)`, { tensor: name });
      }
      if (rowBytes(info.type, cols) * rows !== info.byteLength) {
        throw new GgufError(file.path, `size ${info.byteLength} bytes does not match its shape`, { tensor: name });
      }
      const data = mapFileRange(file.path, info.offset, info.byteLength);
      if (data) t = { name, type: info.type, rows, cols, data };
    }
    t ??= file.readTensor(name);
    loaded.set(name, t);
    return t;
  };
}

/** Load a stage's weights from the file and build it. */
export function loadStage(model: OpenedModel, range: StageRange, kernels: Kernels, source?: TensorSource): Stage {
  const src = source ?? fileTensorSource(model.file);
  const weights = loadStageWeights(model.cfg, range, src, model.hasRopeFreqs);
  return new Stage(model.cfg, range, weights, kernels);
}

/** The range covering the whole model. */
export function wholeModel(cfg: LlamaConfig): StageRange {
  return { firstLayer: 0, lastLayer: cfg.nLayers, hasEmbedding: true, hasHead: true };
}

/** Split the model into `n` stages of (nearly) equal layer counts — for tests and simple local runs. */
export function evenSplit(cfg: LlamaConfig, n: number): StageRange[] {
  const ranges: StageRange[] = [];
  for (let i = 0; i < n; i++) {
    const first = Math.floor((i * cfg.nLayers) / n);
    const last = Math.floor(((i + 1) * cfg.nLayers) / n);
    ranges.push({ firstLayer: first, lastLayer: last, hasEmbedding: i === 0, hasHead: i === n - 1 });
  }
  return ranges;
}
