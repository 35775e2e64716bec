/*
 * AVX-512 (BW, VL, VNNI) quantized kernels, for 1 token or 4 tokens at once. The weights of a block are loaded
 * and unpacked once and reused for every token; each token's integer sums are exact and its float steps are the
 * ones of docs/kernels.md, so every token gets the bits of the scalar kernels.
 */
#include "butterfly.h"
#include "quant_blocks.h"

#ifdef BF_AVX512_QUANT
#include <immintrin.h>

#define AI static inline __attribute__((always_inline))
#define MAX_TOK BF_TOK_GROUP

/* ---------------- Q8_0 / Q4_0: 8 blocks per step, two blocks per __m512 ---------------- */

/*
 * Per-block int32 sums of 8 blocks from 4 vectors z_p = [block 2p: 8 partial lanes | block 2p+1: 8 lanes].
 * Integer adds, so the order is free; the result's lanes are blocks 0,2,4,6,1,3,5,7 (BLOCK_ORDER), which saves
 * a final shuffle: the scales are put in the same order instead.
 */
AI __m256i block_sums8(__m512i z0, __m512i z1, __m512i z2, __m512i z3) {
  const __m512i a01 = _mm512_add_epi32(_mm512_unpacklo_epi32(z0, z1), _mm512_unpackhi_epi32(z0, z1));
  const __m512i a23 = _mm512_add_epi32(_mm512_unpacklo_epi32(z2, z3), _mm512_unpackhi_epi32(z2, z3));
  const __m512i c = _mm512_add_epi32(_mm512_unpacklo_epi64(a01, a23), _mm512_unpackhi_epi64(a01, a23));
  const __m512i d = _mm512_add_epi32(c, _mm512_shuffle_i32x4(c, c, _MM_SHUFFLE(2, 3, 0, 1)));
  return _mm512_castsi512_si256(_mm512_shuffle_i32x4(d, d, _MM_SHUFFLE(0, 0, 2, 0)));
}
static const int BLOCK_ORDER[8] = {0, 2, 4, 6, 1, 3, 5, 7};

/* the 8 F16 block scales of a group, in BLOCK_ORDER */
AI __m256 weight_scales8(const uint8_t *blk, size_t stride) {
  const __m128i h = _mm_setr_epi16((short)bf_load_u16(blk), (short)bf_load_u16(blk + 2 * stride),
                                   (short)bf_load_u16(blk + 4 * stride), (short)bf_load_u16(blk + 6 * stride),
                                   (short)bf_load_u16(blk + 1 * stride), (short)bf_load_u16(blk + 3 * stride),
                                   (short)bf_load_u16(blk + 5 * stride), (short)bf_load_u16(blk + 7 * stride));
  return _mm256_cvtph_ps(h);
}

/* Q8_0 weights of blocks 2p, 2p+1 as |w| and the sign mask (dpbusd wants unsigned × signed) */
AI void q8_0_pair(const uint8_t *blk, __m512i *wabs, __mmask64 *neg) {
  const __m512i w = _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_loadu_si256((const __m256i *)(blk + 2))),
                                       _mm256_loadu_si256((const __m256i *)(blk + Q8_0_BYTES + 2)), 1);
  *wabs = _mm512_abs_epi8(w);
  *neg = _mm512_movepi8_mask(w);
}

/* Q4_0 nibbles of blocks 2p, 2p+1 as [lo 2p | hi 2p | lo 2p+1 | hi 2p+1], matching 64 contiguous x bytes */
AI __m512i q4_0_pair(const uint8_t *blk) {
  const __m256i y = _mm256_inserti128_si256(_mm256_castsi128_si256(_mm_loadu_si128((const __m128i *)(blk + 2))),
                                            _mm_loadu_si128((const __m128i *)(blk + Q4_0_BYTES + 2)), 1);
  const __m512i z = _mm512_and_si512(_mm512_inserti64x4(_mm512_castsi256_si512(y), _mm256_srli_epi16(y, 4), 1),
                                     _mm512_set1_epi8(0x0f));
  return _mm512_shuffle_i32x4(z, z, _MM_SHUFFLE(3, 1, 2, 0));
}

