/*
 * Q4_K, Q5_K and Q6_K weights against Q8_K activations (docs/kernels.md "Integer super-blocks"): exact int32
 * sums per 256-element super-block as ggml forms them, one float value v_b per super-block, accumulated into 8
 * block lanes. The SIMD versions only compute the integer sums with vectors; the float steps are shared.
 */
#include "butterfly.h"
#include "half.h"
#include "quant_blocks.h"

#if defined(__AVX2__) && defined(__F16C__) && !defined(BF_AVX512_QUANT)
#include <immintrin.h>
#endif

/* Σ_j sc_j · Σ_k q·x over the 8 sub-blocks of 32, q = low nibble (+16 if the Q5_K high bit is set) */
static int32_t sumi_q4_k_scalar(const uint8_t *blk, const int8_t *xq, const uint8_t sc[8]) {
  const uint8_t *qs = blk + 16;
  int32_t sumi = 0;
  for (int i = 0; i < 4; i++) {
    int32_t s0 = 0, s1 = 0;
    for (int l = 0; l < 32; l++) {
      s0 += (int32_t)(qs[32 * i + l] & 0xf) * xq[64 * i + l];
      s1 += (int32_t)(qs[32 * i + l] >> 4) * xq[64 * i + 32 + l];
    }
    sumi += sc[2 * i] * s0 + sc[2 * i + 1] * s1;
  }
  return sumi;
}

static int32_t sumi_q5_k_scalar(const uint8_t *blk, const int8_t *xq, const uint8_t sc[8]) {
  const uint8_t *qh = blk + 16, *qs = blk + 48;
  int32_t sumi = 0;
  for (int i = 0; i < 4; i++) {
    int32_t s0 = 0, s1 = 0;
    for (int l = 0; l < 32; l++) {
      const int32_t lo = (qs[32 * i + l] & 0xf) | (((qh[l] >> (2 * i)) & 1) << 4);
      const int32_t hi = (qs[32 * i + l] >> 4) | (((qh[l] >> (2 * i + 1)) & 1) << 4);
      s0 += lo * xq[64 * i + l];
      s1 += hi * xq[64 * i + 32 + l];
    }
    sumi += sc[2 * i] * s0 + sc[2 * i + 1] * s1;
  }
  return sumi;
}

float bf_dot_q4_k_scalar(const uint8_t *w, const bf_act_row *a, int cols) {
  float acc[8] = {0};
  for (int b = 0; b < cols / BF_QK_K; b++) {
    const uint8_t *blk = w + (size_t)b * Q4_K_BYTES;
    uint8_t sc[8], m[8];
    k4_scales(blk + 4, sc, m);
    const int32_t sumi = sumi_q4_k_scalar(blk, a->q + b * BF_QK_K, sc);
    acc[b % 8] = acc[b % 8] + k4_value(blk, a->d[b], sumi, k4_summins(m, a->sums + b * 16));
  }
  return bf_fold8(acc);
}

float bf_dot_q5_k_scalar(const uint8_t *w, const bf_act_row *a, int cols) {
  float acc[8] = {0};
  for (int b = 0; b < cols / BF_QK_K; b++) {
    const uint8_t *blk = w + (size_t)b * Q5_K_BYTES;
    uint8_t sc[8], m[8];
    k4_scales(blk + 4, sc, m);
    const int32_t sumi = sumi_q5_k_scalar(blk, a->q + b * BF_QK_K, sc);
    acc[b % 8] = acc[b % 8] + k4_value(blk, a->d[b], sumi, k4_summins(m, a->sums + b * 16));
  }
  return bf_fold8(acc);
}

/* Q6_K: ql (128 bytes, low 4 bits), qh (64 bytes, high 2 bits), 16 int8 scales, F16 d; sub-block j covers
 * elements 16j..16j+15. */
