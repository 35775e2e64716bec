/*
 * AVX-512 (BW, VL, VNNI) quantized kernels, for 1 token, 4 tokens at once, and small batches of 2..7 tokens
 * (bf_dotn: Q8_0 and Q4_0 in q4n; Q4_K / Q5_K in k4n; Q6_K in q6n). The weights of a block are loaded
 * and unpacked once and reused for every token; each token's integer sums are exact and its float steps are the
 * ones of docs/kernels.md, so every token gets the bits of the scalar kernels. q4n and k4n also take two weight rows
 * per call (bf_dotn.dot2), so that each activation vector is loaded once for both rows.
 */
#include "butterfly.h"
#include "quant_blocks.h"

#ifdef BF_AVX512_QUANT
#include <immintrin.h>

#define AI static inline __attribute__((always_inline))
#define MAX_TOK BF_DOTN_MAX /* ≥ BF_TOK_GROUP: the multi-token kernels also serve bf_dotn */

/* The 8 block lanes live in a __m256 (lane l = blocks ≡ l mod 8); a masked add updates one lane with exactly
 * acc[l] + v. Keeping them in a register avoids a store-forwarding stall per row (rows are only a few blocks). */
AI __m256 add_lane(__m256 acc, int lane, float v) {
  return _mm256_mask_add_ps(acc, (__mmask8)(1u << lane), acc, _mm256_set1_ps(v));
}

/* bf_fold8 on a register: l += l+4, l += l+2, then lane 0 + lane 1 */
AI float fold8_m256(__m256 v) {
  const __m128 a4 = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  const __m128 a2 = _mm_add_ps(a4, _mm_movehl_ps(a4, a4));
  return _mm_cvtss_f32(_mm_add_ss(a2, _mm_movehdup_ps(a2)));
}

/* the upper 256 bits, and [lo | hi] (AVX512F only; the f32x8 forms would need AVX512DQ) */
AI __m256 hi256_ps(__m512 v) { return _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), 1)); }
AI __m512 join256_ps(__m256 lo, __m256 hi) {
  return _mm512_castpd_ps(_mm512_insertf64x4(_mm512_castpd256_pd512(_mm256_castps_pd(lo)), _mm256_castps_pd(hi), 1));
}

/* ---------------- Q8_0 / Q4_0: 8 blocks per step ---------------- */

/*
 * Per-block int32 sums of 8 blocks from 4 vectors z_p = [block 2p: 8 partial lanes | block 2p+1: 8 lanes].
 * Integer adds, so the order is free; the result's lanes are blocks 0,2,4,6,1,3,5,7, which saves
 * a final shuffle: the scales are put in the same order instead.
 */
AI __m256i block_sums8(__m512i z0, __m512i z1, __m512i z2, __m512i z3) {
  const __m512i a01 = _mm512_add_epi32(_mm512_unpacklo_epi32(z0, z1), _mm512_unpackhi_epi32(z0, z1));
  const __m512i a23 = _mm512_add_epi32(_mm512_unpacklo_epi32(z2, z3), _mm512_unpackhi_epi32(z2, z3));
  const __m512i c = _mm512_add_epi32(_mm512_unpacklo_epi64(a01, a23), _mm512_unpackhi_epi64(a01, a23));
  const __m512i d = _mm512_add_epi32(c, _mm512_shuffle_i32x4(c, c, _MM_SHUFFLE(2, 3, 0, 1)));
  return _mm512_castsi512_si256(_mm512_shuffle_i32x4(d, d, _MM_SHUFFLE(0, 0, 2, 0)));
}

/* the 8 F16 block scales of a group, in the lane order of block_sums8 (0,2,4,6,1,3,5,7) */
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

AI void q8_0_x512(const uint8_t *w, const bf_act_row *a, int nt, int cols, float *out) {
  const int nb = cols / BF_QK, nb8 = nb - nb % 8;
  const __m256i order = _mm256_setr_epi32(0, 2, 4, 6, 1, 3, 5, 7);
  __m256 acc[MAX_TOK];
  for (int t = 0; t < nt; t++) acc[t] = _mm256_setzero_ps();
  for (int b = 0; b < nb8; b += 8) {
    const uint8_t *blk = w + (size_t)b * Q8_0_BYTES;
    __m512i wabs[4];
    __mmask64 neg[4];
    for (int p = 0; p < 4; p++) q8_0_pair(blk + 2 * p * Q8_0_BYTES, &wabs[p], &neg[p]);
    const __m256 dw = weight_scales8(blk, Q8_0_BYTES);
    for (int t = 0; t < nt; t++) {
      const int8_t *xq = a[t].q + b * BF_QK;
      __m512i z[4];
      for (int p = 0; p < 4; p++) {
        const __m512i x = _mm512_loadu_si512((const void *)(xq + 64 * p));
        const __m512i xs = _mm512_mask_sub_epi8(x, neg[p], _mm512_setzero_si512(), x);
        z[p] = _mm512_dpbusd_epi32(_mm512_setzero_si512(), wabs[p], xs);
      }
      const __m256i isum = block_sums8(z[0], z[1], z[2], z[3]);
      const __m256 dx = _mm256_permutevar8x32_ps(_mm256_loadu_ps(a[t].d + b), order);
      acc[t] = _mm256_add_ps(acc[t], _mm256_mul_ps(_mm256_mul_ps(dw, dx), _mm256_cvtepi32_ps(isum)));
    }
  }
  /* lane i of acc holds block lane order[i]; this puts lane l back at position l */
  const __m256i unorder = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
  for (int t = 0; t < nt; t++) {
    __m256 lanes = _mm256_permutevar8x32_ps(acc[t], unorder);
    for (int b = nb8; b < nb; b++) {
      const uint8_t *blk = w + (size_t)b * Q8_0_BYTES;
      lanes = add_lane(lanes, b % 8, bf_scale_int(bf_load_f16(blk) * a[t].d[b], isum_q8_0(blk, a[t].q + b * BF_QK)));
    }
    out[t] = fold8_m256(lanes);
  }
}

/* [Σ z0, Σ z1, Σ z2, Σ z3] of four 4-lane vectors (integer adds: exact in any order) */
AI __m128i sums4(__m128i z0, __m128i z1, __m128i z2, __m128i z3) {
  const __m128i a01 = _mm_add_epi32(_mm_unpacklo_epi32(z0, z1), _mm_unpackhi_epi32(z0, z1));
  const __m128i a23 = _mm_add_epi32(_mm_unpacklo_epi32(z2, z3), _mm_unpackhi_epi32(z2, z3));
  return _mm_add_epi32(_mm_unpacklo_epi64(a01, a23), _mm_unpackhi_epi64(a01, a23));
}

/*
 * Q4_0 with 128-bit integer work: a block's 16 bytes split into low and high nibbles without crossing lanes, and
 * the per-block sums come out in natural order. Measured ~20% faster here than packing two blocks per __m512,
 * which needs lane-crossing shuffles.
 */
AI void q4_0_x128(const uint8_t *w, const bf_act_row *a, int nt, int cols, float *out) {
  const int nb = cols / BF_QK, nb8 = nb - nb % 8;
  const __m128i m4 = _mm_set1_epi8(0x0f);
  __m256 acc[MAX_TOK];
  for (int t = 0; t < nt; t++) acc[t] = _mm256_setzero_ps();
  for (int b = 0; b < nb8; b += 8) {
    const uint8_t *blk = w + (size_t)b * Q4_0_BYTES;
    __m128i lo[8], hi[8];
    for (int k = 0; k < 8; k++) {
      const __m128i q = _mm_loadu_si128((const __m128i *)(blk + k * Q4_0_BYTES + 2));
      lo[k] = _mm_and_si128(q, m4);
      hi[k] = _mm_and_si128(_mm_srli_epi16(q, 4), m4);
    }
    const __m128i h = _mm_setr_epi16((short)bf_load_u16(blk), (short)bf_load_u16(blk + Q4_0_BYTES),
                                     (short)bf_load_u16(blk + 2 * Q4_0_BYTES), (short)bf_load_u16(blk + 3 * Q4_0_BYTES),
                                     (short)bf_load_u16(blk + 4 * Q4_0_BYTES), (short)bf_load_u16(blk + 5 * Q4_0_BYTES),
                                     (short)bf_load_u16(blk + 6 * Q4_0_BYTES), (short)bf_load_u16(blk + 7 * Q4_0_BYTES));
    const __m256 dw = _mm256_cvtph_ps(h);
    for (int t = 0; t < nt; t++) {
      const int8_t *xq = a[t].q + b * BF_QK;
      __m128i z[8];
      for (int k = 0; k < 8; k++) {
        const __m128i x0 = _mm_loadu_si128((const __m128i *)(xq + 32 * k));
        const __m128i x1 = _mm_loadu_si128((const __m128i *)(xq + 32 * k + 16));
        z[k] = _mm_dpbusd_epi32(_mm_dpbusd_epi32(_mm_setzero_si128(), lo[k], x0), hi[k], x1);
      }
      __m256i isum = _mm256_setr_m128i(sums4(z[0], z[1], z[2], z[3]), sums4(z[4], z[5], z[6], z[7]));
      isum = _mm256_sub_epi32(isum, _mm256_slli_epi32(_mm256_loadu_si256((const __m256i *)(a[t].sums + b)), 3));
      const __m256 dx = _mm256_loadu_ps(a[t].d + b);
      acc[t] = _mm256_add_ps(acc[t], _mm256_mul_ps(_mm256_mul_ps(dw, dx), _mm256_cvtepi32_ps(isum)));
    }
  }
  for (int t = 0; t < nt; t++) {
    __m256 lanes = acc[t];
    for (int b = nb8; b < nb; b++) {
      const uint8_t *blk = w + (size_t)b * Q4_0_BYTES;
      lanes = add_lane(lanes, b % 8, bf_scale_int(bf_load_f16(blk) * a[t].d[b], isum_q4_0(blk, a[t].q + b * BF_QK, a[t].sums[b])));
    }
    out[t] = fold8_m256(lanes);
  }
}

/* the 8 F16 scales of a group of blocks `stride` bytes apart, by one gather, in natural order */
AI __m256 gather_scales8(const uint8_t *g, __m256i offsets) {
  /* the low F16 of each gathered dword to the low 8 bytes of each 128-bit lane, then both halves together */
  const __m256i pick = _mm256_setr_epi8(0, 1, 4, 5, 8, 9, 12, 13, -1, -1, -1, -1, -1, -1, -1, -1,
                                        0, 1, 4, 5, 8, 9, 12, 13, -1, -1, -1, -1, -1, -1, -1, -1);
  const __m256i hw = _mm256_shuffle_epi8(_mm256_i32gather_epi32((const int *)g, offsets, 1), pick);
  return _mm256_cvtph_ps(_mm256_castsi256_si128(_mm256_permute4x64_epi64(hw, _MM_SHUFFLE(3, 1, 2, 0))));
}

/*
 * Q8_0, one token, with 256-bit integer work (on 512-bit vectors the shuffles of the block sums have one port, on
 * 256-bit ones two): each block is one plain 32-byte load, made unsigned with w + 128 (xor 0x80) so dpbusd takes it
 * as it is: Σ (w + 128)·x = Σ w·x + 128·Σx, and Σx per block comes with the activations. The block sums come out in
 * natural order. All integer steps are exact.
 */
