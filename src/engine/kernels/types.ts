import type { WeightTensor } from '../tensor.js';

/**
 * The compute kernels of the engine. Every implementation computes each output element with the
 * reduction order fixed in docs/kernels.md, so all implementations, thread counts and batch
 * compositions give bit-identical results.
 */
export interface Kernels {
  readonly name: 'native' | 'ts';
  /** Number of threads a matmul uses (1 for the TypeScript kernels). */
  readonly threads: number;
  /**
   * out[t * w.rows + r] = dot(row r of w, x[t * w.cols .. (t + 1) * w.cols)) for t < nTok.
   * Activations are rounded to the weight type's activation format first (docs/kernels.md).
   */
  matmul(out: Float32Array, w: WeightTensor, x: Float32Array, nTok: number): void;
  /** Dequantize row `row` of w into out[0 .. w.cols). Used for embedding lookup. */
  getRow(out: Float32Array, w: WeightTensor, row: number): void;
  dispose(): void;
}