AI void q8_family(const uint8_t *w, const bf_act_row *a, int nt, int cols, int is_q4, float *out) {
  const size_t bytes = is_q4 ? Q4_0_BYTES : Q8_0_BYTES;
  const int nb = cols / BF_QK, nb8 = nb - nb % 8;
  const __m256i order = _mm256_setr_epi32(0, 2, 4, 6, 1, 3, 5, 7);
  __m256 acc[MAX_TOK];
  for (int t = 0; t < nt; t++) acc[t] = _mm256_setzero_ps();
  for (int b = 0; b < nb8; b += 8) {
    const uint8_t *blk = w + (size_t)b * bytes;
    __m512i wv[4];
    __mmask64 neg[4];
    for (int p = 0; p < 4; p++) {
      if (is_q4) wv[p] = q4_0_pair(blk + 2 * p * bytes);
      else q8_0_pair(blk + 2 * p * bytes, &wv[p], &neg[p]);
    }
    const __m256 dw = weight_scales8(blk, bytes);
    for (int t = 0; t < nt; t++) {
      const int8_t *xq = a[t].q + b * BF_QK;
      __m512i z[4];
      for (int p = 0; p < 4; p++) {
        const __m512i x = _mm512_loadu_si512((const void *)(xq + 64 * p));
        const __m512i xs = is_q4 ? x : _mm512_mask_sub_epi8(x, neg[p], _mm512_setzero_si512(), x);
        z[p] = _mm512_dpbusd_epi32(_mm512_setzero_si512(), wv[p], xs);
      }
      __m256i isum = block_sums8(z[0], z[1], z[2], z[3]);
      if (is_q4) {
        const __m256i xs = _mm256_permutevar8x32_epi32(_mm256_loadu_si256((const __m256i *)(a[t].sums + b)), order);
        isum = _mm256_sub_epi32(isum, _mm256_slli_epi32(xs, 3));
      }
      const __m256 dx = _mm256_permutevar8x32_ps(_mm256_loadu_ps(a[t].d + b), order);
      acc[t] = _mm256_add_ps(acc[t], _mm256_mul_ps(_mm256_mul_ps(dw, dx), _mm256_cvtepi32_ps(isum)));
    }
  }
  for (int t = 0; t < nt; t++) {
    float tmp[8], lanes[8];
    _mm256_storeu_ps(tmp, acc[t]);
    for (int i = 0; i < 8; i++) lanes[BLOCK_ORDER[i]] = tmp[i];
    for (int b = nb8; b < nb; b++) {
      const uint8_t *blk = w + (size_t)b * bytes;
      const int32_t isum = is_q4 ? isum_q4_0(blk, a[t].q + b * BF_QK, a[t].sums[b]) : isum_q8_0(blk, a[t].q + b * BF_QK);
      lanes[b % 8] = lanes[b % 8] + bf_scale_int(bf_load_f16(blk) * a[t].d[b], isum);
    }
    out[t] = bf_fold8(lanes);
  }
}

static float dot_q8_0(const uint8_t *w, const bf_act_row *a, int cols) { float r; q8_family(w, a, 1, cols, 0, &r); return r; }
static float dot_q4_0(const uint8_t *w, const bf_act_row *a, int cols) { float r; q8_family(w, a, 1, cols, 1, &r); return r; }
static void dot4_q8_0(const uint8_t *w, const bf_act_row *a, int cols, float *out) { q8_family(w, a, 4, cols, 0, out); }
static void dot4_q4_0(const uint8_t *w, const bf_act_row *a, int cols, float *out) { q8_family(w, a, 4, cols, 1, out); }

/* ---------------- K-quants: one super-block of 256 per step ---------------- */

/* int16 index vector [j ×16, j+1 ×16] (Q4_K/Q5_K chunk scales) or [j ×8, j+1 ×8, j+2 ×8, j+3 ×8] (Q6_K) */
AI __m512i repeat_idx16(int first, int run) {
  int16_t idx[32];
  for (int i = 0; i < 32; i++) idx[i] = (int16_t)(first + i / run);
  return _mm512_loadu_si512((const void *)idx);
}

