/** Unquantized rows: F32 (4 bytes), F16 and BF16 (2 bytes), all little-endian like GGUF. */
import { F16_TO_F32_TABLE, bf16BitsToF32, f32ToBf16Bits, f32ToF16Bits } from './half.js';

export function dequantizeRowF32(src: Uint8Array, srcOffsetBytes: number, dst: Float32Array, dstOffset: number, cols: number): void {
  const byteOffset = src.byteOffset + srcOffsetBytes;
  if (byteOffset % 4 === 0) {
    dst.set(new Float32Array(src.buffer, byteOffset, cols), dstOffset);
    return;
  }
  const view = new DataView(src.buffer, byteOffset, cols * 4);
  for (let i = 0; i < cols; i++) dst[dstOffset + i] = view.getFloat32(i * 4, true);
}

export function dequantizeRowF16(src: Uint8Array, srcOffsetBytes: number, dst: Float32Array, dstOffset: number, cols: number): void {
  for (let i = 0, o = srcOffsetBytes; i < cols; i++, o += 2) dst[dstOffset + i] = F16_TO_F32_TABLE[src[o]! | (src[o + 1]! << 8)]!;
}

export function dequantizeRowBF16(src: Uint8Array, srcOffsetBytes: number, dst: Float32Array, dstOffset: number, cols: number): void {
  for (let i = 0, o = srcOffsetBytes; i < cols; i++, o += 2) dst[dstOffset + i] = bf16BitsToF32(src[o]! | (src[o + 1]! << 8));
}

export function quantizeRowF32(src: Float32Array, srcOffset: number, dst: Uint8Array, dstOffsetBytes: number, cols: number): void {
  const view = new DataView(dst.buffer, dst.byteOffset + dstOffsetBytes, cols * 4);
  for (let i = 0; i < cols; i++) view.setFloat32(i * 4, src[srcOffset + i]!, true);
}

export function quantizeRowF16(src: Float32Array, srcOffset: number, dst: Uint8Array, dstOffsetBytes: number, cols: number): void {
  for (let i = 0, o = dstOffsetBytes; i < cols; i++, o += 2) {
    const h = f32ToF16Bits(src[srcOffset + i]!);
    dst[o] = h & 0xff;
    dst[o + 1] = h >>> 8;
  }
}

export function quantizeRowBF16(src: Float32Array, srcOffset: number, dst: Uint8Array, dstOffsetBytes: number, cols: number): void {
  for (let i = 0, o = dstOffsetBytes; i < cols; i++, o += 2) {
    const h = f32ToBf16Bits(src[srcOffset + i]!);
    dst[o] = h & 0xff;
    dst[o + 1] = h >>> 8;
  }
}
