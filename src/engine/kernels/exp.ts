/**
 * bfExp: Butterfly's deterministic exp (docs/kernels.md "exp"), operation for operation the C bf_expf of
 * native/bf_exp.h. Math.exp is not specified to the bit (it differs between engines and versions), so it cannot
 * be part of a bit-exact contract. Every step below is one float32 operation: computed in double and rounded with
 * Math.fround, which gives exactly the float32 result for + − × ÷ of float32 operands (double has more than
 * 2·24 + 2 bits, so the double rounding is innocuous).
 */
const fr = Math.fround;

const bits = new Uint32Array(1);
const asFloat = new Float32Array(bits.buffer);
/** The float32 with these bits. Constants are given as bits: a decimal literal would be rounded twice (to double,
 * then to float), which can differ from the C compiler's single rounding. */
function f32(b: number): number {
  bits[0] = b;
  return asFloat[0]!;
}

export const EXP_LOG2E = f32(0x3fb8aa3b); // log2(e)
export const EXP_SHIFT = f32(0x4b400000); // 1.5·2^23: (t + SHIFT) − SHIFT rounds t to an integer, ties to even
export const EXP_LN2_HI = f32(0x3f318000); // 0.693359375, 9 significant bits: n·LN2_HI is exact
export const EXP_LN2_LO = f32(0xb95e8083); // ln 2 − LN2_HI
const P0 = f32(0x39506967);
const P1 = f32(0x3ab743ce);
const P2 = f32(0x3c088908);
const P3 = f32(0x3d2aa9c1);
const P4 = f32(0x3e2aaaaa);
const P5 = f32(0x3f000000);
/** The largest float32 whose exp is finite (88.72283172607421875). */
export const EXP_MAX_X = f32(0x42b17217);
/** Below this, exp(x) < 2^-150 rounds to 0 (and n stays ≥ −151). */
export const EXP_MIN_X = -104;

/** POW2[k + 126] = 2^k for −126 ≤ k ≤ 127 (exact doubles, and exact float32 values). */
const POW2 = Float64Array.from({ length: 254 }, (_, i) => 2 ** (i - 126));

/**
 * exp of a float32 value, as a float32 value (x is rounded to float32 first). NaN → NaN, x > EXP_MAX_X → +∞,
 * x < −104 → 0. At most 1 ulp from the exact exp over every float in [−103, 88.72] (measured exhaustively in C).
 */
export function bfExp(xIn: number): number {
  const x = fr(xIn);
  if (x !== x) return NaN;
  if (x > EXP_MAX_X) return Infinity;
  if (x < EXP_MIN_X) return 0;
  const n = fr(fr(fr(x * EXP_LOG2E) + EXP_SHIFT) - EXP_SHIFT);
  const r = fr(fr(x - fr(n * EXP_LN2_HI)) - fr(n * EXP_LN2_LO));
  const z = fr(r * r);
  let p = P0;
  p = fr(fr(p * r) + P1);
  p = fr(fr(p * r) + P2);
  p = fr(fr(p * r) + P3);
  p = fr(fr(p * r) + P4);
  p = fr(fr(p * r) + P5);
  const y = fr(fr(fr(p * z) + r) + 1);
  // y·2^k as (y·2^(k−j))·2^j: the first product is exact, so the result is rounded once, also when it is
  // subnormal (k < −125) or overflows (k = 128).
  const k = n | 0;
  const j = k < -125 ? -125 : k > 127 ? 1 : 0;
  return fr(fr(y * POW2[k - j + 126]!) * POW2[j + 126]!);
}
