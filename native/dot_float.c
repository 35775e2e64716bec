/*
 * Float-lane dot products (F32, F16, BF16 weights) in the docs/kernels.md order: 16 lane accumulators, folded
 * 8/4/2/1, then the tail added in order. The SIMD versions keep the 16 lanes in one __m512 (AVX-512) or two
 * __m256 (AVX2: lanes 0-7 and 8-15), so they perform the very same float operations as the scalar ones.
 */
#include "butterfly.h"
#include "half.h"

#if defined(__AVX2__) || defined(__AVX512F__)
#include <immintrin.h>
#endif

static inline float load_f32(const uint8_t *p) { float f; memcpy(&f, p, 4); return f; }

float bf_dot_f32_scalar(const uint8_t *w, const bf_act_row *a, int cols) {
  const float *x = a->xf;
  float acc[16] = {0};
  const int m = cols - cols % 16;
  for (int i = 0; i < m; i += 16)
    for (int l = 0; l < 16; l++) acc[l] = acc[l] + load_f32(w + 4 * (i + l)) * x[i + l];
  float s = bf_fold16(acc);
  for (int i = m; i < cols; i++) s = s + load_f32(w + 4 * i) * x[i];
  return s;
}

float bf_dot_f16_scalar(const uint8_t *w, const bf_act_row *a, int cols) {
  const float *x = a->xf;
  float acc[16] = {0};
  const int m = cols - cols % 16;
  for (int i = 0; i < m; i += 16)
    for (int l = 0; l < 16; l++) acc[l] = acc[l] + bf_load_f16(w + 2 * (i + l)) * x[i + l];
  float s = bf_fold16(acc);
  for (int i = m; i < cols; i++) s = s + bf_load_f16(w + 2 * i) * x[i];
  return s;
}

float bf_dot_bf16_scalar(const uint8_t *w, const bf_act_row *a, int cols) {
  const float *x = a->xf;
  float acc[16] = {0};
  const int m = cols - cols % 16;
  for (int i = 0; i < m; i += 16)
    for (int l = 0; l < 16; l++) acc[l] = acc[l] + bf_bf16_to_f32(bf_load_u16(w + 2 * (i + l))) * x[i + l];
  float s = bf_fold16(acc);
  for (int i = m; i < cols; i++) s = s + bf_bf16_to_f32(bf_load_u16(w + 2 * i)) * x[i];
  return s;
}

#if defined(__AVX512F__)

/* Fold the 16 lanes of acc exactly as bf_fold16 does. */
static inline float fold512(__m512 acc) {
  const __m256 lo = _mm512_castps512_ps256(acc);
  const __m256 hi = _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(acc), 1));
  const __m256 a8 = _mm256_add_ps(lo, hi);
  const __m128 a4 = _mm_add_ps(_mm256_castps256_ps128(a8), _mm256_extractf128_ps(a8, 1));
  const __m128 a2 = _mm_add_ps(a4, _mm_movehl_ps(a4, a4));
  return _mm_cvtss_f32(_mm_add_ss(a2, _mm_movehdup_ps(a2)));
}

static float dot_f32_simd(const uint8_t *w, const bf_act_row *a, int cols) {
  const float *x = a->xf;
  const int m = cols - cols % 16;
  __m512 acc = _mm512_setzero_ps();
  for (int i = 0; i < m; i += 16)
    acc = _mm512_add_ps(acc, _mm512_mul_ps(_mm512_loadu_ps(w + 4 * i), _mm512_loadu_ps(x + i)));
  float s = fold512(acc);
  for (int i = m; i < cols; i++) s = s + load_f32(w + 4 * i) * x[i];
  return s;
}

static float dot_f16_simd(const uint8_t *w, const bf_act_row *a, int cols) {
  const float *x = a->xf;
  const int m = cols - cols % 16;
  __m512 acc = _mm512_setzero_ps();
  for (int i = 0; i < m; i += 16) {
    const __m512 wf = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(w + 2 * i)));
    acc = _mm512_add_ps(acc, _mm512_mul_ps(wf, _mm512_loadu_ps(x + i)));
  }
  float s = fold512(acc);
  for (int i = m; i < cols; i++) s = s + bf_load_f16(w + 2 * i) * x[i];
  return s;
}