static float dot_q8_0(const uint8_t *w, const bf_act_row *a, int cols) {
  const int nb = cols / BF_QK, nb8 = nb - nb % 8;
  const __m256i bias = _mm256_set1_epi8((char)0x80);
  const __m256i offs = _mm256_setr_epi32(0, Q8_0_BYTES, 2 * Q8_0_BYTES, 3 * Q8_0_BYTES, 4 * Q8_0_BYTES, 5 * Q8_0_BYTES,
                                         6 * Q8_0_BYTES, 7 * Q8_0_BYTES);
  __m256 acc = _mm256_setzero_ps();
  for (int b = 0; b < nb8; b += 8) {
    const uint8_t *g = w + (size_t)b * Q8_0_BYTES;
    const int8_t *xq = a->q + b * BF_QK;
    __m256i z[8];
    for (int k = 0; k < 8; k++) {
      const __m256i wu = _mm256_xor_si256(_mm256_loadu_si256((const __m256i *)(g + k * Q8_0_BYTES + 2)), bias);
      z[k] = _mm256_dpbusd_epi32(_mm256_setzero_si256(), wu, _mm256_loadu_si256((const __m256i *)(xq + 32 * k)));
    }
    /* 8 lanes per block → one: pairs of blocks interleaved, then quads, then the two 128-bit halves */
    __m256i a2[4], a4[2];
    for (int k = 0; k < 4; k++)
      a2[k] = _mm256_add_epi32(_mm256_unpacklo_epi32(z[2 * k], z[2 * k + 1]), _mm256_unpackhi_epi32(z[2 * k], z[2 * k + 1]));
    for (int k = 0; k < 2; k++)
      a4[k] = _mm256_add_epi32(_mm256_unpacklo_epi64(a2[2 * k], a2[2 * k + 1]), _mm256_unpackhi_epi64(a2[2 * k], a2[2 * k + 1]));
    const __m256i bsum = _mm256_add_epi32(_mm256_permute2x128_si256(a4[0], a4[1], 0x20), _mm256_permute2x128_si256(a4[0], a4[1], 0x31));
    const __m256i isum = _mm256_sub_epi32(bsum, _mm256_slli_epi32(_mm256_loadu_si256((const __m256i *)(a->sums + b)), 7));
    const __m256 dw = gather_scales8(g, offs);
    acc = _mm256_add_ps(acc, _mm256_mul_ps(_mm256_mul_ps(dw, _mm256_loadu_ps(a->d + b)), _mm256_cvtepi32_ps(isum)));
  }
  for (int b = nb8; b < nb; b++) {
    const uint8_t *blk = w + (size_t)b * Q8_0_BYTES;
    acc = add_lane(acc, b % 8, bf_scale_int(bf_load_f16(blk) * a->d[b], isum_q8_0(blk, a->q + b * BF_QK)));
  }
  return fold8_m256(acc);
}
AI __m256i ld_2x128(const void *lo, const void *hi) {
  return _mm256_inserti128_si256(_mm256_castsi128_si256(_mm_loadu_si128((const __m128i *)lo)), _mm_loadu_si128((const __m128i *)hi), 1);
}

/* [Σ z0 lane-half sums …]: z_p = [block 2p: 4 lanes | block 2p+1: 4 lanes] → 8 block sums in the order 0,2,4,6,1,3,5,7 */
AI __m256i block_sums8_y(__m256i z0, __m256i z1, __m256i z2, __m256i z3) {
  const __m256i a = _mm256_add_epi32(_mm256_unpacklo_epi32(z0, z1), _mm256_unpackhi_epi32(z0, z1));
  const __m256i b = _mm256_add_epi32(_mm256_unpacklo_epi32(z2, z3), _mm256_unpackhi_epi32(z2, z3));
  return _mm256_add_epi32(_mm256_unpacklo_epi64(a, b), _mm256_unpackhi_epi64(a, b));
}

