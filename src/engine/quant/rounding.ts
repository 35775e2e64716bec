/** Integer rounding rules that ggml uses, for values that are already float32. */

// Adding 1.5·2^52 pushes the fraction out of a double, so the FPU's ties-to-even rounding does the work.
// Same result as ggml's float trick (1.5·2^23) and x86 `round(_MM_ROUND_NEAREST)` for |v| < 2^22.
const ROUND_MAGIC = 6755399441055744;

/** Nearest integer, ties to even (ggml `nearest_int`, SIMD `_MM_ROUND_NEAREST`). */
export function roundHalfEven(v: number): number {
  return v + ROUND_MAGIC - ROUND_MAGIC;
}

/** Nearest integer, ties away from zero (C `roundf`). */
export function roundHalfAway(v: number): number {
  return v < 0 ? -Math.round(-v) : Math.round(v);
}

/** Elements per block of Q8_0 / Q4_0, and per super-block of the K-quants (ggml QK8_0, QK_K). */
export const QK = 32;
export const QK_K = 256;
