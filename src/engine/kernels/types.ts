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
  /**
   * Causal attention of a batch of query tokens (docs/kernels.md "Attention"): out[t] (nHeads·headDim values) for
   * every t < a.nTok. Each token reads its own sequence's cache, so one call can serve a whole mixed batch.
   */
  attention(out: Float32Array, a: AttentionBatch): void;
  /** gate[i] = silu(gate[i]) · up[i] for i < n (docs/kernels.md "SwiGLU"). */
  swiglu(gate: Float32Array, up: Float32Array, n: number): void;
  /**
   * RMSNorm of nRows rows of dim values: out[r·dim + i] = the bits of ops.ts rmsNorm (docs/kernels.md "RMSNorm,
   * RoPE and adds"). out is x itself or does not overlap it.
   */
  rmsNorm(out: Float32Array, x: Float32Array, weight: Float32Array, nRows: number, dim: number, eps: number): void;
  /** a[i] = f32(a[i] + b[i]) for i < n (the residual add); b is a itself or does not overlap it. */
  add(a: Float32Array, b: Float32Array, n: number): void;
  /** a[r·n + i] = f32(a[r·n + i] + bias[i]) for r < rows, i < n. */
  addBias(a: Float32Array, bias: Float32Array, rows: number, n: number): void;
  /** Rotary position embedding in place, every token of a batch (ops.ts applyRopeRows). */
  rope(x: Float32Array, r: RopeBatch): void;
  /**
   * Optionally rearranges w's bytes in place into a layout these kernels compute faster from (native: quantized
   * rows interleaved in 16s, kernels/layout.ts). Every Kernels implementation still reads such weights right and gets
   * the same bits; but the bytes no longer match the file, so pass only weights you own (not ones you will hash or
   * send on). Idempotent.
   */
  prepareWeight?(w: WeightTensor): void;
  /** Dequantize row `row` of w into out[0 .. w.cols). Used for embedding lookup. */
  getRow(out: Float32Array, w: WeightTensor, row: number): void;
  dispose(): void;
}

/** The inputs of one Kernels.attention call. */
export interface AttentionBatch {
  readonly nTok: number;
  readonly nHeads: number;
  /** nHeads must be a multiple of it: query head h reads KV head floor(h / (nHeads / nKvHeads)). */
  readonly nKvHeads: number;
  readonly headDim: number;
  /** nTok × nHeads·headDim queries (RoPE already applied); must not overlap out. */
  readonly q: Float32Array;
  /** Token t attends positions [0, nPos[t]) of its cache (its own position + 1 for causal attention). */
  readonly nPos: Int32Array;
  /** Token t's cache is keys[cacheOf[t]] / values[cacheOf[t]]. */
  readonly cacheOf: Int32Array;
  /** Per cache: [position][nKvHeads·headDim] floats, at least nPos of the tokens using it. */
  readonly keys: readonly Float32Array[];
  readonly values: readonly Float32Array[];
}

/** The inputs of one Kernels.rope call: x holds nTok rows of nHeads·headDim values. */
export interface RopeBatch {
  readonly nTok: number;
  readonly nHeads: number;
  readonly headDim: number;
  /** Rotated dimensions at the start of each head (even, ≤ headDim); the others pass through unchanged. */
  readonly ropeDims: number;
  /** neox pairs (i, i + ropeDims/2); otherwise llama's pairs (2i, 2i + 1). */
  readonly neox: boolean;
  /** Token t rotates with row positions[t] of the tables. */
  readonly positions: Int32Array;
  /** ropeDims/2 values per position, row p at p · ropeDims/2 (RopeTable.upTo); must not overlap x. */
  readonly cos: Float32Array;
  readonly sin: Float32Array;
}