float bf_dot_q6_k_scalar(const uint8_t *w, const bf_act_row *a, int cols) {
  float acc[8] = {0};
  for (int b = 0; b < cols / BF_QK_K; b++) {
    const uint8_t *blk = w + (size_t)b * Q6_K_BYTES;
    const int8_t *sc = (const int8_t *)(blk + 192);
    const int8_t *xq = a->q + b * BF_QK_K;
    int32_t sub[16] = {0};
    for (int n = 0; n < 2; n++) {
      const uint8_t *ql = blk + 64 * n, *qh = blk + 128 + 32 * n;
      const int8_t *x = xq + 128 * n;
      for (int l = 0; l < 32; l++) {
        const int32_t q1 = (ql[l] & 0xf) | ((qh[l] & 3) << 4);
        const int32_t q2 = (ql[l + 32] & 0xf) | (((qh[l] >> 2) & 3) << 4);
        const int32_t q3 = (ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4);
        const int32_t q4 = (ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4);
        sub[8 * n + l / 16] += q1 * x[l];
        sub[8 * n + 2 + l / 16] += q2 * x[l + 32];
        sub[8 * n + 4 + l / 16] += q3 * x[l + 64];
        sub[8 * n + 6 + l / 16] += q4 * x[l + 96];
      }
    }
    int32_t sumi = 0;
    for (int j = 0; j < 16; j++) sumi += sc[j] * sub[j];
    sumi -= q6_offset(sc, a->sums + b * 16);
    acc[b % 8] = acc[b % 8] + bf_scale_int(bf_load_f16(blk + 208) * a->d[b], sumi);
  }
  return bf_fold8(acc);
}

#if defined(__AVX2__) && defined(__F16C__) && !defined(BF_AVX512_QUANT)

static inline int32_t hsum_epi32(__m256i v) {
  __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4e));
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xb1));
  return _mm_cvtsi128_si32(s);
}

/* Σ q·x per 16-bit pair, times a per-pair scale, as 8 int32 (q ≤ 63, |x| ≤ 127: maddubs cannot saturate) */
static inline __m256i scaled_dot(__m256i q, const int8_t *x, __m256i scale16) {
  return _mm256_madd_epi16(_mm256_maddubs_epi16(q, _mm256_loadu_si256((const __m256i *)x)), scale16);
}

static int32_t sumi_q4_k_simd(const uint8_t *blk, const int8_t *xq, const uint8_t sc[8]) {
  const __m256i m4 = _mm256_set1_epi8(0x0f);
  __m256i acc = _mm256_setzero_si256();
  for (int i = 0; i < 4; i++) {
    const __m256i q = _mm256_loadu_si256((const __m256i *)(blk + 16 + 32 * i));
    acc = _mm256_add_epi32(acc, scaled_dot(_mm256_and_si256(q, m4), xq + 64 * i, _mm256_set1_epi16(sc[2 * i])));
    acc = _mm256_add_epi32(acc, scaled_dot(_mm256_and_si256(_mm256_srli_epi16(q, 4), m4), xq + 64 * i + 32,
                                           _mm256_set1_epi16(sc[2 * i + 1])));
  }
  return hsum_epi32(acc);
}

static int32_t sumi_q5_k_simd(const uint8_t *blk, const int8_t *xq, const uint8_t sc[8]) {
  const __m256i m4 = _mm256_set1_epi8(0x0f), one = _mm256_set1_epi8(1);
  const __m256i qh = _mm256_loadu_si256((const __m256i *)(blk + 16));
  __m256i acc = _mm256_setzero_si256();
  for (int i = 0; i < 4; i++) {
    const __m256i q = _mm256_loadu_si256((const __m256i *)(blk + 48 + 32 * i));
    /* the high bit as 16: isolate bit 2i (2i+1) of each byte, then shift it to bit 4 (no carry across bytes) */
    const __m256i h0 = _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 2 * i), one), 4);
    const __m256i h1 = _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 2 * i + 1), one), 4);
    const __m256i lo = _mm256_or_si256(_mm256_and_si256(q, m4), h0);
    const __m256i hi = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(q, 4), m4), h1);
    acc = _mm256_add_epi32(acc, scaled_dot(lo, xq + 64 * i, _mm256_set1_epi16(sc[2 * i])));
    acc = _mm256_add_epi32(acc, scaled_dot(hi, xq + 64 * i + 32, _mm256_set1_epi16(sc[2 * i + 1])));
  }
  return hsum_epi32(acc);
}

static float dot_q4_k_simd(const uint8_t *w, const bf_act_row *a, int cols) {
  float acc[8] = {0};
  for (int b = 0; b < cols / BF_QK_K; b++) {
    const uint8_t *blk = w + (size_t)b * Q4_K_BYTES;
    uint8_t sc[8], m[8];
    k4_scales(blk + 4, sc, m);
    const int32_t sumi = sumi_q4_k_simd(blk, a->q + b * BF_QK_K, sc);
    acc[b % 8] = acc[b % 8] + k4_value(blk, a->d[b], sumi, k4_summins(m, a->sums + b * 16));
  }
  return bf_fold8(acc);
}