static float dot_q4_0(const uint8_t *w, const bf_act_row *a, int cols) {
  const int nb = cols / BF_QK, nb8 = nb - nb % 8;
  const __m256i order = _mm256_setr_epi32(0, 2, 4, 6, 1, 3, 5, 7);
  const __m256i m4 = _mm256_set1_epi8(0x0f);
  __m256 acc = _mm256_setzero_ps();
  for (int b = 0; b < nb8; b += 8) {
    const uint8_t *g = w + (size_t)b * Q4_0_BYTES;
    const int8_t *xq = a->q + b * BF_QK;
    __m256i z[4];
    for (int p = 0; p < 4; p++) {
      const __m256i q = ld_2x128(g + 2 * p * Q4_0_BYTES + 2, g + (2 * p + 1) * Q4_0_BYTES + 2);
      const __m256i lo = _mm256_and_si256(q, m4), hi = _mm256_and_si256(_mm256_srli_epi16(q, 4), m4);
      const __m256i xlo = ld_2x128(xq + 64 * p, xq + 64 * p + 32), xhi = ld_2x128(xq + 64 * p + 16, xq + 64 * p + 48);
      z[p] = _mm256_dpbusd_epi32(_mm256_dpbusd_epi32(_mm256_setzero_si256(), lo, xlo), hi, xhi);
    }
    const __m256 dw = weight_scales8(g, Q4_0_BYTES);
    const __m256i xs = _mm256_permutevar8x32_epi32(_mm256_loadu_si256((const __m256i *)(a->sums + b)), order);
    const __m256i isum = _mm256_sub_epi32(block_sums8_y(z[0], z[1], z[2], z[3]), _mm256_slli_epi32(xs, 3));
    const __m256 dx = _mm256_permutevar8x32_ps(_mm256_loadu_ps(a->d + b), order);
    acc = _mm256_add_ps(acc, _mm256_mul_ps(_mm256_mul_ps(dw, dx), _mm256_cvtepi32_ps(isum)));
  }
  __m256 lanes = _mm256_permutevar8x32_ps(acc, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
  for (int b = nb8; b < nb; b++) {
    const uint8_t *blk = w + (size_t)b * Q4_0_BYTES;
    lanes = add_lane(lanes, b % 8, bf_scale_int(bf_load_f16(blk) * a->d[b], isum_q4_0(blk, a->q + b * BF_QK, a->sums[b])));
  }
  return fold8_m256(lanes);
}
/*
 * Q4_0, one token, with activations re-laid per call (bf_dot1_prep). Per group of 8 blocks the buffer holds, for
 * each block pair (2p, 2p+1), [x_2p 0..15 | x_2p+1 0..15] and [x_2p 16..31 | x_2p+1 16..31], so the low and high
 * nibbles of [q_2p | q_2p+1] meet their activations without shuffles; then d_x and 8·Σx per block, both in
 * block_sums8_y's lane order 0,2,4,6,1,3,5,7. The weight scales are one gather.
 */
typedef struct {
  const int8_t *q;
  const float *d;
  const int32_t *sums;
} prep_head;
#define PREP_HEAD 64
#define Q4P_GROUP 320 /* 256 bytes of x, 8 floats d_x, 8 int32 8·Σx */

static size_t q4_0_prep_bytes(int cols) { return PREP_HEAD + (size_t)(cols / BF_QK / 8) * Q4P_GROUP; }

static void q4_0_prep(const bf_act_row *a, int cols, void *buf) {
  prep_head *h = buf;
  h->q = a->q; h->d = a->d; h->sums = a->sums;
  const int nb8 = cols / BF_QK / 8 * 8;
  const __m256i order = _mm256_setr_epi32(0, 2, 4, 6, 1, 3, 5, 7);
  for (int b = 0; b < nb8; b += 8) {
    uint8_t *g = (uint8_t *)buf + PREP_HEAD + (size_t)(b / 8) * Q4P_GROUP;
    const int8_t *xq = a->q + b * BF_QK;
    for (int p = 0; p < 4; p++) {
      _mm256_store_si256((__m256i *)(g + 64 * p), ld_2x128(xq + 64 * p, xq + 64 * p + 32));
      _mm256_store_si256((__m256i *)(g + 64 * p + 32), ld_2x128(xq + 64 * p + 16, xq + 64 * p + 48));
    }
    _mm256_store_ps((float *)(g + 256), _mm256_permutevar8x32_ps(_mm256_loadu_ps(a->d + b), order));
    _mm256_store_si256((__m256i *)(g + 288),
                       _mm256_slli_epi32(_mm256_permutevar8x32_epi32(_mm256_loadu_si256((const __m256i *)(a->sums + b)), order), 3));
  }
}

static float q4_0_dot_prep(const uint8_t *w, const void *buf, int cols) {
  const prep_head *h = buf;
  const int nb = cols / BF_QK, nb8 = nb - nb % 8;
  const __m256i m4 = _mm256_set1_epi8(0x0f);
  const __m256i sidx = _mm256_setr_epi32(0, 2 * Q4_0_BYTES, 4 * Q4_0_BYTES, 6 * Q4_0_BYTES, Q4_0_BYTES, 3 * Q4_0_BYTES,
                                         5 * Q4_0_BYTES, 7 * Q4_0_BYTES);
  /* the low F16 of each gathered dword to the low 8 bytes of each 128-bit lane */
  const __m256i pick = _mm256_setr_epi8(0, 1, 4, 5, 8, 9, 12, 13, -1, -1, -1, -1, -1, -1, -1, -1,
                                        0, 1, 4, 5, 8, 9, 12, 13, -1, -1, -1, -1, -1, -1, -1, -1);
  __m256 acc = _mm256_setzero_ps();
  for (int b = 0; b < nb8; b += 8) {
    const uint8_t *g = w + (size_t)b * Q4_0_BYTES;
    const uint8_t *xp = (const uint8_t *)buf + PREP_HEAD + (size_t)(b / 8) * Q4P_GROUP;
    __m256i z[4];
    for (int p = 0; p < 4; p++) {
      const __m256i q = ld_2x128(g + 2 * p * Q4_0_BYTES + 2, g + (2 * p + 1) * Q4_0_BYTES + 2);
      const __m256i lo = _mm256_and_si256(q, m4), hi = _mm256_and_si256(_mm256_srli_epi16(q, 4), m4);
      z[p] = _mm256_dpbusd_epi32(_mm256_dpbusd_epi32(_mm256_setzero_si256(), lo, _mm256_load_si256((const __m256i *)(xp + 64 * p))),
                                 hi, _mm256_load_si256((const __m256i *)(xp + 64 * p + 32)));
    }
    const __m256i hw = _mm256_shuffle_epi8(_mm256_i32gather_epi32((const int *)g, sidx, 1), pick);
    const __m256 dw = _mm256_cvtph_ps(_mm256_castsi256_si128(_mm256_permute4x64_epi64(hw, _MM_SHUFFLE(3, 1, 2, 0))));
    const __m256i isum = _mm256_sub_epi32(block_sums8_y(z[0], z[1], z[2], z[3]), _mm256_load_si256((const __m256i *)(xp + 288)));
    const __m256 dx = _mm256_load_ps((const float *)(xp + 256));
    acc = _mm256_add_ps(acc, _mm256_mul_ps(_mm256_mul_ps(dw, dx), _mm256_cvtepi32_ps(isum)));
  }
  __m256 lanes = _mm256_permutevar8x32_ps(acc, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
  for (int b = nb8; b < nb; b++) {
    const uint8_t *blk = w + (size_t)b * Q4_0_BYTES;
    lanes = add_lane(lanes, b % 8, bf_scale_int(bf_load_f16(blk) * h->d[b], isum_q4_0(blk, h->q + b * BF_QK, h->sums[b])));
  }
  return fold8_m256(lanes);
}

static const bf_dot1_prep Q4_0_PREP = {q4_0_prep_bytes, q4_0_prep, q4_0_dot_prep};


/*
 * Q4_0 for small batches with 512-bit integer work, 16 blocks per step (then, if 8..15 blocks are left, one step of 8
 * blocks with two rows in the two 256-bit halves, then the scalar tail). Vector r holds the qs of blocks 4c + r in
 * its 128-bit chunks c; a 4×4 dword transpose inside each chunk gives T_k with lane L = dword k of block L, so
 * lo(T_k) and hi(T_k) hold elements 4k..4k+3 and 16+4k..16+4k+3 of every block in that block's own lane: dpbusd then
 * gives each token its 16 block sums with no per-token reduction (the weight shuffles are shared by all tokens, and
 * on 512-bit vectors a token needs half the dpbusd of a 256-bit layout). The activations are re-laid to match once
 * per call:
 * per token and step, 8 vectors X_k (lane L = dword k of block L's activations), then −8·Σx (the start of the sum)
 * and d_x per block. Lanes come out in natural block order and the float steps are dot_q4_0's: v =
 * f32(f32(d_w·d_x)·f32(isum)) into lane b % 8, in block order.
 */
#define Q4N_STEP 640 /* 8 × 64 bytes of x, 16 int32 −8·Σx, 16 floats d_x */

/* buffer: per token and 16-block step a Q4N_STEP, then (8..15 blocks left) per token one Q4N_STEP for the 8-block
 * step, the token's 8 blocks in both 256-bit halves of each vector (one half per row of a row pair) */
static size_t q4n_prep_bytes(int nt, int cols) {
  const int nb = cols / BF_QK;
  return (size_t)nt * ((size_t)(nb / 16) + (nb % 16 >= 8)) * Q4N_STEP;
}

/* one token's share of step s for n blocks from b0, in 256-bit half `half` when n = 8: vector k (at 64k), lane L
 * = dword k of block b0 + L's activations; then −bias·Σx (at 512; bias 8 for Q4_0, 128 for Q8_0) and d_x (at 576)
 * per block */
static void q4n_relay(const bf_act_row *a, int b0, int n, uint8_t *s, int half, int32_t bias) {
  int32_t *nx = (int32_t *)(s + 512) + 8 * half;
  float *dx = (float *)(s + 576) + 8 * half;
  for (int L = 0; L < n; L++) {
    for (int k = 0; k < 8; k++) memcpy(s + 64 * k + 32 * half + 4 * L, a->q + (size_t)(b0 + L) * BF_QK + 4 * k, 4);
    nx[L] = -bias * a->sums[b0 + L];
    dx[L] = a->d[b0 + L];
  }
}

static void qn_prep(const bf_act_row *a, int nt, int cols, void *buf, int32_t bias) {
  const int nb = cols / BF_QK, n16 = nb / 16;
  uint8_t *d = buf;
  for (int t = 0; t < nt; t++)
    for (int g = 0; g < n16; g++) q4n_relay(&a[t], 16 * g, 16, d + ((size_t)t * n16 + g) * Q4N_STEP, 0, bias);
  if (nb % 16 >= 8) {
    uint8_t *p = d + (size_t)nt * n16 * Q4N_STEP;
    for (int t = 0; t < nt; t++)
      for (int half = 0; half < 2; half++) q4n_relay(&a[t], 16 * n16, 8, p + (size_t)t * Q4N_STEP, half, bias);
  }
}
static void q4n_prep(const bf_act_row *a, int nt, int cols, void *buf) { qn_prep(a, nt, cols, buf, 8); }
static void q8n_prep(const bf_act_row *a, int nt, int cols, void *buf) { qn_prep(a, nt, cols, buf, 128); }

/* 4×4 dword transpose inside each 128-bit chunk */
AI void transpose4x4_epi32_x4(__m512i r[4]) {
  const __m512i t0 = _mm512_unpacklo_epi32(r[0], r[1]), t1 = _mm512_unpackhi_epi32(r[0], r[1]);
  const __m512i t2 = _mm512_unpacklo_epi32(r[2], r[3]), t3 = _mm512_unpackhi_epi32(r[2], r[3]);
  r[0] = _mm512_unpacklo_epi64(t0, t2);
  r[1] = _mm512_unpackhi_epi64(t0, t2);
  r[2] = _mm512_unpacklo_epi64(t1, t3);
  r[3] = _mm512_unpackhi_epi64(t1, t3);
}

/* fold8_m256 of n ≤ 4 tokens at once (chunk = token): l += l+4, l += l+2, lane 0 + lane 1 */
AI void fold8_x4(const __m256 *lanes, int n, float *out) {
  const __m256 z = _mm256_setzero_ps();
  const __m512 a = join256_ps(lanes[0], n > 1 ? lanes[1] : z), b = join256_ps(n > 2 ? lanes[2] : z, n > 3 ? lanes[3] : z);
  const __m512 s4 = _mm512_add_ps(_mm512_shuffle_f32x4(a, b, _MM_SHUFFLE(2, 0, 2, 0)), _mm512_shuffle_f32x4(a, b, _MM_SHUFFLE(3, 1, 3, 1)));
  const __m512 s2 = _mm512_add_ps(s4, _mm512_permute_ps(s4, _MM_SHUFFLE(3, 2, 3, 2)));
  const __m512 s1 = _mm512_add_ps(s2, _mm512_permute_ps(s2, _MM_SHUFFLE(1, 1, 1, 1)));
  float r[4];
  _mm_storeu_ps(r, _mm512_castps512_ps128(_mm512_permutexvar_ps(_mm512_setr_epi32(0, 4, 8, 12, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0), s1)));
  for (int k = 0; k < n; k++) out[k] = r[k];
}

/* tr[r] = qs of blocks 4c + r in chunk c → wv[k] / wv[4 + k]: lo / hi nibbles of dword k of block L in lane L */
AI void q4n_weights(__m512i tr[4], __m512i m4, __m512i wv[8]) {
  transpose4x4_epi32_x4(tr);
  for (int k = 0; k < 4; k++) {
    wv[k] = _mm512_and_si512(tr[k], m4);
    wv[4 + k] = _mm512_and_si512(_mm512_srli_epi16(tr[k], 4), m4);
  }
}

/* Q8_0: lo[i] / hi[i] = bytes 0..15 / 16..31 of blocks 4c + i in chunk c → wv[k] / wv[4 + k] = dword k / 4 + k
 * of block L in lane L, made unsigned (w + 128, xor 0x80) */
AI void q8n_weights(__m512i lo[4], __m512i hi[4], __m512i wv[8]) {
  const __m512i bias = _mm512_set1_epi8((char)0x80);
  transpose4x4_epi32_x4(lo);
  transpose4x4_epi32_x4(hi);
  for (int k = 0; k < 4; k++) {
    wv[k] = _mm512_xor_si512(lo[k], bias);
    wv[4 + k] = _mm512_xor_si512(hi[k], bias);
  }
}

/* Σ over the 8 vectors, from −8·Σx (Q8_0: −128·Σx): the exact isum of every lane, for R rows at once; each
 * activation vector is loaded once and serves every row from a register (a 512-bit dpbusd with a memory operand
 * issues at ~2/3 the rate of one from registers here) */
AI void q4n_isums(const __m512i wv[][8], int R, const uint8_t *s, __m512i *acc) {
  const __m512i nx = _mm512_load_si512((const void *)(s + 512));
  for (int r = 0; r < R; r++) acc[r] = nx;
  for (int k = 0; k < 8; k++) {
    const __m512i x = _mm512_load_si512((const void *)(s + 64 * k));
    for (int r = 0; r < R; r++) acc[r] = _mm512_dpbusd_epi32(acc[r], wv[r][k], x);
  }
}

/* f32(f32(d_w·d_x)·f32(isum)) */
AI __m512 q4n_value(__m512i isum, const uint8_t *s, __m512 dw) {
  return _mm512_mul_ps(_mm512_mul_ps(dw, _mm512_load_ps((const float *)(s + 576))), _mm512_cvtepi32_ps(isum));
}

/* R (1 or 2) rows, w and w + rb: out[r·nt + t]. Each row's lanes get exactly the one-row operations. q8: Q8_0
 * weights (q8n: the same steps, with 8 weight vectors per step loaded as two halves of each block and biased by
 * 128 instead of unpacked from nibbles; the exact isum of dot_q8_0, Σ (w + 128)·x − 128·Σx). */
AI void q4n(const uint8_t *w, size_t rb, int R, const bf_act_row *a, const void *buf, int nt, int cols, int q8, float *out) {
  const int bytes = q8 ? Q8_0_BYTES : Q4_0_BYTES;
  const int nb = cols / BF_QK, n16 = nb / 16, has8 = nb % 16 >= 8, nb8 = 16 * n16 + 8 * has8;
  const uint8_t *xs = buf;
  __m256 lanes[2][MAX_TOK];
  for (int r = 0; r < R; r++)
    for (int t = 0; t < nt; t++) lanes[r][t] = _mm256_setzero_ps();
  const __m512i m4 = _mm512_set1_epi8(0x0f);
  const __m512i soff = _mm512_mullo_epi32(_mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15), _mm512_set1_epi32(bytes));
  for (int g = 0; g < n16; g++) {
    __m512i wv[2][8];
    __m512 dw[2];
    for (int r = 0; r < R; r++) {
      const uint8_t *gb = w + r * rb + (size_t)g * 16 * bytes;
      __m512i tr[8];
      for (int i = 0; i < (q8 ? 8 : 4); i++) {
        const uint8_t *q = gb + (i % 4) * bytes + 2 + 16 * (i / 4);
        __m512i z = _mm512_castsi128_si512(_mm_loadu_si128((const __m128i *)q));
        z = _mm512_inserti32x4(z, _mm_loadu_si128((const __m128i *)(q + 4 * bytes)), 1);
        z = _mm512_inserti32x4(z, _mm_loadu_si128((const __m128i *)(q + 8 * bytes)), 2);
        tr[i] = _mm512_inserti32x4(z, _mm_loadu_si128((const __m128i *)(q + 12 * bytes)), 3);
      }
      if (q8) q8n_weights(tr, tr + 4, wv[r]);
      else q4n_weights(tr, m4, wv[r]);
      /* Q8_0 prefetches its rows itself, spread over the steps (bf_dotn.self_prefetch) */
      if (q8)
        for (int o = 0; o < 16 * bytes; o += 64) _mm_prefetch((const char *)gb + BF_DOTN_PREFETCH_BYTES + o, _MM_HINT_T1);
      /* the 16 F16 scales: the low half of each gathered dword */
      dw[r] = _mm512_cvtph_ps(_mm512_cvtepi32_epi16(_mm512_i32gather_epi32(soff, (const void *)gb, 1)));
    }
    for (int t = 0; t < nt; t++) {
      const uint8_t *s = xs + ((size_t)t * n16 + g) * Q4N_STEP;
      __m512i isum[2];
      q4n_isums((const __m512i(*)[8])wv, R, s, isum);
      for (int r = 0; r < R; r++) {
        const __m512 v = q4n_value(isum[r], s, dw[r]);
        /* blocks 16g .. +7, then 16g + 8 .. +15, into lanes 0..7 */
        lanes[r][t] = _mm256_add_ps(_mm256_add_ps(lanes[r][t], _mm512_castps512_ps256(v)), hi256_ps(v));
      }
    }
  }
  if (q8)
    for (int r = 0; r < R; r++)
      for (int o = 0; o < (nb - 16 * n16) * bytes; o += 64)
        _mm_prefetch((const char *)w + r * rb + (size_t)n16 * 16 * bytes + BF_DOTN_PREFETCH_BYTES + o, _MM_HINT_T1);
  if (has8) {
    /* 8 blocks of row 0 in the low 256-bit half and of row 1 (row 0 again when R = 1) in the high half, against one
     * token in both halves: the transposes, nibble masks and the scale gather serve both rows */
    const uint8_t *g0 = w + (size_t)n16 * 16 * bytes, *g1 = g0 + (R > 1 ? rb : 0);
    __m512i tr[8], wv[1][8];
    for (int i = 0; i < (q8 ? 8 : 4); i++) {
      const int o = (i % 4) * bytes + 2 + 16 * (i / 4);
      const __m256i y0 = ld_2x128(g0 + o, g0 + 4 * bytes + o);
      const __m256i y1 = ld_2x128(g1 + o, g1 + 4 * bytes + o);
      tr[i] = _mm512_inserti64x4(_mm512_castsi256_si512(y0), y1, 1);
    }
    if (q8) q8n_weights(tr, tr + 4, wv[0]);
    else q4n_weights(tr, m4, wv[0]);
    /* offsets 18L of both rows' blocks; the low half of each gathered dword */
    const __m512i off = _mm512_mask_add_epi32(soff, (__mmask16)0xff00, _mm512_permutexvar_epi32(_mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 0, 1, 2, 3, 4, 5, 6, 7), soff),
                                              _mm512_set1_epi32((int)(g1 - g0)));
    const __m512 dw = _mm512_cvtph_ps(_mm512_cvtepi32_epi16(_mm512_i32gather_epi32(off, (const void *)g0, 1)));
    for (int t = 0; t < nt; t++) {
      const uint8_t *s = xs + ((size_t)nt * n16 + t) * Q4N_STEP;
      __m512i isum;
      q4n_isums((const __m512i(*)[8])wv, 1, s, &isum);
      const __m512 v = q4n_value(isum, s, dw);
      lanes[0][t] = _mm256_add_ps(lanes[0][t], _mm512_castps512_ps256(v));
      if (R > 1) lanes[1][t] = _mm256_add_ps(lanes[1][t], hi256_ps(v));
    }
  }
  for (int r = 0; r < R; r++) {
    for (int t = 0; t < nt; t++)
      for (int b = nb8; b < nb; b++) {
        const uint8_t *blk = w + r * rb + (size_t)b * bytes;
        const int32_t is = q8 ? isum_q8_0(blk, a[t].q + b * BF_QK) : isum_q4_0(blk, a[t].q + b * BF_QK, a[t].sums[b]);
        lanes[r][t] = add_lane(lanes[r][t], b % 8, bf_scale_int(bf_load_f16(blk) * a[t].d[b], is));
      }
    for (int t = 0; t < nt; t += 4) fold8_x4(lanes[r] + t, nt - t < 4 ? nt - t : 4, out + r * nt + t);
  }
}
AI void dotn_q4_0_k(const uint8_t *w, const bf_act_row *a, const void *buf, int nt, int cols, float *out) { q4n(w, 0, 1, a, buf, nt, cols, 0, out); }
AI void dotn2_q4_0_k(const uint8_t *w, size_t rb, const bf_act_row *a, const void *buf, int nt, int cols, float *out) { q4n(w, rb, 2, a, buf, nt, cols, 0, out); }
AI void dotn_q8n_k(const uint8_t *w, const bf_act_row *a, const void *buf, int nt, int cols, float *out) { q4n(w, 0, 1, a, buf, nt, cols, 1, out); }
AI void dotn2_q8n_k(const uint8_t *w, size_t rb, const bf_act_row *a, const void *buf, int nt, int cols, float *out) { q4n(w, rb, 2, a, buf, nt, cols, 1, out); }

