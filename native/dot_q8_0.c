/*
 * Q8_0 and Q4_0 weights against Q8_0 activations (docs/kernels.md "Integer blocks"): an exact int32 sum per
 * 32-element block, v_b = f32(f32(d_w·d_x)·isum_b), accumulated into 8 block lanes (lane = b % 8), folded 4/2/1.
 * The SIMD versions handle 8 blocks at a time so the 8 lanes are one __m256.
 */
#include "butterfly.h"
#include "half.h"
#include "quant_blocks.h"

#if defined(__AVX2__) && defined(__F16C__) && !defined(BF_AVX512_QUANT)
#include <immintrin.h>
#endif

float bf_dot_q8_0_scalar(const uint8_t *w, const bf_act_row *a, int cols) {
  float acc[8] = {0};
  const int nb = cols / BF_QK;
  for (int b = 0; b < nb; b++) {
    const uint8_t *blk = w + (size_t)b * Q8_0_BYTES;
    const float s = bf_load_f16(blk) * a->d[b];
    acc[b % 8] = acc[b % 8] + bf_scale_int(s, isum_q8_0(blk, a->q + b * BF_QK));
  }
  return bf_fold8(acc);
}

float bf_dot_q4_0_scalar(const uint8_t *w, const bf_act_row *a, int cols) {
  float acc[8] = {0};
  const int nb = cols / BF_QK;
  for (int b = 0; b < nb; b++) {
    const uint8_t *blk = w + (size_t)b * Q4_0_BYTES;
    const float s = bf_load_f16(blk) * a->d[b];
    acc[b % 8] = acc[b % 8] + bf_scale_int(s, isum_q4_0(blk, a->q + b * BF_QK, a->sums[b]));
  }
  return bf_fold8(acc);
}

#if defined(__AVX2__) && defined(__F16C__) && !defined(BF_AVX512_QUANT)

/* 8 int32 partial sums of u8·s8 products (u < 256, |s| ≤ 127: pairs stay below 2^15, so maddubs is exact) */
static inline __m256i dot_u8s8(__m256i u, __m256i s) {
#if defined(__AVX512VNNI__) && defined(__AVX512VL__)
  return _mm256_dpbusd_epi32(_mm256_setzero_si256(), u, s);
#else
  return _mm256_madd_epi16(_mm256_maddubs_epi16(u, s), _mm256_set1_epi16(1));
#endif
}

/* [Σ s0, Σ s1, …, Σ s7]: horizontal sums of 8 vectors in one (integer adds, so any order is exact) */
static inline __m256i hsum8x8(__m256i s0, __m256i s1, __m256i s2, __m256i s3, __m256i s4, __m256i s5, __m256i s6,
                              __m256i s7) {
  const __m256i t0 = _mm256_hadd_epi32(s0, s1), t1 = _mm256_hadd_epi32(s2, s3);
  const __m256i t2 = _mm256_hadd_epi32(s4, s5), t3 = _mm256_hadd_epi32(s6, s7);
  const __m256i u0 = _mm256_hadd_epi32(t0, t1), u1 = _mm256_hadd_epi32(t2, t3);
  return _mm256_add_epi32(_mm256_permute2x128_si256(u0, u1, 0x20), _mm256_permute2x128_si256(u0, u1, 0x31));
}

static inline __m256 load_f16x8_strided(const uint8_t *p, size_t stride) {
  const __m128i h = _mm_setr_epi16((short)bf_load_u16(p), (short)bf_load_u16(p + stride),
                                   (short)bf_load_u16(p + 2 * stride), (short)bf_load_u16(p + 3 * stride),
                                   (short)bf_load_u16(p + 4 * stride), (short)bf_load_u16(p + 5 * stride),
                                   (short)bf_load_u16(p + 6 * stride), (short)bf_load_u16(p + 7 * stride));
  return _mm256_cvtph_ps(h);
}

static inline __m256i part_q8_0(const uint8_t *blk, const int8_t *xq) {
  const __m256i wq = _mm256_loadu_si256((const __m256i *)(blk + 2));
  const __m256i xv = _mm256_loadu_si256((const __m256i *)xq);
  /* |w|·(x·sign w): unsigned × signed as maddubs wants; w = −128 gives 128, still exact */
  return dot_u8s8(_mm256_abs_epi8(wq), _mm256_sign_epi8(xv, wq));
}

