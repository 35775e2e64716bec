/*
 * bf_expf: Butterfly's deterministic exp (docs/kernels.md "exp"). libm's expf differs between C libraries and
 * versions, and JavaScript's Math.exp between engines, so neither can be part of a bit-exact contract. This one is a
 * fixed sequence of float32 operations (each IEEE-rounded to nearest; the file is compiled with
 * -ffp-contract=off, so no fused multiply-adds), mirrored operation for operation by bfExp in
 * src/engine/kernels/exp.ts. Cephes' expf scheme: Cody-Waite range reduction, a degree-5 polynomial for
 * (exp(r) - 1 - r) / r², scaling by 2^n through the exponent bits. Measured error ≤ 1 ulp against exp over every
 * float in [-103, 88.72]; see docs/kernels.md.
 */
#ifndef BUTTERFLY_BF_EXP_H
#define BUTTERFLY_BF_EXP_H

#include <stdint.h>
#include <string.h>

/* Constants as exact hex floats: decimal literals would be rounded by each compiler and by JavaScript's
 * double parser (decimal → double → float can differ from decimal → float). */
#define BF_EXP_LOG2E 0x1.715476p+0f  /* log2(e) rounded to float */
#define BF_EXP_SHIFT 0x1.8p+23f      /* 1.5·2^23: (t + SHIFT) − SHIFT rounds t to an integer, ties to even */
#define BF_EXP_LN2_HI 0x1.63p-1f     /* 0.693359375: 9 significant bits, so n·LN2_HI is exact for |n| < 2^15 */
#define BF_EXP_LN2_LO -0x1.bd0106p-13f /* ln 2 − LN2_HI, rounded to float */
#define BF_EXP_P0 0x1.a0d2cep-13f
#define BF_EXP_P1 0x1.6e879cp-10f
#define BF_EXP_P2 0x1.11121p-7f
#define BF_EXP_P3 0x1.555382p-5f
#define BF_EXP_P4 0x1.555554p-3f
#define BF_EXP_P5 0x1p-1f
/* The largest float whose exp is finite; anything above overflows. */
#define BF_EXP_MAX_X 0x1.62e42ep+6f /* 88.72283172607421875 */
/* Below this exp(x) < 2^-150 (half the smallest subnormal), which rounds to 0; the cut keeps n ≥ -151. */
#define BF_EXP_MIN_X -0x1.ap+6f /* -104 */

static inline float bf_pow2i(int k) { /* 2^k for -126 ≤ k ≤ 127, built from the exponent bits */
  const uint32_t bits = (uint32_t)(k + 127) << 23;
  float f;
  memcpy(&f, &bits, sizeof f);
  return f;
}

static inline float bf_expf(float x) {
  if (x != x) return x;                   /* NaN */
  if (x > BF_EXP_MAX_X) return __builtin_inff();
  if (x < BF_EXP_MIN_X) return 0.0f;
  const float n = (x * BF_EXP_LOG2E + BF_EXP_SHIFT) - BF_EXP_SHIFT; /* nearest integer to x·log2e, ties even */
  const float r = (x - n * BF_EXP_LN2_HI) - n * BF_EXP_LN2_LO;       /* |r| ≲ ln2/2 */
  const float z = r * r;
  float p = BF_EXP_P0;
  p = p * r + BF_EXP_P1;
  p = p * r + BF_EXP_P2;
  p = p * r + BF_EXP_P3;
  p = p * r + BF_EXP_P4;
  p = p * r + BF_EXP_P5;
  const float y = (p * z + r) + 1.0f; /* ≈ exp(r), in [0.7, 1.42] */
  /* y·2^k as (y·2^(k−j))·2^j: the first product is exact (a normal float), so the second is the only rounding,
   * which is what makes subnormal results and the overflow at k = 128 correctly rounded from y. */
  const int k = (int)n;
  const int j = k < -125 ? -125 : k > 127 ? 1 : 0;
  return (y * bf_pow2i(k - j)) * bf_pow2i(j);
}

/*
 * The same operations on 16 (AVX-512) or 8 (AVX2) lanes: IEEE float ops are exact per lane, so every lane gets the
 * bits of bf_expf. The special cases are computed along (with meaningless bits) and then replaced by blends.
 */
#if defined(__AVX512F__) || defined(__AVX2__)
#include <immintrin.h>
#endif