/* nt as a constant, so each case keeps its accumulators in registers */
#define DOTN_CASES(kern)                                       \
  switch (nt) {                                                \
    case 2: kern(w, a, buf, 2, cols, out); break;              \
    case 3: kern(w, a, buf, 3, cols, out); break;              \
    case 4: kern(w, a, buf, 4, cols, out); break;              \
    case 5: kern(w, a, buf, 5, cols, out); break;              \
    case 6: kern(w, a, buf, 6, cols, out); break;              \
    default: kern(w, a, buf, BF_DOTN_MAX, cols, out); break;   \
  }
#define DOTN2_CASES(kern)                                      \
  switch (nt) {                                                \
    case 2: kern(w, rb, a, buf, 2, cols, out); break;          \
    case 3: kern(w, rb, a, buf, 3, cols, out); break;          \
    case 4: kern(w, rb, a, buf, 4, cols, out); break;          \
    case 5: kern(w, rb, a, buf, 5, cols, out); break;          \
    case 6: kern(w, rb, a, buf, 6, cols, out); break;          \
    default: kern(w, rb, a, buf, BF_DOTN_MAX, cols, out); break; \
  }
static void dotn_q4_0(const uint8_t *w, const bf_act_row *a, const void *buf, int nt, int cols, float *out) { DOTN_CASES(dotn_q4_0_k) }
static void dotn2_q4_0(const uint8_t *w, size_t rb, const bf_act_row *a, const void *buf, int nt, int cols, float *out) { DOTN2_CASES(dotn2_q4_0_k) }
static void dotn_q8n(const uint8_t *w, const bf_act_row *a, const void *buf, int nt, int cols, float *out) { DOTN_CASES(dotn_q8n_k) }
static void dotn2_q8n(const uint8_t *w, size_t rb, const bf_act_row *a, const void *buf, int nt, int cols, float *out) { DOTN2_CASES(dotn2_q8n_k) }
static const bf_dotn Q8_0_DOTN = {q4n_prep_bytes, q8n_prep, dotn_q8n, dotn2_q8n, 1};
static const bf_dotn Q4_0_DOTN = {q4n_prep_bytes, q4n_prep, dotn_q4_0, dotn2_q4_0, 0};

static void dot4_q8_0(const uint8_t *w, const bf_act_row *a, int cols, float *out) { q8_0_x512(w, a, 4, cols, out); }
static void dot4_q4_0(const uint8_t *w, const bf_act_row *a, int cols, float *out) { q4_0_x128(w, a, 4, cols, out); }

/* ---------------- K-quants: one super-block of 256 per step ---------------- */

/* vpermw indexes: [2i ×16, 2i+1 ×16] picks chunk i's two Q4_K/Q5_K sub-block scales; [j ×8 … j+3 ×8] Q6_K's four */
#define RUN16(j) j, j, j, j, j, j, j, j, j, j, j, j, j, j, j, j
#define RUN8(j) j, j, j, j, j, j, j, j
static const int16_t K4_SCALE_IDX[4][32] = {
    {RUN16(0), RUN16(1)}, {RUN16(2), RUN16(3)}, {RUN16(4), RUN16(5)}, {RUN16(6), RUN16(7)}};
static const int16_t Q6_SCALE_IDX[4][32] = {{RUN8(0), RUN8(1), RUN8(2), RUN8(3)},
                                            {RUN8(4), RUN8(5), RUN8(6), RUN8(7)},
                                            {RUN8(8), RUN8(9), RUN8(10), RUN8(11)},
                                            {RUN8(12), RUN8(13), RUN8(14), RUN8(15)}};
AI __m512i load_idx(const int16_t *idx) { return _mm512_loadu_si512((const void *)idx); }

/* Σ of a·b over 16 int32 lanes, where each lane of a is an int16 in its low half with a zero high half and each
 * lane of b fits in int16 (sign-extended): madd_epi16 gives exactly a·b per lane, cheaper than mullo_epi32. */
AI int32_t dot16_small(__m512i a_lowhalf, __m512i b) { return _mm512_reduce_add_epi32(_mm512_madd_epi16(a_lowhalf, b)); }

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

AI void k4_x512(const uint8_t *w, const bf_act_row *a, int nt, int cols, int has_high, float *out) {
  const size_t bytes = has_high ? Q5_K_BYTES : Q4_K_BYTES;
  const int nb = cols / BF_QK_K;
  __m256 lanes[MAX_TOK];
  for (int t = 0; t < nt; t++) lanes[t] = _mm256_setzero_ps();
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
    const float dw = bf_load_f16(blk), dmin = bf_load_f16(blk + 2);
    const uint8_t *qs = blk + (has_high ? 48 : 16);
    __m512i qh2 = _mm512_setzero_si512();
    if (has_high) {
      const __m256i qh = _mm256_loadu_si256((const __m256i *)(blk + 16));
      qh2 = _mm512_inserti64x4(_mm512_castsi256_si512(qh), _mm256_srli_epi16(qh, 1), 1);
    }
    __m512i q[4], s[4];
    for (int i = 0; i < 4; i++) {
      q[i] = k4_chunk(qs, i, has_high, qh2);
      s[i] = _mm512_permutexvar_epi16(load_idx(K4_SCALE_IDX[i]), sc16);
    }
    for (int t = 0; t < nt; t++) {
      const int8_t *xq = a[t].q + b * BF_QK_K;
      /* two accumulators halve the dependency chain (integer sums: any order is exact) */
      __m512i acc[2] = {_mm512_setzero_si512(), _mm512_setzero_si512()};
      for (int i = 0; i < 4; i++) {
        /* q ≤ 31, |x| ≤ 127: the int16 pair sums of maddubs cannot saturate */
        const __m512i p = _mm512_maddubs_epi16(q[i], _mm512_loadu_si512((const void *)(xq + 64 * i)));
        acc[i & 1] = _mm512_dpwssd_epi32(acc[i & 1], p, s[i]);
      }
      const int32_t sumi = _mm512_reduce_add_epi32(_mm512_add_epi32(acc[0], acc[1]));
      const int32_t summins = dot16_small(m32, _mm512_loadu_si512((const void *)(a[t].sums + b * 16)));
      const float dx = a[t].d[b];
      lanes[t] = add_lane(lanes[t], b % 8, bf_scale_int(dw * dx, sumi) - bf_scale_int(dmin * dx, summins));
    }
  }
  for (int t = 0; t < nt; t++) out[t] = fold8_m256(lanes[t]);
}

/*
 * Q4_K / Q5_K with 256-bit integer work (measured ~10% faster than k4_x512 for one token, slower for four,
 * so each form serves the case it wins): each 32-byte chunk of quants splits into the two sub-blocks' nibbles
 * in place (no lane-crossing inserts), and each sub-block's scale is a plain broadcast.
 */
AI void k4_x256(const uint8_t *w, const bf_act_row *a, int nt, int cols, int has_high, float *out) {
  const size_t bytes = has_high ? Q5_K_BYTES : Q4_K_BYTES;
  const int nb = cols / BF_QK_K;
  const __m256i m4 = _mm256_set1_epi8(0x0f), one = _mm256_set1_epi8(1);
  __m256 lanes[MAX_TOK];
  for (int t = 0; t < nt; t++) lanes[t] = _mm256_setzero_ps();
  for (int b = 0; b < nb; b++) {
    const uint8_t *blk = w + (size_t)b * bytes;
    uint8_t sc[8], m[8];
    k4_scales(blk + 4, sc, m);
    const float dw = bf_load_f16(blk), dmin = bf_load_f16(blk + 2);
    const uint8_t *qs = blk + (has_high ? 48 : 16);
    const __m256i qh = has_high ? _mm256_loadu_si256((const __m256i *)(blk + 16)) : _mm256_setzero_si256();
    __m256i q[8];
    for (int i = 0; i < 4; i++) {
      const __m256i y = _mm256_loadu_si256((const __m256i *)(qs + 32 * i));
      q[2 * i] = _mm256_and_si256(y, m4);
      q[2 * i + 1] = _mm256_and_si256(_mm256_srli_epi16(y, 4), m4);
      if (has_high) {
        /* the fifth bit of sub-block j is bit j of each qh byte; isolate it, then move it to bit 4 */
        q[2 * i] = _mm256_or_si256(q[2 * i], _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 2 * i), one), 4));
        q[2 * i + 1] = _mm256_or_si256(q[2 * i + 1], _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 2 * i + 1), one), 4));
      }
    }
    for (int t = 0; t < nt; t++) {
      const int8_t *xq = a[t].q + b * BF_QK_K;
      __m256i acc[2] = {_mm256_setzero_si256(), _mm256_setzero_si256()};
      for (int j = 0; j < 8; j++) {
        /* q ≤ 31, |x| ≤ 127: the int16 pair sums of maddubs cannot saturate */
        const __m256i p = _mm256_maddubs_epi16(q[j], _mm256_loadu_si256((const __m256i *)(xq + 32 * j)));
        acc[j & 1] = _mm256_dpwssd_epi32(acc[j & 1], p, _mm256_set1_epi16(sc[j]));
      }
      const __m256i s = _mm256_add_epi32(acc[0], acc[1]);
      __m128i r = _mm_add_epi32(_mm256_castsi256_si128(s), _mm256_extracti128_si256(s, 1));
      r = _mm_add_epi32(r, _mm_shuffle_epi32(r, 0x4e));
      r = _mm_add_epi32(r, _mm_shuffle_epi32(r, 0xb1));
      const int32_t sumi = _mm_cvtsi128_si32(r);
      const int32_t summins = k4_summins(m, a[t].sums + b * 16);
      const float dx = a[t].d[b];
      lanes[t] = add_lane(lanes[t], b % 8, bf_scale_int(dw * dx, sumi) - bf_scale_int(dmin * dx, summins));
    }
  }
  for (int t = 0; t < nt; t++) out[t] = fold8_m256(lanes[t]);
}

static float dot_q4_k(const uint8_t *w, const bf_act_row *a, int cols) { float r; k4_x256(w, a, 1, cols, 0, &r); return r; }
static float dot_q5_k(const uint8_t *w, const bf_act_row *a, int cols) { float r; k4_x256(w, a, 1, cols, 1, &r); return r; }
static void dot4_q4_k(const uint8_t *w, const bf_act_row *a, int cols, float *out) { k4_x512(w, a, 4, cols, 0, out); }
static void dot4_q5_k(const uint8_t *w, const bf_act_row *a, int cols, float *out) { k4_x512(w, a, 4, cols, 1, out); }

/*
 * Q4_K / Q5_K, one token, with per-call activations (bf_dot1_prep): for each super-block the buffer holds the 8
 * pair sums bsums[2j] + bsums[2j+1] as int16 (|·| ≤ 2·16·127) and d_x, so Σ m_j·(pair sum) is one madd. The 8
 * sub-block scales are broadcast to int16 lanes with in-lane byte shuffles of one 64-bit broadcast, and both integer
 * sums finish in one reduction. The float steps run in two vector lanes: [d_w·d_x, dmin_w·d_x]·[f32(sumi),
 * f32(summins)], then lane 0 − lane 1, the same IEEE operations as k4_value.
 */
#define K4P_SB 32 /* per super-block: 8 int16 pair sums, then d_x */

static size_t k4_prep_bytes(int cols) { return PREP_HEAD + (size_t)(cols / BF_QK_K) * K4P_SB; }

static void k4_prep(const bf_act_row *a, int cols, void *buf) {
  prep_head *h = buf;
  h->q = a->q; h->d = a->d; h->sums = a->sums;
  for (int b = 0; b < cols / BF_QK_K; b++) {
    uint8_t *sb = (uint8_t *)buf + PREP_HEAD + (size_t)b * K4P_SB;
    const __m512i bs = _mm512_loadu_si512((const void *)(a->sums + 16 * b));
    /* pair sums: add each odd int32 to its even neighbour, then keep the even ones as int16 */
    const __m512i pairs = _mm512_add_epi32(bs, _mm512_srli_epi64(bs, 32));
    _mm_store_si128((__m128i *)sb, _mm512_cvtepi64_epi16(pairs));
    memcpy(sb + 16, a->d + b, 4);
  }
}