static float dot_bf16_simd(const uint8_t *w, const bf_act_row *a, int cols) {
  const float *x = a->xf;
  const int m = cols - cols % 16;
  __m512 acc = _mm512_setzero_ps();
  for (int i = 0; i < m; i += 16) {
    const __m512i wi = _mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i *)(w + 2 * i))), 16);
    acc = _mm512_add_ps(acc, _mm512_mul_ps(_mm512_castsi512_ps(wi), _mm512_loadu_ps(x + i)));
  }
  float s = fold512(acc);
  for (int i = m; i < cols; i++) s = s + bf_bf16_to_f32(bf_load_u16(w + 2 * i)) * x[i];
  return s;
}

#elif defined(__AVX2__) && defined(__F16C__)

/* lanes 0-7 in lo, 8-15 in hi; the first fold step (l += l+8) is lo + hi */
static inline float fold256x2(__m256 lo, __m256 hi) {
  const __m256 a8 = _mm256_add_ps(lo, hi);
  const __m128 a4 = _mm_add_ps(_mm256_castps256_ps128(a8), _mm256_extractf128_ps(a8, 1));
  const __m128 a2 = _mm_add_ps(a4, _mm_movehl_ps(a4, a4));
  return _mm_cvtss_f32(_mm_add_ss(a2, _mm_movehdup_ps(a2)));
}

static float dot_f32_simd(const uint8_t *w, const bf_act_row *a, int cols) {
  const float *x = a->xf;
  const int m = cols - cols % 16;
  __m256 lo = _mm256_setzero_ps(), hi = _mm256_setzero_ps();
  for (int i = 0; i < m; i += 16) {
    lo = _mm256_add_ps(lo, _mm256_mul_ps(_mm256_loadu_ps((const float *)(w + 4 * i)), _mm256_loadu_ps(x + i)));
    hi = _mm256_add_ps(hi, _mm256_mul_ps(_mm256_loadu_ps((const float *)(w + 4 * i + 32)), _mm256_loadu_ps(x + i + 8)));
  }
  float s = fold256x2(lo, hi);
  for (int i = m; i < cols; i++) s = s + load_f32(w + 4 * i) * x[i];
  return s;
}

static float dot_f16_simd(const uint8_t *w, const bf_act_row *a, int cols) {
  const float *x = a->xf;
  const int m = cols - cols % 16;
  __m256 lo = _mm256_setzero_ps(), hi = _mm256_setzero_ps();
  for (int i = 0; i < m; i += 16) {
    const __m256 w0 = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(w + 2 * i)));
    const __m256 w1 = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(w + 2 * i + 16)));
    lo = _mm256_add_ps(lo, _mm256_mul_ps(w0, _mm256_loadu_ps(x + i)));
    hi = _mm256_add_ps(hi, _mm256_mul_ps(w1, _mm256_loadu_ps(x + i + 8)));
  }
  float s = fold256x2(lo, hi);
  for (int i = m; i < cols; i++) s = s + bf_load_f16(w + 2 * i) * x[i];
  return s;
}

static float dot_bf16_simd(const uint8_t *w, const bf_act_row *a, int cols) {
  const float *x = a->xf;
  const int m = cols - cols % 16;
  __m256 lo = _mm256_setzero_ps(), hi = _mm256_setzero_ps();
  for (int i = 0; i < m; i += 16) {
    const __m256i w0 = _mm256_slli_epi32(_mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)(w + 2 * i))), 16);
    const __m256i w1 = _mm256_slli_epi32(_mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)(w + 2 * i + 16))), 16);
    lo = _mm256_add_ps(lo, _mm256_mul_ps(_mm256_castsi256_ps(w0), _mm256_loadu_ps(x + i)));
    hi = _mm256_add_ps(hi, _mm256_mul_ps(_mm256_castsi256_ps(w1), _mm256_loadu_ps(x + i + 8)));
  }
  float s = fold256x2(lo, hi);
  for (int i = m; i < cols; i++) s = s + bf_bf16_to_f32(bf_load_u16(w + 2 * i)) * x[i];
  return s;
}

#endif

#if defined(__AVX512F__) || (defined(__AVX2__) && defined(__F16C__))
const bf_dot_fn bf_dot_f32_simd = dot_f32_simd;
const bf_dot_fn bf_dot_f16_simd = dot_f16_simd;
const bf_dot_fn bf_dot_bf16_simd = dot_bf16_simd;
#else
const bf_dot_fn bf_dot_f32_simd = 0;
const bf_dot_fn bf_dot_f16_simd = 0;
const bf_dot_fn bf_dot_bf16_simd = 0;
#endif
