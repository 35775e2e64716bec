/**
 * IEEE half (F16) and bfloat16 conversions, bit-exact to what ggml does on x86:
 * F32→F16 is the F16C instruction (round to nearest, ties to even; NaN keeps its top payload bits and is quieted),
 * F32→BF16 is ggml's scalar rule (ties to even, NaN forced quiet). F16→F32 is exact, served from a table.
 */

const f32Scratch = new Float32Array(1);
const u32Scratch = new Uint32Array(f32Scratch.buffer);

/** Float32 bit pattern of x (x is first rounded to float32). */
export function f32Bits(x: number): number {
  f32Scratch[0] = x;
  return u32Scratch[0]!;
}

/** The float32 whose bit pattern is `bits`. */
export function f32FromBits(bits: number): number {
  u32Scratch[0] = bits >>> 0;
  return f32Scratch[0]!;
}

export function f32ToF16Bits(x: number): number {
  const u = f32Bits(x);
  const sign = (u >>> 16) & 0x8000;
  const exp = (u >>> 23) & 0xff;
  const mant = u & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant !== 0 ? 0x200 | (mant >>> 13) : 0);
  const e = exp - 127; // unbiased
  if (e >= 16) return sign | 0x7c00;
  if (e >= -14) {
    // Normal half: keep 10 mantissa bits, round on the 13 dropped ones. A carry out of the mantissa bumps the
    // exponent, which is exactly right (and yields infinity past 65504).
    let h = ((e + 15) << 10) | (mant >>> 13);
    const rest = mant & 0x1fff;
    if (rest > 0x1000 || (rest === 0x1000 && (h & 1) !== 0)) h++;
    return sign | h;
  }
  // Subnormal half: value = m24 · 2^(e-23), unit 2^-24, so shift the 24-bit significand right by -(e+1).
  const shift = -e - 1;
  if (shift > 24) return sign; // below half the smallest subnormal (2^-25): rounds to zero
  const m24 = mant | 0x800000;
  let q = m24 >>> shift;
  const rest = m24 - q * 2 ** shift;
  const half = 2 ** (shift - 1);
  if (rest > half || (rest === half && (q & 1) !== 0)) q++;
  return sign | q;
}

function computeF16ToF32(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >>> 10) & 0x1f;
  const mant = h & 0x3ff;
  if (exp === 0) return sign * mant * 2 ** -24;
  if (exp === 0x1f) return mant !== 0 ? NaN : sign * Infinity;
  return sign * (1024 + mant) * 2 ** (exp - 25);
}

/** All 65536 halves as float32: ggml also converts F16 scales through an exact table. */
export const F16_TO_F32_TABLE: Float32Array = (() => {
  const t = new Float32Array(65536);
  for (let h = 0; h < 65536; h++) t[h] = computeF16ToF32(h);
  return t;
})();

export function f16BitsToF32(h: number): number {
  return F16_TO_F32_TABLE[h & 0xffff]!;
}

/** x rounded to the nearest half and back (the F16 activation format). */
export function roundToF16(x: number): number {
  return F16_TO_F32_TABLE[f32ToF16Bits(x)]!;
}

export function f32ToBf16Bits(x: number): number {
  const u = f32Bits(x);
  if ((u & 0x7fffffff) > 0x7f800000) return ((u >>> 16) | 64) & 0xffff; // NaN: truncate, force quiet
  // Adding 0x7fff plus the lowest kept bit rounds to nearest, ties to even. u < 2^32 so this stays exact.
  return Math.floor((u + 0x7fff + ((u >>> 16) & 1)) / 65536) & 0xffff;
}

export function bf16BitsToF32(h: number): number {
  return f32FromBits((h & 0xffff) << 16);
}

/** x rounded to the nearest bfloat16 and back (the BF16 activation format). */
export function roundToBf16(x: number): number {
  return bf16BitsToF32(f32ToBf16Bits(x));
}

/** Little-endian half at byte offset `o` of `bytes`, as float32. */
export function readF16(bytes: Uint8Array, o: number): number {
  return F16_TO_F32_TABLE[bytes[o]! | (bytes[o + 1]! << 8)]!;
}

export function writeF16(bytes: Uint8Array, o: number, x: number): void {
  const h = f32ToF16Bits(x);
  bytes[o] = h & 0xff;
  bytes[o + 1] = h >>> 8;
}