/* _mm256_shuffle_epi8 indexes: scale byte j of a 64-bit broadcast, zero-extended to 16 int16 lanes */
#define ZX16(j) j, -1, j, -1, j, -1, j, -1, j, -1, j, -1, j, -1, j, -1
static const int8_t K4_BCAST_IDX[8][32] = {{ZX16(0), ZX16(0)}, {ZX16(1), ZX16(1)}, {ZX16(2), ZX16(2)}, {ZX16(3), ZX16(3)},
                                           {ZX16(4), ZX16(4)}, {ZX16(5), ZX16(5)}, {ZX16(6), ZX16(6)}, {ZX16(7), ZX16(7)}};

AI float k4_dot_prep(const uint8_t *w, const void *buf, int cols, int has_high) {
  const prep_head *h = buf;
  const size_t bytes = has_high ? Q5_K_BYTES : Q4_K_BYTES;
  const int nb = cols / BF_QK_K;
  const __m256i m4 = _mm256_set1_epi8(0x0f), one = _mm256_set1_epi8(1);
  __m256 lanes = _mm256_setzero_ps();
  for (int b = 0; b < nb; b++) {
    const uint8_t *blk = w + (size_t)b * bytes;
    const uint8_t *sb = (const uint8_t *)buf + PREP_HEAD + (size_t)b * K4P_SB;
    /* k4_scales on 32-bit words, packed as 8 bytes each */
    uint32_t w0, w1, w2;
    memcpy(&w0, blk + 4, 4);
    memcpy(&w1, blk + 8, 4);
    memcpy(&w2, blk + 12, 4);
    const uint64_t sc8 = (uint64_t)(w0 & 0x3f3f3f3fu) | (uint64_t)((w2 & 0x0f0f0f0fu) | (((w0 >> 6) & 0x03030303u) << 4)) << 32;
    const uint64_t m8 = (uint64_t)(w1 & 0x3f3f3f3fu) | (uint64_t)(((w2 >> 4) & 0x0f0f0f0fu) | (((w1 >> 6) & 0x03030303u) << 4)) << 32;
    const __m256i scb = _mm256_set1_epi64x((long long)sc8);
    const __m128i mins = _mm_madd_epi16(_mm_cvtepu8_epi16(_mm_cvtsi64_si128((long long)m8)), _mm_load_si128((const __m128i *)sb));
    const uint8_t *qs = blk + (has_high ? 48 : 16);
    const __m256i qh = has_high ? _mm256_loadu_si256((const __m256i *)(blk + 16)) : _mm256_setzero_si256();
    const int8_t *xq = h->q + b * BF_QK_K;
    __m256i acc[2] = {_mm256_setzero_si256(), _mm256_setzero_si256()};
    for (int i = 0; i < 4; i++) {
      const __m256i y = _mm256_loadu_si256((const __m256i *)(qs + 32 * i));
      __m256i lo = _mm256_and_si256(y, m4), hi = _mm256_and_si256(_mm256_srli_epi16(y, 4), m4);
      if (has_high) {
        lo = _mm256_or_si256(lo, _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 2 * i), one), 4));
        hi = _mm256_or_si256(hi, _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 2 * i + 1), one), 4));
      }
      /* q ≤ 31, |x| ≤ 127: the int16 pair sums of maddubs cannot saturate */
      const __m256i p0 = _mm256_maddubs_epi16(lo, _mm256_loadu_si256((const __m256i *)(xq + 64 * i)));
      const __m256i p1 = _mm256_maddubs_epi16(hi, _mm256_loadu_si256((const __m256i *)(xq + 64 * i + 32)));
      acc[0] = _mm256_dpwssd_epi32(acc[0], p0, _mm256_shuffle_epi8(scb, _mm256_loadu_si256((const __m256i *)K4_BCAST_IDX[2 * i])));
      acc[1] = _mm256_dpwssd_epi32(acc[1], p1, _mm256_shuffle_epi8(scb, _mm256_loadu_si256((const __m256i *)K4_BCAST_IDX[2 * i + 1])));
    }
    const __m256i s8 = _mm256_add_epi32(acc[0], acc[1]);
    const __m128i s4 = _mm_add_epi32(_mm256_castsi256_si128(s8), _mm256_extracti128_si256(s8, 1));
    /* [s0+s2, m0+m2, s1+s3, m1+m3] → lanes 0, 1 = [sumi, summins] (integer adds: exact in any order) */
    const __m128i c = _mm_add_epi32(_mm_unpacklo_epi32(s4, mins), _mm_unpackhi_epi32(s4, mins));
    const __m128i sums = _mm_add_epi32(c, _mm_unpackhi_epi64(c, c));
    uint32_t dd;
    memcpy(&dd, blk, 4);
    const __m128 dws = _mm_mul_ps(_mm_cvtph_ps(_mm_cvtsi32_si128((int)dd)), _mm_broadcast_ss((const float *)(sb + 16)));
    const __m128 pr = _mm_mul_ps(dws, _mm_cvtepi32_ps(sums));
    const __m128 v = _mm_sub_ss(pr, _mm_movehdup_ps(pr));
    lanes = _mm256_mask_add_ps(lanes, (__mmask8)(1u << (b % 8)), lanes, _mm256_broadcastss_ps(v));
  }
  return fold8_m256(lanes);
}

static float q4_k_dot_prep(const uint8_t *w, const void *buf, int cols) { return k4_dot_prep(w, buf, cols, 0); }
static float q5_k_dot_prep(const uint8_t *w, const void *buf, int cols) { return k4_dot_prep(w, buf, cols, 1); }
static const bf_dot1_prep Q4_K_PREP = {k4_prep_bytes, k4_prep, q4_k_dot_prep};
static const bf_dot1_prep Q5_K_PREP = {k4_prep_bytes, k4_prep, q5_k_dot_prep};

AI void q6_k(const uint8_t *w, const bf_act_row *a, int nt, int cols, float *out) {
  const int nb = cols / BF_QK_K;
  const __m512i m4 = _mm512_set1_epi8(0x0f), m2 = _mm512_set1_epi8(3);
  __m256 lanes[MAX_TOK];
  for (int t = 0; t < nt; t++) lanes[t] = _mm256_setzero_ps();
  for (int b = 0; b < nb; b++) {
    const uint8_t *blk = w + (size_t)b * Q6_K_BYTES;
    const __m128i sc8 = _mm_loadu_si128((const __m128i *)(blk + 192));
    const __m512i sc16 = _mm512_cvtepi8_epi16(_mm256_zextsi128_si256(sc8));
    /* scales as int16 in the low half of each int32 lane (high half zero) for madd against the int32 bsums */
    const __m512i sc32 = _mm512_and_si512(_mm512_cvtepi8_epi32(sc8), _mm512_set1_epi32(0xffff));
    const float d6 = bf_load_f16(blk + 208);
    __m512i q[4], s[4];
    for (int n = 0; n < 2; n++) {
      const __m512i l = _mm512_loadu_si512((const void *)(blk + 64 * n)); /* [ql 0..31 | ql 32..63] of this half */
      const __m256i h256 = _mm256_loadu_si256((const __m256i *)(blk + 128 + 32 * n));
      const __m512i h = _mm512_inserti64x4(_mm512_castsi256_si512(h256), _mm256_srli_epi16(h256, 2), 1);
      /* elements 0..63 of the half: low nibbles + bits 0-1 / 2-3; elements 64..127: high nibbles + bits 4-5 / 6-7 */
      q[2 * n] = _mm512_or_si512(_mm512_and_si512(l, m4), _mm512_slli_epi16(_mm512_and_si512(h, m2), 4));
      q[2 * n + 1] = _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi16(l, 4), m4),
                                     _mm512_slli_epi16(_mm512_and_si512(_mm512_srli_epi16(h, 4), m2), 4));
      s[2 * n] = _mm512_permutexvar_epi16(load_idx(Q6_SCALE_IDX[2 * n]), sc16);
      s[2 * n + 1] = _mm512_permutexvar_epi16(load_idx(Q6_SCALE_IDX[2 * n + 1]), sc16);
    }
    for (int t = 0; t < nt; t++) {
      const int8_t *xq = a[t].q + b * BF_QK_K;
      /* start from −32·sc_j·bsums_j so one reduction gives Σ sc_j·Σ (q − 32)·x */
      const __m512i off = _mm512_madd_epi16(sc32, _mm512_loadu_si512((const void *)(a[t].sums + b * 16)));
      __m512i acc[2] = {_mm512_sub_epi32(_mm512_setzero_si512(), _mm512_slli_epi32(off, 5)), _mm512_setzero_si512()};
      for (int i = 0; i < 4; i++) {
        /* q ≤ 63, |x| ≤ 127: maddubs pairs stay below 2^15 */
        const __m512i p = _mm512_maddubs_epi16(q[i], _mm512_loadu_si512((const void *)(xq + 64 * i)));
        acc[i & 1] = _mm512_dpwssd_epi32(acc[i & 1], p, s[i]);
      }
      const int32_t sumi = _mm512_reduce_add_epi32(_mm512_add_epi32(acc[0], acc[1]));
      lanes[t] = add_lane(lanes[t], b % 8, bf_scale_int(d6 * a[t].d[b], sumi));
    }
  }
  for (int t = 0; t < nt; t++) out[t] = fold8_m256(lanes[t]);
}

/*
 * Q6_K, one token, with 256-bit integer work and per-call activations (bf_dot1_prep): the buffer holds each
 * super-block's 16 bsums as int16 (|·| ≤ 16·127), even sub-blocks first, then odd ones, and d_x. The 16 int8 scales
 * are widened once in the same even/odd order, so a 32-element chunk (sub-blocks 2j, 2j+1 in its two 128-bit halves)
 * gets its scale vector by one in-lane byte shuffle, and Σ sc_j·bsums_j is one madd.
 */
#define Q6P_SB 64 /* per super-block: 16 int16 bsums (even, odd), then d_x */

static size_t q6_prep_bytes(int cols) { return PREP_HEAD + (size_t)(cols / BF_QK_K) * Q6P_SB; }

static void q6_prep(const bf_act_row *a, int cols, void *buf) {
  prep_head *h = buf;
  h->q = a->q; h->d = a->d; h->sums = a->sums;
  const __m512i eo = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 1, 3, 5, 7, 9, 11, 13, 15);
  for (int b = 0; b < cols / BF_QK_K; b++) {
    uint8_t *sb = (uint8_t *)buf + PREP_HEAD + (size_t)b * Q6P_SB;
    const __m512i bs = _mm512_permutexvar_epi32(eo, _mm512_loadu_si512((const void *)(a->sums + 16 * b)));
    _mm256_store_si256((__m256i *)sb, _mm512_cvtepi32_epi16(bs));
    memcpy(sb + 32, a->d + b, 4);
  }
}

/* _mm256_shuffle_epi8 indexes: int16 word j of each 128-bit lane, repeated */
#define W16(j) 2 * j, 2 * j + 1, 2 * j, 2 * j + 1, 2 * j, 2 * j + 1, 2 * j, 2 * j + 1, 2 * j, 2 * j + 1, 2 * j, 2 * j + 1, \
               2 * j, 2 * j + 1, 2 * j, 2 * j + 1
static const int8_t WORD_BCAST_IDX[8][32] = {{W16(0), W16(0)}, {W16(1), W16(1)}, {W16(2), W16(2)}, {W16(3), W16(3)},
                                             {W16(4), W16(4)}, {W16(5), W16(5)}, {W16(6), W16(6)}, {W16(7), W16(7)}};