/* Q4_K / Q5_K quants of chunk i (sub-blocks 2i, 2i+1) as 64 bytes matching x[64i .. 64i+64) */
AI __m512i k4_chunk(const uint8_t *qs, int i, int has_high, __m512i qh2) {
  const __m256i y = _mm256_loadu_si256((const __m256i *)(qs + 32 * i));
  __m512i z = _mm512_and_si512(_mm512_inserti64x4(_mm512_castsi256_si512(y), _mm256_srli_epi16(y, 4), 1),
                               _mm512_set1_epi8(0x0f));
  if (has_high) {
    /* qh2 = [qh | qh >> 1]: bit 2i of each byte is sub-block 2i's fifth bit, bit 2i+1 sub-block 2i+1's */
    const __m512i h = _mm512_and_si512(_mm512_srli_epi16(qh2, 2 * i), _mm512_set1_epi8(1));
    z = _mm512_or_si512(z, _mm512_slli_epi16(h, 4));
  }
  return z;
}

AI void k4_family(const uint8_t *w, const bf_act_row *a, int nt, int cols, int has_high, float *out) {
  const size_t bytes = has_high ? Q5_K_BYTES : Q4_K_BYTES;
  const int nb = cols / BF_QK_K;
  float lanes[MAX_TOK][8] = {{0}};
  const __m512i pair_idx = _mm512_setr_epi32(0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7);
  for (int b = 0; b < nb; b++) {
    const uint8_t *blk = w + (size_t)b * bytes;
    uint8_t sc[8], m[8];
    k4_scales(blk + 4, sc, m);
    uint64_t sc8, m8;
    memcpy(&sc8, sc, 8);
    memcpy(&m8, m, 8);
    const __m512i sc16 = _mm512_cvtepu8_epi16(_mm256_zextsi128_si256(_mm_cvtsi64_si128((long long)sc8)));
    /* mins as 16 int32 [m0, m0, m1, m1, …]: each min covers two 16-element bsums */
    const __m512i m32 = _mm512_permutexvar_epi32(pair_idx, _mm512_cvtepu8_epi32(_mm_cvtsi64_si128((long long)m8)));
    const uint8_t *qs = blk + (has_high ? 48 : 16);
    __m512i qh2 = _mm512_setzero_si512();
    if (has_high) {
      const __m256i qh = _mm256_loadu_si256((const __m256i *)(blk + 16));
      qh2 = _mm512_inserti64x4(_mm512_castsi256_si512(qh), _mm256_srli_epi16(qh, 1), 1);
    }
    __m512i q[4], s[4];
    for (int i = 0; i < 4; i++) {
      q[i] = k4_chunk(qs, i, has_high, qh2);
      s[i] = _mm512_permutexvar_epi16(repeat_idx16(2 * i, 16), sc16);
    }
    for (int t = 0; t < nt; t++) {
      const int8_t *xq = a[t].q + b * BF_QK_K;
      __m512i acc = _mm512_setzero_si512();
      for (int i = 0; i < 4; i++) {
        /* q ≤ 31, |x| ≤ 127: the int16 pair sums of maddubs cannot saturate */
        const __m512i p = _mm512_maddubs_epi16(q[i], _mm512_loadu_si512((const void *)(xq + 64 * i)));
        acc = _mm512_dpwssd_epi32(acc, p, s[i]);
      }
      const int32_t sumi = _mm512_reduce_add_epi32(acc);
      const int32_t summins =
          _mm512_reduce_add_epi32(_mm512_mullo_epi32(m32, _mm512_loadu_si512((const void *)(a[t].sums + b * 16))));
      lanes[t][b % 8] = lanes[t][b % 8] + k4_value(blk, a[t].d[b], sumi, summins);
    }
  }
  for (int t = 0; t < nt; t++) out[t] = bf_fold8(lanes[t]);
}

static float dot_q4_k(const uint8_t *w, const bf_act_row *a, int cols) { float r; k4_family(w, a, 1, cols, 0, &r); return r; }
static float dot_q5_k(const uint8_t *w, const bf_act_row *a, int cols) { float r; k4_family(w, a, 1, cols, 1, &r); return r; }
static void dot4_q4_k(const uint8_t *w, const bf_act_row *a, int cols, float *out) { k4_family(w, a, 4, cols, 0, out); }
static void dot4_q5_k(const uint8_t *w, const bf_act_row *a, int cols, float *out) { k4_family(w, a, 4, cols, 1, out); }