#if defined(__AVX512F__)
static inline __m512 bf_expf16(__m512 x) {
  const __m512 shift = _mm512_set1_ps(BF_EXP_SHIFT);
  const __m512 n = _mm512_sub_ps(_mm512_add_ps(_mm512_mul_ps(x, _mm512_set1_ps(BF_EXP_LOG2E)), shift), shift);
  const __m512 r = _mm512_sub_ps(_mm512_sub_ps(x, _mm512_mul_ps(n, _mm512_set1_ps(BF_EXP_LN2_HI))),
                                 _mm512_mul_ps(n, _mm512_set1_ps(BF_EXP_LN2_LO)));
  const __m512 z = _mm512_mul_ps(r, r);
  __m512 p = _mm512_set1_ps(BF_EXP_P0);
  p = _mm512_add_ps(_mm512_mul_ps(p, r), _mm512_set1_ps(BF_EXP_P1));
  p = _mm512_add_ps(_mm512_mul_ps(p, r), _mm512_set1_ps(BF_EXP_P2));
  p = _mm512_add_ps(_mm512_mul_ps(p, r), _mm512_set1_ps(BF_EXP_P3));
  p = _mm512_add_ps(_mm512_mul_ps(p, r), _mm512_set1_ps(BF_EXP_P4));
  p = _mm512_add_ps(_mm512_mul_ps(p, r), _mm512_set1_ps(BF_EXP_P5));
  const __m512 y = _mm512_add_ps(_mm512_add_ps(_mm512_mul_ps(p, z), r), _mm512_set1_ps(1.0f));
  const __m512i k = _mm512_cvttps_epi32(n); /* n is an integer here: truncation is exact */
  const __mmask16 lo = _mm512_cmplt_epi32_mask(k, _mm512_set1_epi32(-125));
  const __mmask16 hi = _mm512_cmpgt_epi32_mask(k, _mm512_set1_epi32(127));
  const __m512i j = _mm512_mask_mov_epi32(_mm512_maskz_mov_epi32(hi, _mm512_set1_epi32(1)), lo, _mm512_set1_epi32(-125));
  const __m512i bias = _mm512_set1_epi32(127);
  const __m512 s1 = _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_add_epi32(_mm512_sub_epi32(k, j), bias), 23));
  const __m512 s2 = _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_add_epi32(j, bias), 23));
  __m512 e = _mm512_mul_ps(_mm512_mul_ps(y, s1), s2);
  e = _mm512_mask_mov_ps(e, _mm512_cmp_ps_mask(x, _mm512_set1_ps(BF_EXP_MAX_X), _CMP_GT_OQ), _mm512_set1_ps(__builtin_inff()));
  e = _mm512_mask_mov_ps(e, _mm512_cmp_ps_mask(x, _mm512_set1_ps(BF_EXP_MIN_X), _CMP_LT_OQ), _mm512_setzero_ps());
  return _mm512_mask_mov_ps(e, _mm512_cmp_ps_mask(x, x, _CMP_UNORD_Q), x);
}
#endif

#if defined(__AVX2__)
static inline __m256 bf_expf8(__m256 x) {
  const __m256 shift = _mm256_set1_ps(BF_EXP_SHIFT);
  const __m256 n = _mm256_sub_ps(_mm256_add_ps(_mm256_mul_ps(x, _mm256_set1_ps(BF_EXP_LOG2E)), shift), shift);
  const __m256 r = _mm256_sub_ps(_mm256_sub_ps(x, _mm256_mul_ps(n, _mm256_set1_ps(BF_EXP_LN2_HI))),
                                 _mm256_mul_ps(n, _mm256_set1_ps(BF_EXP_LN2_LO)));
  const __m256 z = _mm256_mul_ps(r, r);
  __m256 p = _mm256_set1_ps(BF_EXP_P0);
  p = _mm256_add_ps(_mm256_mul_ps(p, r), _mm256_set1_ps(BF_EXP_P1));
  p = _mm256_add_ps(_mm256_mul_ps(p, r), _mm256_set1_ps(BF_EXP_P2));
  p = _mm256_add_ps(_mm256_mul_ps(p, r), _mm256_set1_ps(BF_EXP_P3));
  p = _mm256_add_ps(_mm256_mul_ps(p, r), _mm256_set1_ps(BF_EXP_P4));
  p = _mm256_add_ps(_mm256_mul_ps(p, r), _mm256_set1_ps(BF_EXP_P5));
  const __m256 y = _mm256_add_ps(_mm256_add_ps(_mm256_mul_ps(p, z), r), _mm256_set1_ps(1.0f));
  const __m256i k = _mm256_cvttps_epi32(n);
  const __m256i lo = _mm256_cmpgt_epi32(_mm256_set1_epi32(-125), k);
  const __m256i hi = _mm256_cmpgt_epi32(k, _mm256_set1_epi32(127));
  const __m256i j = _mm256_or_si256(_mm256_and_si256(lo, _mm256_set1_epi32(-125)), _mm256_and_si256(hi, _mm256_set1_epi32(1)));
  const __m256i bias = _mm256_set1_epi32(127);
  const __m256 s1 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(_mm256_sub_epi32(k, j), bias), 23));
  const __m256 s2 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(j, bias), 23));
  __m256 e = _mm256_mul_ps(_mm256_mul_ps(y, s1), s2);
  e = _mm256_blendv_ps(e, _mm256_set1_ps(__builtin_inff()), _mm256_cmp_ps(x, _mm256_set1_ps(BF_EXP_MAX_X), _CMP_GT_OQ));
  e = _mm256_blendv_ps(e, _mm256_setzero_ps(), _mm256_cmp_ps(x, _mm256_set1_ps(BF_EXP_MIN_X), _CMP_LT_OQ));
  return _mm256_blendv_ps(e, x, _mm256_cmp_ps(x, x, _CMP_UNORD_Q));
}
#endif

#endif
