/* Row-interleaved ("x16") weights: rows rearranged in groups of 16 at load so batched decode needs no per-row
 * unpacking (native/x16.c). Same size as the GGUF layout and the same bits out of every kernel. */
#ifndef BUTTERFLY_X16_H
#define BUTTERFLY_X16_H

#include "matmul.h"

#ifdef BF_AVX512_QUANT
#include <immintrin.h>

/* High nibbles of every byte, as bytes 0..15: one GF(2) affine op where GFNI exists (bit i of each result byte = bit
 * i + 4 of the source; 2048×768 Q4_0, 4 tokens, L2-hot: 178 → 210 GMAC/s), else a shift and a mask. Data movement
 * only: the same bytes either way. */
static inline __attribute__((always_inline)) __m512i bf_hi_nibbles(__m512i v) {
#ifdef __GFNI__
  return _mm512_gf2p8affine_epi64_epi8(v, _mm512_set1_epi64(0x1020408000000000LL), 0);
#else
  return _mm512_and_si512(_mm512_srli_epi16(v, 4), _mm512_set1_epi8(0x0f));
#endif
}

/* out[0..15] = the 4/2/1 fold of docs/kernels.md over the 8 lane-class sums lane[0], lane[stride], … lane[7·stride]
 * (one token's 16 rows) */
static inline __attribute__((always_inline)) void bf_x16_fold_store(const __m512 *lane, int stride, float *out) {
  __m512 v0 = _mm512_add_ps(lane[0], lane[4 * stride]), v1 = _mm512_add_ps(lane[stride], lane[5 * stride]);
  const __m512 v2 = _mm512_add_ps(lane[2 * stride], lane[6 * stride]), v3 = _mm512_add_ps(lane[3 * stride], lane[7 * stride]);
  v0 = _mm512_add_ps(v0, v2);
  v1 = _mm512_add_ps(v1, v3);
  _mm512_storeu_ps(out, _mm512_add_ps(v0, v1));
}
#endif

/* 1 if the type has an x16 layout (Q4_0, Q8_0, Q4_K, Q5_K, Q6_K) */
int bf_x16_supported(int type);
/* Rearranges rows × cols weights of `type` in place into the x16 layout; rows must be a multiple of 16. 0 on
 * success, −1 if the type or shape does not fit or a 16-row scratch copy could not be had (w is then unchanged). */
int bf_x16_repack(int type, uint8_t *w, int64_t rows, int64_t cols);
/* Row `row` of x16 weights w, put back in its GGUF layout at dst (row_bytes bytes). */
void bf_x16_row(int type, const uint8_t *w, int64_t row, int64_t cols, uint8_t *dst);
/* bf_matmul_rows for x16 weights; row_begin and row_end are multiples of 16. */
void bf_x16_rows(const bf_matmul_job *job, int64_t row_begin, int64_t row_end);

/* K-quant kernels (x16_k.c; AVX-512 builds only). bf_x16_prep_k writes token t's bf_x16_prep_ints_k(job) int32 of
 * per-token data (Q4_K / Q5_K: the split mins sums; Q6_K: −32·bsums); the groups functions run tokens
 * [t0, t0 + nt) (nt ≤ 7) over 16-row groups [g0, g1), reading that data from token t0 on. */
size_t bf_x16_prep_ints_k(const bf_matmul_job *job);
void bf_x16_prep_k(const bf_matmul_job *job, int64_t t, int32_t *dst);
void bf_x16_groups_q4_k(const bf_matmul_job *job, int64_t t0, int nt, int64_t g0, int64_t g1, const int32_t *hl);
void bf_x16_groups_q6_k(const bf_matmul_job *job, int64_t t0, int nt, int64_t g0, int64_t g1, const int32_t *bias);
/* For the AMX path: 16 Q6_K rows of one group → amx.c unpack_q6's output (q + 32 in element order, row m at m·cols;
 * sc, dw) */
void bf_x16_unpack_q6_k(const uint8_t *grp, int nb, int cols, int8_t *dst, int32_t *sc, float *dw);
/* For the AMX path: 16 Q4_K (q5 = 0) or Q5_K (q5 = 1) rows of one group → amx.c unpack_k4's output (quants in
 * element order, row m at m·cols; sc, mn, dw, dmin) */
void bf_x16_unpack_k(const uint8_t *grp, int q5, int nb, int cols, int8_t *dst, int32_t *sc, int32_t *mn, float *dw, float *dmin);
/* lanes[k][m] = dword k of row m → row m's 32 bytes at dst + m·stride */
void bf_x16_lanes_to_rows(const int32_t lanes[8][16], int8_t *dst, size_t stride);

#endif
