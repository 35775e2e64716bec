/** Row-level (de)quantization for every tensor type Butterfly reads, dispatched on the ggml type. */
import { GGMLType, rowBytes, typeName } from '../gguf/types.js';
import { dequantizeRowBF16, dequantizeRowF16, dequantizeRowF32, quantizeRowBF16, quantizeRowF16, quantizeRowF32 } from './float.js';
import { dequantizeRowQ4_0, quantizeRowQ4_0 } from './q4_0.js';
import { dequantizeRowQ4_K, quantizeRowQ4_K } from './q4_k.js';
import { dequantizeRowQ5_K, quantizeRowQ5_K } from './q5_k.js';
import { dequantizeRowQ6_K, quantizeRowQ6_K } from './q6_k.js';
import { dequantizeRowQ8_0, quantizeRowQ8_0 } from './q8_0.js';

type DequantizeRowFn = (src: Uint8Array, srcOffsetBytes: number, dst: Float32Array, dstOffset: number, cols: number) => void;
type QuantizeRowFn = (src: Float32Array, srcOffset: number, dst: Uint8Array, dstOffsetBytes: number, cols: number) => void;

const DEQUANTIZERS: Partial<Record<GGMLType, DequantizeRowFn>> = {
  [GGMLType.F32]: dequantizeRowF32,
  [GGMLType.F16]: dequantizeRowF16,
  [GGMLType.BF16]: dequantizeRowBF16,
  [GGMLType.Q8_0]: dequantizeRowQ8_0,
  [GGMLType.Q4_0]: dequantizeRowQ4_0,
  [GGMLType.Q4_K]: dequantizeRowQ4_K,
  [GGMLType.Q5_K]: dequantizeRowQ5_K,
  [GGMLType.Q6_K]: dequantizeRowQ6_K,
};

const QUANTIZERS: Partial<Record<GGMLType, QuantizeRowFn>> = {
  [GGMLType.F32]: quantizeRowF32,
  [GGMLType.F16]: quantizeRowF16,
  [GGMLType.BF16]: quantizeRowBF16,
  [GGMLType.Q8_0]: quantizeRowQ8_0,
  [GGMLType.Q4_0]: quantizeRowQ4_0,
  [GGMLType.Q4_K]: quantizeRowQ4_K,
  [GGMLType.Q5_K]: quantizeRowQ5_K,
  [GGMLType.Q6_K]: quantizeRowQ6_K,
};

/** Decode `cols` values starting at byte srcOffsetBytes; bit-exact to ggml's dequantize_row_* (= ggml_get_rows). */
export function dequantizeRow(type: GGMLType, src: Uint8Array, srcOffsetBytes: number, dst: Float32Array, dstOffset: number, cols: number): void {
  const fn = DEQUANTIZERS[type];
  if (!fn) throw new Error(`cannot dequantize ${typeName(type)}`);
  if (srcOffsetBytes + rowBytes(type, cols) > src.length) throw new RangeError(`${typeName(type)} row runs past the end of its data`);
  fn(src, srcOffsetBytes, dst, dstOffset, cols);
}

/** Encode `cols` values into ggml's layout for `type` (a valid encoding; K-quants use a simple scale search). */
export function quantizeRow(type: GGMLType, src: Float32Array, srcOffset: number, dst: Uint8Array, dstOffsetBytes: number, cols: number): void {
  const fn = QUANTIZERS[type];
  if (!fn) throw new Error(`cannot quantize to ${typeName(type)}`);
  if (dstOffsetBytes + rowBytes(type, cols) > dst.length) throw new RangeError(`${typeName(type)} row runs past the end of its buffer`);
  fn(src, srcOffset, dst, dstOffsetBytes, cols);
}

/** Encode a rows × cols row-major matrix into a fresh buffer of rows · rowBytes(type, cols) bytes. */
export function quantizeTensor(type: GGMLType, src: Float32Array, rows: number, cols: number): Uint8Array {
  if (src.length < rows * cols) throw new RangeError(`need ${rows * cols} values, got ${src.length}`);
  const bytesPerRow = rowBytes(type, cols);
  const out = new Uint8Array(rows * bytesPerRow);
  for (let r = 0; r < rows; r++) quantizeRow(type, src, r * cols, out, r * bytesPerRow, cols);
  return out;
}

/** Decode a whole rows × cols tensor (tests and tools; not a hot path). */
export function dequantizeTensor(type: GGMLType, src: Uint8Array, rows: number, cols: number): Float32Array {
  const bytesPerRow = rowBytes(type, cols);
  const out = new Float32Array(rows * cols);
  for (let r = 0; r < rows; r++) dequantizeRow(type, src, r * bytesPerRow, out, r * cols, cols);
  return out;
}