static float q6_k_dot_prep(const uint8_t *w, const void *buf, int cols) {
  const prep_head *h = buf;
  const int nb = cols / BF_QK_K;
  const __m256i m4 = _mm256_set1_epi8(0x0f), m30 = _mm256_set1_epi8(0x30);
  const __m128i eo8 = _mm_setr_epi8(0, 2, 4, 6, 8, 10, 12, 14, 1, 3, 5, 7, 9, 11, 13, 15);
  __m256 lanes = _mm256_setzero_ps();
  for (int b = 0; b < nb; b++) {
    const uint8_t *blk = w + (size_t)b * Q6_K_BYTES;
    const uint8_t *sb = (const uint8_t *)buf + PREP_HEAD + (size_t)b * Q6P_SB;
    /* scales as int16: lane 0 the even sub-blocks, lane 1 the odd ones */
    const __m256i sc = _mm256_cvtepi8_epi16(_mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)(blk + 192)), eo8));
    /* start from −32·Σ sc_j·bsums_j so one reduction gives Σ sc_j·Σ (q − 32)·x */
    const __m256i off = _mm256_madd_epi16(sc, _mm256_load_si256((const __m256i *)sb));
    __m256i acc[2] = {_mm256_sub_epi32(_mm256_setzero_si256(), _mm256_slli_epi32(off, 5)), _mm256_setzero_si256()};
    const int8_t *xq = h->q + b * BF_QK_K;
    for (int n = 0; n < 2; n++) {
      const __m256i l0 = _mm256_loadu_si256((const __m256i *)(blk + 64 * n));
      const __m256i l1 = _mm256_loadu_si256((const __m256i *)(blk + 64 * n + 32));
      const __m256i hb = _mm256_loadu_si256((const __m256i *)(blk + 128 + 32 * n));
      /* (low 4 bits) | (2 high bits) << 4 for elements 128n + 0..31, 32..63, 64..95, 96..127; 0xec = (a & c) | b */
      __m256i q[4];
      q[0] = _mm256_ternarylogic_epi32(l0, _mm256_and_si256(_mm256_slli_epi16(hb, 4), m30), m4, 0xec);
      q[1] = _mm256_ternarylogic_epi32(l1, _mm256_and_si256(_mm256_slli_epi16(hb, 2), m30), m4, 0xec);
      q[2] = _mm256_ternarylogic_epi32(_mm256_srli_epi16(l0, 4), _mm256_and_si256(hb, m30), m4, 0xec);
      q[3] = _mm256_ternarylogic_epi32(_mm256_srli_epi16(l1, 4), _mm256_and_si256(_mm256_srli_epi16(hb, 2), m30), m4, 0xec);
      for (int c = 0; c < 4; c++) {
        /* q ≤ 63, |x| ≤ 127: maddubs pairs stay below 2^15 */
        const __m256i p = _mm256_maddubs_epi16(q[c], _mm256_loadu_si256((const __m256i *)(xq + 128 * n + 32 * c)));
        const __m256i s = _mm256_shuffle_epi8(sc, _mm256_loadu_si256((const __m256i *)WORD_BCAST_IDX[4 * n + c]));
        acc[c & 1] = _mm256_dpwssd_epi32(acc[c & 1], p, s);
      }
    }
    const __m256i s8 = _mm256_add_epi32(acc[0], acc[1]);
    __m128i r = _mm_add_epi32(_mm256_castsi256_si128(s8), _mm256_extracti128_si256(s8, 1));
    r = _mm_add_epi32(r, _mm_unpackhi_epi64(r, r));
    r = _mm_add_epi32(r, _mm_shuffle_epi32(r, 1));
    float dx;
    memcpy(&dx, sb + 32, 4);
    lanes = add_lane(lanes, b % 8, bf_scale_int(bf_load_f16(blk + 208) * dx, _mm_cvtsi128_si32(r)));
  }
  return fold8_m256(lanes);
}

static const bf_dot1_prep Q6_K_PREP = {q6_prep_bytes, q6_prep, q6_k_dot_prep};

/*
 * K-quants for small batches (bf_dotn, 2..7 tokens). The weights of a super-block are unpacked once per row and
 * shared, so what matters is the work per token; in 512-bit code every vector op competes for two ports (p0, p5),
 * and shuffles have only p5. Hence:
 * - activations re-laid once per call, so that a 512-bit weight vector gives each int32 lane a single sub-block:
 *   vpdpbusd then forms exact sub-block partial sums with no per-token shuffles or scaling;
 * - those partial sums fit in int16, so packs_epi32 puts two tokens in one vector and one madd / dpwssd against the
 *   sub-block scales gives both tokens' scaled sums;
 * - four tokens (a quad) finish their horizontal sums (sumi and, for Q4_K / Q5_K, summins) in one transpose-and-add
 *   tree, two super-blocks at a time, and the float steps run on vectors of 4 tokens × 2 super-blocks;
 * - a quad's 8 block lanes × 4 tokens live in a small array (the lane index changes every step; in registers it
 *   would take a broadcast and a masked add) and are folded 8/4/2/1 at the end;
 * - scales are unpacked in general registers, away from the two vector ports.
 * Integer sums are exact in any order; per token the float operations are exactly those of docs/kernels.md (and of
 * the one-token kernels), so each token gets the same bits. Inside a quad the tokens sit in the order 0, 2, 1, 3
 * (QUAD_POS), which lets the first reduction step use shifts instead of shuffles.
 */
#define KN_XB 256 /* per token and super-block: the 256 int8 activations, re-laid */
static const int QUAD_POS[4] = {0, 2, 1, 3}; /* element k of a quad vector holds token 4q + QUAD_POS[k] */

/* s0 = [t0a, t0b, t1a, t1b], s1 = [t2a, t2b, t3a, t3b] per chunk → [t0, t2, t1, t3] (QUAD_POS): shifts and adds
 * instead of shuffles, which would all need p5 */
AI __m512i pair_sums(__m512i s0, __m512i s1) {
  const __m512i a = _mm512_add_epi32(s0, _mm512_srli_epi64(s0, 32));
  return _mm512_mask_add_epi32(a, (__mmask16)0xaaaa, s1, _mm512_slli_epi64(s1, 32));
}

/* chunk sums of a and b: [a0 + a2, a1 + a3, b0 + b2, b1 + b3] */
AI __m512i chunk_pairs(__m512i a, __m512i b) {
  return _mm512_add_epi32(_mm512_shuffle_i32x4(a, b, _MM_SHUFFLE(1, 0, 1, 0)), _mm512_shuffle_i32x4(a, b, _MM_SHUFFLE(3, 2, 3, 2)));
}

/* [a0 + a1, a2 + a3, b0 + b1, b2 + b3] */
AI __m512i chunk_adj(__m512i a, __m512i b) {
  return _mm512_add_epi32(_mm512_shuffle_i32x4(a, b, _MM_SHUFFLE(2, 0, 2, 0)), _mm512_shuffle_i32x4(a, b, _MM_SHUFFLE(3, 1, 3, 1)));
}

/* docs/kernels.md's fold of 8 block lanes (acc + 4l: lane l of 4 tokens) for 4 tokens at once: l += l+4, l += l+2,
 * lane 0 + lane 1. Lanes are loaded one by one: a wider load spanning several of the (narrower) stores of the lane
 * updates could not be forwarded from them and would stall until they reach the cache. */
AI __m128 quad_fold(const float *acc) {
  __m128 l[4];
  for (int i = 0; i < 4; i++) l[i] = _mm_add_ps(_mm_load_ps(acc + 4 * i), _mm_load_ps(acc + 4 * i + 16));
  return _mm_add_ps(_mm_add_ps(l[0], l[2]), _mm_add_ps(l[1], l[3]));
}

AI void quad_store(__m128 r4, int q, int nt, float *out) {
  float r[4];
  _mm_storeu_ps(r, r4);
  for (int k = 0; k < 4; k++)
    if (4 * q + QUAD_POS[k] < nt) out[4 * q + QUAD_POS[k]] = r[k];
}

/* the 256 activations of a super-block as 4 vectors [x 64c+16k .. +16 for c = 0..3], k = 0..3 */
static void kn_relay_x(const int8_t *x, uint8_t *dst) {
  for (int k = 0; k < 4; k++)
    for (int c = 0; c < 4; c++) memcpy(dst + 64 * k + 16 * c, x + 64 * c + 16 * k, 16);
}

/*
 * Q4_K / Q5_K. The qs bytes of a super-block, as two 512-bit loads, are regrouped by 128-bit pieces into
 * ra = [qs 0..15 | 32..47 | 64..79 | 96..111] and rb = [16..31 | 48..63 | 80..95 | 112..127], so chunk c of
 * lo(ra), lo(rb) holds sub-block 2c (elements 0..15, 16..31) and of hi(ra), hi(rb) sub-block 2c+1; the activations
 * are re-laid to match (kn_relay_x). Per token, two dpbusd give ae (each lane: 8 elements of sub-block 2c) and two
 * give ao (sub-block 2c+1), so |lane| ≤ 8·31·127 < 2^15. For summins the buffer holds per super-block and quad the
 * int16 pair sums bsums[2j] + bsums[2j+1] (|·| ≤ 32·127) as [chunk c: token at k = 0..3: (j = 2c, 2c+1)], so one
 * madd with the mins gives [t0..t3] partials per chunk, like sumi. Buffer: x (nb·nt·256 bytes), pair sums
 * (nb·nq·64), then d_x per quad and super-block (nq·nb·16, so two super-blocks' are one 32-byte load).
 */
static size_t k4n_prep_bytes(int nt, int cols) {
  const size_t nb = (size_t)(cols / BF_QK_K), nq = (size_t)(nt + 3) / 4;
  return nb * ((size_t)nt * KN_XB + nq * 64 + nq * 16);
}

static void k4n_prep(const bf_act_row *a, int nt, int cols, void *buf) {
  const int nb = cols / BF_QK_K, nq = (nt + 3) / 4;
  uint8_t *xs = buf;
  int16_t *ps = (int16_t *)(xs + (size_t)nb * nt * KN_XB);
  float *dxs = (float *)(ps + (size_t)nb * nq * 32);
  for (int b = 0; b < nb; b++) {
    for (int t = 0; t < nt; t++) kn_relay_x(a[t].q + (size_t)b * BF_QK_K, xs + ((size_t)b * nt + t) * KN_XB);
    for (int q = 0; q < nq; q++) {
      int16_t *p = ps + ((size_t)b * nq + q) * 32;
      for (int k = 0; k < 4; k++) {
        const int t = 4 * q + QUAD_POS[k];
        const int32_t *bs = t < nt ? a[t].sums + 16 * b : NULL;
        for (int c = 0; c < 4; c++) {
          p[8 * c + 2 * k] = bs ? (int16_t)(bs[4 * c] + bs[4 * c + 1]) : 0;
          p[8 * c + 2 * k + 1] = bs ? (int16_t)(bs[4 * c + 2] + bs[4 * c + 3]) : 0;
        }
        dxs[((size_t)q * nb + b) * 4 + k] = bs ? a[t].d[b] : 0.0f; /* unused token slots give v = 0, never read */
      }
    }
  }
}

/* vpshufb indexes into a broadcast 8 bytes: chunk c → byte 2c as 8 int16; byte 2c+1 as 8 int16; (2c, 2c+1) ×4 */
#define E8(j) j, -1, j, -1, j, -1, j, -1, j, -1, j, -1, j, -1, j, -1
#define MP4(j) j, -1, j + 1, -1, j, -1, j + 1, -1, j, -1, j + 1, -1, j, -1, j + 1, -1
static const int8_t K4N_IDX[3][64] = {{E8(0), E8(2), E8(4), E8(6)},
                                      {E8(1), E8(3), E8(5), E8(7)},
                                      {MP4(0), MP4(2), MP4(4), MP4(6)}};

typedef struct {
  __m512i m4, bit4, i_sce, i_sco, i_m, rot_e, rot_o;
} k4n_consts;

/*
 * The integer part of one super-block of R rows (blk0, blk0 + rb) for every quad: v[r][q] = sumi and m[r][q] =
 * summins partials, [t0..t3] per chunk.
 * xb, psb: this super-block's activations and pair sums.
 */