static inline __m256i part_q4_0(const uint8_t *blk, const int8_t *xq) {
  const __m128i q = _mm_loadu_si128((const __m128i *)(blk + 2));
  const __m128i m = _mm_set1_epi8(0x0f);
  const __m256i nib = _mm256_set_m128i(_mm_and_si128(_mm_srli_epi16(q, 4), m), _mm_and_si128(q, m));
  return dot_u8s8(nib, _mm256_loadu_si256((const __m256i *)xq));
}

/* Blocks [0, nb8) eight at a time into the 8 lanes; the rest go through the scalar block loop. */
#define BLOCK_LANES_SIMD(BYTES, PART, FIX)                                                                        \
  __m256 acc = _mm256_setzero_ps();                                                                              \
  const int nb = cols / BF_QK, nb8 = nb - nb % 8;                                                                 \
  for (int b = 0; b < nb8; b += 8) {                                                                              \
    const uint8_t *blk = w + (size_t)b * (BYTES);                                                                 \
    const int8_t *xq = a->q + b * BF_QK;                                                                          \
    __m256i isum = hsum8x8(PART(blk, xq), PART(blk + (BYTES), xq + 32), PART(blk + 2 * (BYTES), xq + 64),         \
                           PART(blk + 3 * (BYTES), xq + 96), PART(blk + 4 * (BYTES), xq + 128),                   \
                           PART(blk + 5 * (BYTES), xq + 160), PART(blk + 6 * (BYTES), xq + 192),                  \
                           PART(blk + 7 * (BYTES), xq + 224));                                                    \
    FIX;                                                                                                          \
    const __m256 s = _mm256_mul_ps(load_f16x8_strided(blk, (BYTES)), _mm256_loadu_ps(a->d + b));                  \
    acc = _mm256_add_ps(acc, _mm256_mul_ps(s, _mm256_cvtepi32_ps(isum))); /* isum < 2^24: exact in float */       \
  }                                                                                                               \
  float lanes[8];                                                                                                 \
  _mm256_storeu_ps(lanes, acc);

static float dot_q8_0_simd(const uint8_t *w, const bf_act_row *a, int cols) {
  BLOCK_LANES_SIMD(Q8_0_BYTES, part_q8_0, (void)0)
  for (int b = nb8; b < nb; b++) {
    const uint8_t *blk = w + (size_t)b * Q8_0_BYTES;
    lanes[b % 8] = lanes[b % 8] + bf_scale_int(bf_load_f16(blk) * a->d[b], isum_q8_0(blk, a->q + b * BF_QK));
  }
  return bf_fold8(lanes);
}

static float dot_q4_0_simd(const uint8_t *w, const bf_act_row *a, int cols) {
  BLOCK_LANES_SIMD(Q4_0_BYTES, part_q4_0,
                   isum = _mm256_sub_epi32(isum, _mm256_slli_epi32(_mm256_loadu_si256((const __m256i *)(a->sums + b)), 3)))
  for (int b = nb8; b < nb; b++) {
    const uint8_t *blk = w + (size_t)b * Q4_0_BYTES;
    lanes[b % 8] = lanes[b % 8] + bf_scale_int(bf_load_f16(blk) * a->d[b], isum_q4_0(blk, a->q + b * BF_QK, a->sums[b]));
  }
  return bf_fold8(lanes);
}

const bf_dot_fn bf_dot_q8_0_simd = dot_q8_0_simd;
const bf_dot_fn bf_dot_q4_0_simd = dot_q4_0_simd;
const bf_dot4_fn bf_dot4_q8_0_simd = 0;
const bf_dot4_fn bf_dot4_q4_0_simd = 0;
#elif !defined(BF_AVX512_QUANT)
const bf_dot_fn bf_dot_q8_0_simd = 0;
const bf_dot_fn bf_dot_q4_0_simd = 0;
const bf_dot4_fn bf_dot4_q8_0_simd = 0;
const bf_dot4_fn bf_dot4_q4_0_simd = 0;
#endif
