import type { GGMLType } from './gguf/types.js';

/**
 * A 2-D weight matrix in its on-disk (possibly quantized) form. `cols` is ggml's ne0 (the contiguous
 * dimension), `rows` is ne1. 1-D tensors have rows = 1. `data` holds rows × rowBytes(type, cols) bytes.
 */
export interface WeightTensor {
  readonly name: string;
  readonly type: GGMLType;
  readonly rows: number;
  readonly cols: number;
  readonly data: Uint8Array;
}