AI void k4n_sums(const uint8_t *blk0, size_t rb, int R, const uint8_t *xb, const int16_t *psb, int nt, int has_high,
                 const k4n_consts *k, __m512i v[][2], __m512i m[][2]) {
  const int nq = (nt + 3) / 4;
  __m512i sce[2], sco[2], mv[2], wv[2][4];
  for (int r = 0; r < R; r++) {
    const uint8_t *blk = blk0 + r * rb;
    /* k4_scales on general registers (compiled to xmm code, this work would take the vector ports) */
    uint64_t w01;
    uint32_t w2;
    memcpy(&w01, blk + 4, 8);
    memcpy(&w2, blk + 12, 4);
    __asm__("" : "+r"(w01), "+r"(w2));
    const uint64_t lo6 = 0x3f3f3f3f3f3f3f3full, top2 = 0x0303030303030303ull;
    const uint64_t hi = (uint64_t)(w2 & 0x0f0f0f0fu) | (uint64_t)((w2 >> 4) & 0x0f0f0f0fu) << 32; /* [sc 4..7 | m 4..7] low nibbles */
    const uint64_t up = ((w01 >> 6) & top2) << 4;                                                 /* their bits 4-5 */
    uint64_t scm_lo = w01 & lo6, scm_hi = hi | up;                                                /* [sc 0..3 | m 0..3], [sc 4..7 | m 4..7] */
    __asm__("" : "+r"(scm_lo), "+r"(scm_hi));
    const uint64_t sc8 = (scm_lo & 0xffffffffull) | scm_hi << 32, m8 = scm_lo >> 32 | (scm_hi & 0xffffffff00000000ull);
    const __m512i scb = _mm512_set1_epi64((long long)sc8), mb = _mm512_set1_epi64((long long)m8);
    sce[r] = _mm512_shuffle_epi8(scb, k->i_sce);
    sco[r] = _mm512_shuffle_epi8(scb, k->i_sco);
    mv[r] = _mm512_shuffle_epi8(mb, k->i_m);
    const uint8_t *qs = blk + (has_high ? 48 : 16);
    const __m512i q0 = _mm512_loadu_si512((const void *)qs), q1 = _mm512_loadu_si512((const void *)(qs + 64));
    const __m512i ra = _mm512_shuffle_i64x2(q0, q1, _MM_SHUFFLE(2, 0, 2, 0)), rb4 = _mm512_shuffle_i64x2(q0, q1, _MM_SHUFFLE(3, 1, 3, 1));
    wv[r][0] = _mm512_and_si512(ra, k->m4);
    wv[r][1] = _mm512_and_si512(rb4, k->m4);
    wv[r][2] = _mm512_and_si512(_mm512_srli_epi16(ra, 4), k->m4);
    wv[r][3] = _mm512_and_si512(_mm512_srli_epi16(rb4, 4), k->m4);
    if (has_high) {
      /* qh byte e, bit j = fifth bit of element e of sub-block j: elements 0..15 / 16..31 in every chunk. Chunk c
       * wants bit s = 2c (2c + 1) of each byte in bit 4: a 32-bit rotate by 4 − s keeps it inside its byte. 0xf8 = a | (b & c) */
      const __m512i ha = _mm512_broadcast_i32x4(_mm_loadu_si128((const __m128i *)(blk + 16)));
      const __m512i hb = _mm512_broadcast_i32x4(_mm_loadu_si128((const __m128i *)(blk + 32)));
      wv[r][0] = _mm512_ternarylogic_epi32(wv[r][0], _mm512_rolv_epi32(ha, k->rot_e), k->bit4, 0xf8);
      wv[r][1] = _mm512_ternarylogic_epi32(wv[r][1], _mm512_rolv_epi32(hb, k->rot_e), k->bit4, 0xf8);
      wv[r][2] = _mm512_ternarylogic_epi32(wv[r][2], _mm512_rolv_epi32(ha, k->rot_o), k->bit4, 0xf8);
      wv[r][3] = _mm512_ternarylogic_epi32(wv[r][3], _mm512_rolv_epi32(hb, k->rot_o), k->bit4, 0xf8);
    }
  }
  for (int q = 0; q < nq; q++) {
    __m512i s[2][2]; /* s[r][p]: tokens 4q + 2p (elements 0, 1 of each chunk) and 4q + 2p + 1 (elements 2, 3) */
    for (int p = 0; p < 2; p++) {
      if (4 * q + 2 * p >= nt) {
        for (int r = 0; r < R; r++) s[r][p] = _mm512_setzero_si512();
        continue;
      }
      __m512i ae[2][2], ao[2][2];
      for (int u = 0; u < 2; u++) {
        const int t = 4 * q + 2 * p + u;
        if (t < nt) {
          /* each activation vector loaded once for all R rows */
          const __m512i *x = (const __m512i *)(xb + (size_t)t * KN_XB);
          const __m512i x0 = _mm512_load_si512(x), x1 = _mm512_load_si512(x + 1);
          const __m512i x2 = _mm512_load_si512(x + 2), x3 = _mm512_load_si512(x + 3);
          for (int r = 0; r < R; r++) {
            ae[r][u] = _mm512_dpbusd_epi32(_mm512_dpbusd_epi32(_mm512_setzero_si512(), wv[r][0], x0), wv[r][1], x1);
            ao[r][u] = _mm512_dpbusd_epi32(_mm512_dpbusd_epi32(_mm512_setzero_si512(), wv[r][2], x2), wv[r][3], x3);
          }
        } else {
          for (int r = 0; r < R; r++) ae[r][u] = ao[r][u] = _mm512_setzero_si512();
        }
      }
      /* per chunk: [t: sc·(lanes 0+1), sc·(lanes 2+3), t+1: …], both sub-blocks of the chunk */
      for (int r = 0; r < R; r++)
        s[r][p] = _mm512_dpwssd_epi32(_mm512_madd_epi16(_mm512_packs_epi32(ae[r][0], ae[r][1]), sce[r]),
                                      _mm512_packs_epi32(ao[r][0], ao[r][1]), sco[r]);
    }
    const __m512i ps = _mm512_load_si512((const void *)(psb + (size_t)q * 32));
    for (int r = 0; r < R; r++) {
      v[r][q] = pair_sums(s[r][0], s[r][1]);
      m[r][q] = _mm512_madd_epi16(mv[r], ps);
    }
  }
}

/* R (1 or 2) rows, w and w + rb: out[r·nt + t]; each row gets exactly the one-row operations */
AI void k4n(const uint8_t *w, size_t rb, int R, const void *buf, int nt, int cols, int has_high, float *out) {
  const size_t bytes = has_high ? Q5_K_BYTES : Q4_K_BYTES;
  const int nb = cols / BF_QK_K, nq = (nt + 3) / 4;
  const uint8_t *xs = buf;
  const int16_t *ps = (const int16_t *)(xs + (size_t)nb * nt * KN_XB);
  const float *dxs = (const float *)(ps + (size_t)nb * nq * 32);
  k4n_consts k;
  k.m4 = _mm512_set1_epi8(0x0f);
  k.bit4 = _mm512_set1_epi8(0x10);
  k.i_sce = _mm512_loadu_si512((const void *)K4N_IDX[0]);
  k.i_sco = _mm512_loadu_si512((const void *)K4N_IDX[1]);
  k.i_m = _mm512_loadu_si512((const void *)K4N_IDX[2]);
  k.rot_e = _mm512_setr_epi32(4, 4, 4, 4, 2, 2, 2, 2, 0, 0, 0, 0, 30, 30, 30, 30);
  k.rot_o = _mm512_setr_epi32(3, 3, 3, 3, 1, 1, 1, 1, 31, 31, 31, 31, 29, 29, 29, 29);
  /* F16 pairs (d_w, dmin_w) of super-blocks b, b+1 → [d_w(b) ×4, d_w(b+1) ×4 | dmin_w(b) ×4, dmin_w(b+1) ×4] */
  const __m256i dd_idx = _mm256_setr_epi8(0, 1, 0, 1, 0, 1, 0, 1, 4, 5, 4, 5, 4, 5, 4, 5, 2, 3, 2, 3, 2, 3, 2, 3, 6, 7, 6, 7, 6, 7, 6, 7);
  /* block lanes per row and quad: acc[r][q][l] = 4 tokens */
  _Alignas(64) float acc[2][2][8][4];
  for (int r = 0; r < R; r++)
    for (int q = 0; q < nq; q++) {
      _mm512_store_ps(acc[r][q][0], _mm512_setzero_ps());
      _mm512_store_ps(acc[r][q][4], _mm512_setzero_ps());
    }
  /* an odd super-block count starts with a single one, so that the row ends on a pair and the longer chain of the
   * single overlaps with the pairs */
  int b = 0;
  if (nb & 1) {
    __m512i v0[2][2], m0[2][2];
    k4n_sums(w, rb, R, xs, ps, nt, has_high, &k, v0, m0);
    for (int r = 0; r < R; r++) {
      uint64_t dd = 0;
      memcpy(&dd, w + r * rb, 4);
      /* [d_w ×4 | dmin_w ×4] */
      const __m256 dwm = _mm256_cvtph_ps(_mm_shuffle_epi8(_mm_cvtsi64_si128((long long)dd),
                                                          _mm_setr_epi8(0, 1, 0, 1, 0, 1, 0, 1, 2, 3, 2, 3, 2, 3, 2, 3)));
      for (int q = 0; q < nq; q++) {
        /* [sumi | summins | sumi | summins] */
        const __m512i z = chunk_adj(chunk_pairs(v0[r][q], m0[r][q]), chunk_pairs(v0[r][q], m0[r][q]));
        const __m256 dx = _mm256_broadcast_ps((const __m128 *)(dxs + (size_t)q * nb * 4));
        const __m256 pr = _mm256_mul_ps(_mm256_mul_ps(dwm, dx), _mm256_cvtepi32_ps(_mm512_castsi512_si256(z)));
        _mm_store_ps(acc[r][q][0], _mm_add_ps(_mm_setzero_ps(), _mm_sub_ps(_mm256_castps256_ps128(pr), _mm256_extractf128_ps(pr, 1))));
      }
    }
    b = 1;
  }
  for (; b < nb; b += 2) {
    __m512i v0[2][2], m0[2][2], v1[2][2], m1[2][2];
    k4n_sums(w + (size_t)b * bytes, rb, R, xs + (size_t)b * nt * KN_XB, ps + (size_t)b * nq * 32, nt, has_high, &k, v0, m0);
    k4n_sums(w + (size_t)(b + 1) * bytes, rb, R, xs + (size_t)(b + 1) * nt * KN_XB, ps + (size_t)(b + 1) * nq * 32, nt,
             has_high, &k, v1, m1);
    const int l = b & 7; /* lanes l and l+1, or 7 and 0 */
    for (int r = 0; r < R; r++) {
      const uint8_t *blk = w + r * rb + (size_t)b * bytes;
      uint32_t d0, d1;
      memcpy(&d0, blk, 4);
      memcpy(&d1, blk + bytes, 4);
      const uint64_t dd = (uint64_t)d1 << 32 | d0;
      const __m512 dwm = _mm512_cvtph_ps(_mm256_shuffle_epi8(_mm256_set1_epi64x((long long)dd), dd_idx));
      for (int q = 0; q < nq; q++) {
        /* [sumi(b) | sumi(b+1) | summins(b) | summins(b+1)], 4 tokens each */
        const __m512i y = chunk_adj(chunk_pairs(v0[r][q], v1[r][q]), chunk_pairs(m0[r][q], m1[r][q]));
        /* f32(d_w·d_x)·f32(sumi) and f32(dmin_w·d_x)·f32(summins) per token and super-block, then their difference
         * (k4_value) */
        const __m512 dx = _mm512_castpd_ps(_mm512_broadcast_f64x4(_mm256_loadu_pd((const double *)(dxs + ((size_t)q * nb + b) * 4))));
        const __m512 pr = _mm512_mul_ps(_mm512_mul_ps(dwm, dx), _mm512_cvtepi32_ps(y));
        const __m256 vb = _mm256_sub_ps(_mm512_castps512_ps256(pr), hi256_ps(pr));
        float(*ac)[4] = acc[r][q];
        if (l != 7) {
          _mm256_storeu_ps(ac[l], _mm256_add_ps(_mm256_loadu_ps(ac[l]), vb));
        } else {
          _mm_store_ps(ac[7], _mm_add_ps(_mm_load_ps(ac[7]), _mm256_castps256_ps128(vb)));
          _mm_store_ps(ac[0], _mm_add_ps(_mm_load_ps(ac[0]), _mm256_extractf128_ps(vb, 1)));
        }
      }
    }
  }
  for (int r = 0; r < R; r++)
    for (int q = 0; q < nq; q++) quad_store(quad_fold(acc[r][q][0]), q, nt, out + r * nt);
}
AI void dotn_q4_k_k(const uint8_t *w, const bf_act_row *a, const void *buf, int nt, int cols, float *out) { (void)a; k4n(w, 0, 1, buf, nt, cols, 0, out); }
AI void dotn_q5_k_k(const uint8_t *w, const bf_act_row *a, const void *buf, int nt, int cols, float *out) { (void)a; k4n(w, 0, 1, buf, nt, cols, 1, out); }
AI void dotn2_q4_k_k(const uint8_t *w, size_t rb, const bf_act_row *a, const void *buf, int nt, int cols, float *out) { (void)a; k4n(w, rb, 2, buf, nt, cols, 0, out); }
AI void dotn2_q5_k_k(const uint8_t *w, size_t rb, const bf_act_row *a, const void *buf, int nt, int cols, float *out) { (void)a; k4n(w, rb, 2, buf, nt, cols, 1, out); }
static void dotn_q4_k(const uint8_t *w, const bf_act_row *a, const void *buf, int nt, int cols, float *out) { DOTN_CASES(dotn_q4_k_k) }
static void dotn_q5_k(const uint8_t *w, const bf_act_row *a, const void *buf, int nt, int cols, float *out) { DOTN_CASES(dotn_q5_k_k) }
static void dotn2_q4_k(const uint8_t *w, size_t rb, const bf_act_row *a, const void *buf, int nt, int cols, float *out) { DOTN2_CASES(dotn2_q4_k_k) }
static void dotn2_q5_k(const uint8_t *w, size_t rb, const bf_act_row *a, const void *buf, int nt, int cols, float *out) { DOTN2_CASES(dotn2_q5_k_k) }
static const bf_dotn Q4_K_DOTN = {k4n_prep_bytes, k4n_prep, dotn_q4_k, dotn2_q4_k, 0};
static const bf_dotn Q5_K_DOTN = {k4n_prep_bytes, k4n_prep, dotn_q5_k, dotn2_q5_k, 0};