static float dot_q5_k_simd(const uint8_t *w, const bf_act_row *a, int cols) {
  float acc[8] = {0};
  for (int b = 0; b < cols / BF_QK_K; b++) {
    const uint8_t *blk = w + (size_t)b * Q5_K_BYTES;
    uint8_t sc[8], m[8];
    k4_scales(blk + 4, sc, m);
    const int32_t sumi = sumi_q5_k_simd(blk, a->q + b * BF_QK_K, sc);
    acc[b % 8] = acc[b % 8] + k4_value(blk, a->d[b], sumi, k4_summins(m, a->sums + b * 16));
  }
  return bf_fold8(acc);
}

static inline __m256i scale_pair16(const int8_t *sc, int j) {
  return _mm256_setr_m128i(_mm_set1_epi16(sc[j]), _mm_set1_epi16(sc[j + 1]));
}

static float dot_q6_k_simd(const uint8_t *w, const bf_act_row *a, int cols) {
  const __m256i m4 = _mm256_set1_epi8(0x0f), m2 = _mm256_set1_epi8(3);
  float acc[8] = {0};
  for (int b = 0; b < cols / BF_QK_K; b++) {
    const uint8_t *blk = w + (size_t)b * Q6_K_BYTES;
    const int8_t *sc = (const int8_t *)(blk + 192);
    const int8_t *xq = a->q + b * BF_QK_K;
    __m256i vacc = _mm256_setzero_si256();
    for (int n = 0; n < 2; n++) {
      const __m256i l0 = _mm256_loadu_si256((const __m256i *)(blk + 64 * n));
      const __m256i l1 = _mm256_loadu_si256((const __m256i *)(blk + 64 * n + 32));
      const __m256i h = _mm256_loadu_si256((const __m256i *)(blk + 128 + 32 * n));
      const __m256i q1 = _mm256_or_si256(_mm256_and_si256(l0, m4), _mm256_slli_epi16(_mm256_and_si256(h, m2), 4));
      const __m256i q2 = _mm256_or_si256(_mm256_and_si256(l1, m4),
                                         _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(h, 2), m2), 4));
      const __m256i q3 = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l0, 4), m4),
                                         _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(h, 4), m2), 4));
      const __m256i q4 = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l1, 4), m4),
                                         _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(h, 6), m2), 4));
      const int8_t *x = xq + 128 * n;
      vacc = _mm256_add_epi32(vacc, scaled_dot(q1, x, scale_pair16(sc, 8 * n)));
      vacc = _mm256_add_epi32(vacc, scaled_dot(q2, x + 32, scale_pair16(sc, 8 * n + 2)));
      vacc = _mm256_add_epi32(vacc, scaled_dot(q3, x + 64, scale_pair16(sc, 8 * n + 4)));
      vacc = _mm256_add_epi32(vacc, scaled_dot(q4, x + 96, scale_pair16(sc, 8 * n + 6)));
    }
    const int32_t sumi = hsum_epi32(vacc) - q6_offset(sc, a->sums + b * 16);
    acc[b % 8] = acc[b % 8] + bf_scale_int(bf_load_f16(blk + 208) * a->d[b], sumi);
  }
  return bf_fold8(acc);
}

const bf_dot_fn bf_dot_q4_k_simd = dot_q4_k_simd;
const bf_dot_fn bf_dot_q5_k_simd = dot_q5_k_simd;
const bf_dot_fn bf_dot_q6_k_simd = dot_q6_k_simd;
const bf_dot4_fn bf_dot4_q4_k_simd = 0, bf_dot4_q5_k_simd = 0, bf_dot4_q6_k_simd = 0;
#elif !defined(BF_AVX512_QUANT)
const bf_dot_fn bf_dot_q4_k_simd = 0;
const bf_dot_fn bf_dot_q5_k_simd = 0;
const bf_dot_fn bf_dot_q6_k_simd = 0;
const bf_dot4_fn bf_dot4_q4_k_simd = 0, bf_dot4_q5_k_simd = 0, bf_dot4_q6_k_simd = 0;
#endif
