/**
 * Tensors travel as raw little-endian bytes, row-major, never JSON. These helpers give zero-copy views both ways.
 * Hidden states should travel as F32: rounding them to F16 between stages would break bit-exactness with a
 * single-process run. F16 is for weights that are F16 on disk.
 */
import { ProtocolError } from './errors.js';

export type WireDType = 'f32' | 'f16' | 'i32';

export const WIRE_DTYPES: readonly WireDType[] = ['f32', 'f16', 'i32'];

export const BYTES_PER_ELEMENT: Readonly<Record<WireDType, number>> = { f32: 4, f16: 2, i32: 4 };

/** Shape and element type of a tensor carried in a frame's binary part. */
export interface WireTensor {
  readonly dtype: WireDType;
  /** Row-major dimensions, outermost first, e.g. [tokens, dim]. */
  readonly shape: readonly number[];
}

export function elementCount(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

export function tensorByteLength(t: WireTensor): number {
  return elementCount(t.shape) * BYTES_PER_ELEMENT[t.dtype];
}

/** The bytes behind a typed array, without copying. */
export function bytesOf(array: ArrayBufferView): Buffer {
  return Buffer.from(array.buffer, array.byteOffset, array.byteLength);
}

export interface DTypeArrays {
  f32: Float32Array;
  /** F16 as raw half-precision bit patterns; conversion belongs to the engine. */
  f16: Uint16Array;
  i32: Int32Array;
}

/**
 * A typed view of `bytes` as `t` describes it. Checks the length matches the shape exactly. Zero-copy when the
 * bytes are aligned (frames from FrameDecoder always are); copies otherwise.
 */
export function viewTensor<D extends WireDType>(bytes: Uint8Array, t: WireTensor & { readonly dtype: D }): DTypeArrays[D] {
  const want = tensorByteLength(t);
  if (bytes.byteLength !== want) {
    throw new ProtocolError('bad-payload', `tensor ${t.dtype}[${t.shape.join('×')}] needs ${want} bytes, frame carries ${bytes.byteLength}`);
  }
  const width = BYTES_PER_ELEMENT[t.dtype];
  let buf = bytes.buffer;
  let offset = bytes.byteOffset;
  if (offset % width !== 0) {
    const copy = new Uint8Array(want);
    copy.set(bytes);
    buf = copy.buffer;
    offset = 0;
  }
  const n = want / width;
  const view = t.dtype === 'f32' ? new Float32Array(buf, offset, n) : t.dtype === 'f16' ? new Uint16Array(buf, offset, n) : new Int32Array(buf, offset, n);
  return view as DTypeArrays[D];
}