/*
 * Q6_K for small batches, in the same way (see the Q4_K / Q5_K comment above): the quants are unpacked to 4 vectors
 * of 64 consecutive elements (chunk c of vector k = sub-block 4k + c), so the activations are used as they are.
 * Per token one dpbusd per vector; each int32 lane (4 elements) is at most 4·63·127 < 2^15, so packs_epi32 pairs
 * tokens before madd / dpwssd with the sub-block scales. −32·Σ sc_j·bsums_j is added by two dpwssd per quad from
 * the negated bsums (|·| ≤ 16·127) laid out [chunk c: token at k: (j = 2c, 2c+1)] and [… (j = 8+2c, 9+2c)]
 * against 32·sc. Buffer: those (nb·nq·128 bytes), then d_x per quad and super-block (nq·nb·16).
 */
static size_t q6n_prep_bytes(int nt, int cols) {
  const size_t nb = (size_t)(cols / BF_QK_K), nq = (size_t)(nt + 3) / 4;
  return nb * nq * (128 + 16);
}

static void q6n_prep(const bf_act_row *a, int nt, int cols, void *buf) {
  const int nb = cols / BF_QK_K, nq = (nt + 3) / 4;
  int16_t *bs = buf;
  float *dxs = (float *)(bs + (size_t)nb * nq * 64);
  for (int b = 0; b < nb; b++)
    for (int q = 0; q < nq; q++) {
      int16_t *p = bs + ((size_t)b * nq + q) * 64;
      for (int k = 0; k < 4; k++) {
        const int t = 4 * q + QUAD_POS[k];
        const int32_t *s = t < nt ? a[t].sums + 16 * b : NULL;
        for (int c = 0; c < 4; c++)
          for (int h = 0; h < 2; h++) {
            p[32 * h + 8 * c + 2 * k] = s ? (int16_t)-s[8 * h + 2 * c] : 0;
            p[32 * h + 8 * c + 2 * k + 1] = s ? (int16_t)-s[8 * h + 2 * c + 1] : 0;
          }
        dxs[((size_t)q * nb + b) * 4 + k] = s ? a[t].d[b] : 0.0f;
      }
    }
}

typedef struct {
  __m512i m4, m30, hshift, pidx[2], sidx[4];
} q6n_consts;

/* the integer part of super-block b for every quad: v[q] = sumi partials, [t0..t3] per chunk (QUAD_POS order) */
AI void q6n_sums(const uint8_t *blk, const bf_act_row *a, int b, const int16_t *bsb, int nt, const q6n_consts *k, __m512i *v) {
  const int nq = (nt + 3) / 4;
  __m512i wv[4];
  for (int n = 0; n < 2; n++) {
    const __m512i l = _mm512_loadu_si512((const void *)(blk + 64 * n)); /* ql: low 4 bits of 128n + 0..63 | 64..127 */
    /* [qh | qh >> 2] (16-bit shifts): bits 0-1 of byte i are the high bits of element 128n + i, bits 4-5 of 128n + 64 + i */
    const __m512i h = _mm512_srlv_epi16(_mm512_broadcast_i64x4(_mm256_loadu_si256((const __m256i *)(blk + 128 + 32 * n))), k->hshift);
    /* 0xec = (a & c) | b */
    wv[2 * n] = _mm512_ternarylogic_epi32(l, _mm512_and_si512(_mm512_slli_epi16(h, 4), k->m30), k->m4, 0xec);
    wv[2 * n + 1] = _mm512_ternarylogic_epi32(_mm512_srli_epi16(l, 4), _mm512_and_si512(h, k->m30), k->m4, 0xec);
  }
  const __m512i sc16 = _mm512_castsi256_si512(_mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(blk + 192))));
  __m512i sc[4];
  for (int i = 0; i < 4; i++) sc[i] = _mm512_permutexvar_epi16(k->sidx[i], sc16); /* chunk c: sc_4i+c as 8 int16 */
  const __m512i sc32 = _mm512_slli_epi16(sc16, 5);
  const __m512i scp0 = _mm512_permutexvar_epi32(k->pidx[0], sc32), scp1 = _mm512_permutexvar_epi32(k->pidx[1], sc32);
  for (int q = 0; q < nq; q++) {
    __m512i s[2]; /* s[p]: tokens 4q + 2p (elements 0, 1 of each chunk) and 4q + 2p + 1 (elements 2, 3) */
    for (int p = 0; p < 2; p++) {
      if (4 * q + 2 * p >= nt) {
        s[p] = _mm512_setzero_si512();
        continue;
      }
      __m512i d[2][4];
      for (int u = 0; u < 2; u++) {
        const int t = 4 * q + 2 * p + u;
        for (int i = 0; i < 4; i++)
          d[u][i] = t < nt ? _mm512_dpbusd_epi32(_mm512_setzero_si512(), wv[i], _mm512_loadu_si512((const void *)(a[t].q + (size_t)b * BF_QK_K + 64 * i)))
                           : _mm512_setzero_si512();
      }
      __m512i acc = _mm512_madd_epi16(_mm512_packs_epi32(d[0][0], d[1][0]), sc[0]);
      for (int i = 1; i < 4; i++) acc = _mm512_dpwssd_epi32(acc, _mm512_packs_epi32(d[0][i], d[1][i]), sc[i]);
      s[p] = acc;
    }
    const __m512i *bq = (const __m512i *)(bsb + (size_t)q * 64);
    v[q] = _mm512_dpwssd_epi32(_mm512_dpwssd_epi32(pair_sums(s[0], s[1]), _mm512_load_si512(bq), scp0), _mm512_load_si512(bq + 1), scp1);
  }
}

AI void q6n(const uint8_t *w, const bf_act_row *a, const void *buf, int nt, int cols, float *out) {
  const int nb = cols / BF_QK_K, nq = (nt + 3) / 4;
  const int16_t *bs = buf;
  const float *dxs = (const float *)(bs + (size_t)nb * nq * 64);
  q6n_consts k;
  k.m4 = _mm512_set1_epi8(0x0f);
  k.m30 = _mm512_set1_epi8(0x30);
  k.hshift = _mm512_setr_epi64(0, 0, 0, 0, 0x0002000200020002ll, 0x0002000200020002ll, 0x0002000200020002ll, 0x0002000200020002ll);
  k.pidx[0] = _mm512_setr_epi32(0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3);
  k.pidx[1] = _mm512_setr_epi32(4, 4, 4, 4, 5, 5, 5, 5, 6, 6, 6, 6, 7, 7, 7, 7);
  for (int i = 0; i < 4; i++) k.sidx[i] = load_idx(Q6_SCALE_IDX[i]);
  _Alignas(64) float acc[2][8][4];
  for (int q = 0; q < nq; q++) {
    _mm512_store_ps(acc[q][0], _mm512_setzero_ps());
    _mm512_store_ps(acc[q][4], _mm512_setzero_ps());
  }
  /* an odd count starts with a single super-block, as in k4n */
  int b = 0;
  if (nb & 1) {
    __m512i v0[2];
    q6n_sums(w, a, 0, bs, nt, &k, v0);
    const __m128 d6 = _mm_set1_ps(bf_load_f16(w + 208));
    for (int q = 0; q < nq; q++) {
      const __m512i z = chunk_pairs(v0[q], v0[q]);
      const __m128 y = _mm_cvtepi32_ps(_mm512_castsi512_si128(chunk_adj(z, z)));
      const __m128 pr = _mm_mul_ps(_mm_mul_ps(d6, _mm_load_ps(dxs + (size_t)q * nb * 4)), y);
      _mm_store_ps(acc[q][0], _mm_add_ps(_mm_load_ps(acc[q][0]), pr));
    }
    b = 1;
  }
  for (; b < nb; b += 2) {
    const uint8_t *blk = w + (size_t)b * Q6_K_BYTES;
    __m512i v0[2], v1[2];
    q6n_sums(blk, a, b, bs + (size_t)b * nq * 64, nt, &k, v0);
    q6n_sums(blk + Q6_K_BYTES, a, b + 1, bs + (size_t)(b + 1) * nq * 64, nt, &k, v1);
    /* [d_w(b) ×4 | d_w(b+1) ×4] */
    const uint32_t dd = bf_load_u16(blk + 208) | (uint32_t)bf_load_u16(blk + Q6_K_BYTES + 208) << 16;
    const __m256 d6 = _mm256_cvtph_ps(_mm_shuffle_epi8(_mm_cvtsi32_si128((int)dd), _mm_setr_epi8(0, 1, 0, 1, 0, 1, 0, 1, 2, 3, 2, 3, 2, 3, 2, 3)));
    const int l = b & 7; /* lanes l and l+1, or 7 and 0 */
    for (int q = 0; q < nq; q++) {
      const __m512i z = chunk_pairs(v0[q], v1[q]);
      /* [sumi(b) | sumi(b+1)] per token; f32(f32(d_w·d_x)·f32(sumi)) */
      const __m256 y = _mm256_cvtepi32_ps(_mm512_castsi512_si256(chunk_adj(z, z)));
      const __m256 vb = _mm256_mul_ps(_mm256_mul_ps(d6, _mm256_loadu_ps(dxs + ((size_t)q * nb + b) * 4)), y);
      if (l != 7) {
        _mm256_storeu_ps(acc[q][l], _mm256_add_ps(_mm256_loadu_ps(acc[q][l]), vb));
      } else {
        _mm_store_ps(acc[q][7], _mm_add_ps(_mm_load_ps(acc[q][7]), _mm256_castps256_ps128(vb)));
        _mm_store_ps(acc[q][0], _mm_add_ps(_mm_load_ps(acc[q][0]), _mm256_extractf128_ps(vb, 1)));
      }
    }
  }
  for (int q = 0; q < nq; q++) quad_store(quad_fold(acc[q][0]), q, nt, out);
}
AI void dotn_q6_k_k(const uint8_t *w, const bf_act_row *a, const void *buf, int nt, int cols, float *out) { q6n(w, a, buf, nt, cols, out); }
static void dotn_q6_k(const uint8_t *w, const bf_act_row *a, const void *buf, int nt, int cols, float *out) { DOTN_CASES(dotn_q6_k_k) }
static const bf_dotn Q6_K_DOTN = {q6n_prep_bytes, q6n_prep, dotn_q6_k, NULL, 0};

static float dot_q6_k(const uint8_t *w, const bf_act_row *a, int cols) { float r; q6_k(w, a, 1, cols, &r); return r; }
static void dot4_q6_k(const uint8_t *w, const bf_act_row *a, int cols, float *out) { q6_k(w, a, 4, cols, out); }

const bf_dot_fn bf_dot_q8_0_simd = dot_q8_0, bf_dot_q4_0_simd = dot_q4_0;

const bf_dot1_prep *bf_dot1_prep_for(bf_dot_fn dot) {
  if (dot == dot_q4_0) return &Q4_0_PREP;
  if (dot == dot_q4_k) return &Q4_K_PREP;
  if (dot == dot_q5_k) return &Q5_K_PREP;
  if (dot == dot_q6_k) return &Q6_K_PREP;
  return NULL;
}
const bf_dotn *bf_dotn_for(bf_dot_fn dot) {
  if (dot == dot_q8_0) return &Q8_0_DOTN;
  if (dot == dot_q4_0) return &Q4_0_DOTN;
  if (dot == dot_q4_k) return &Q4_K_DOTN;
  if (dot == dot_q5_k) return &Q5_K_DOTN;
  if (dot == dot_q6_k) return &Q6_K_DOTN;
  return NULL;
}
const bf_dot4_fn bf_dot4_q8_0_simd = dot4_q8_0, bf_dot4_q4_0_simd = dot4_q4_0;
const bf_dot_fn bf_dot_q4_k_simd = dot_q4_k, bf_dot_q5_k_simd = dot_q5_k, bf_dot_q6_k_simd = dot_q6_k;
const bf_dot4_fn bf_dot4_q4_k_simd = dot4_q4_k, bf_dot4_q5_k_simd = dot4_q5_k, bf_dot4_q6_k_simd = dot4_q6_k;

#else

const bf_dot1_prep *bf_dot1_prep_for(bf_dot_fn dot) { (void)dot; return NULL; }
const bf_dotn *bf_dotn_for(bf_dot_fn dot) { (void)dot; return NULL; }

#endif