AI void q6_k(const uint8_t *w, const bf_act_row *a, int nt, int cols, float *out) {
  const int nb = cols / BF_QK_K;
  const __m512i m4 = _mm512_set1_epi8(0x0f), m2 = _mm512_set1_epi8(3);
  float lanes[MAX_TOK][8] = {{0}};
  for (int b = 0; b < nb; b++) {
    const uint8_t *blk = w + (size_t)b * Q6_K_BYTES;
    const __m128i sc8 = _mm_loadu_si128((const __m128i *)(blk + 192));
    const __m512i sc16 = _mm512_cvtepi8_epi16(_mm256_zextsi128_si256(sc8));
    const __m512i sc32 = _mm512_cvtepi8_epi32(sc8);
    __m512i q[4], s[4];
    for (int n = 0; n < 2; n++) {
      const __m512i l = _mm512_loadu_si512((const void *)(blk + 64 * n)); /* [ql 0..31 | ql 32..63] of this half */
      const __m256i h256 = _mm256_loadu_si256((const __m256i *)(blk + 128 + 32 * n));
      const __m512i h = _mm512_inserti64x4(_mm512_castsi256_si512(h256), _mm256_srli_epi16(h256, 2), 1);
      /* elements 0..63 of the half: low nibbles + bits 0-1 / 2-3; elements 64..127: high nibbles + bits 4-5 / 6-7 */
      q[2 * n] = _mm512_or_si512(_mm512_and_si512(l, m4), _mm512_slli_epi16(_mm512_and_si512(h, m2), 4));
      q[2 * n + 1] = _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi16(l, 4), m4),
                                     _mm512_slli_epi16(_mm512_and_si512(_mm512_srli_epi16(h, 4), m2), 4));
      s[2 * n] = _mm512_permutexvar_epi16(repeat_idx16(8 * n, 8), sc16);
      s[2 * n + 1] = _mm512_permutexvar_epi16(repeat_idx16(8 * n + 4, 8), sc16);
    }
    for (int t = 0; t < nt; t++) {
      const int8_t *xq = a[t].q + b * BF_QK_K;
      /* start from −32·sc_j·bsums_j so one reduction gives Σ sc_j·Σ (q − 32)·x */
      __m512i acc = _mm512_slli_epi32(_mm512_mullo_epi32(sc32, _mm512_loadu_si512((const void *)(a[t].sums + b * 16))), 5);
      acc = _mm512_sub_epi32(_mm512_setzero_si512(), acc);
      for (int i = 0; i < 4; i++) {
        /* q ≤ 63, |x| ≤ 127: maddubs pairs stay below 2^15 */
        const __m512i p = _mm512_maddubs_epi16(q[i], _mm512_loadu_si512((const void *)(xq + 64 * i)));
        acc = _mm512_dpwssd_epi32(acc, p, s[i]);
      }
      const int32_t sumi = _mm512_reduce_add_epi32(acc);
      lanes[t][b % 8] = lanes[t][b % 8] + bf_scale_int(bf_load_f16(blk + 208) * a[t].d[b], sumi);
    }
  }
  for (int t = 0; t < nt; t++) out[t] = bf_fold8(lanes[t]);
}

static float dot_q6_k(const uint8_t *w, const bf_act_row *a, int cols) { float r; q6_k(w, a, 1, cols, &r); return r; }
static void dot4_q6_k(const uint8_t *w, const bf_act_row *a, int cols, float *out) { q6_k(w, a, 4, cols, out); }

const bf_dot_fn bf_dot_q8_0_simd = dot_q8_0, bf_dot_q4_0_simd = dot_q4_0;
const bf_dot4_fn bf_dot4_q8_0_simd = dot4_q8_0, bf_dot4_q4_0_simd = dot4_q4_0;
const bf_dot_fn bf_dot_q4_k_simd = dot_q4_k, bf_dot_q5_k_simd = dot_q5_k, bf_dot_q6_k_simd = dot_q6_k;
const bf_dot4_fn bf_dot4_q4_k_simd = dot4_q4_k, bf_dot4_q5_k_simd = dot4_q5_k, bf_dot4_q6_k_simd = dot4_q6_k;

#endif
