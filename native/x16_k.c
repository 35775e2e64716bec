/*
 * Row-interleaved ("x16") K-quant weights (native/x16.h; the byte layout is x16.c's x16_format table). Q4_K: group g
 * of 16 rows holds, for each super-block b in order, 2304 bytes (16 × 144, the same size):
 *   0    the 16 rows' F16 d            32   the 16 rows' F16 dmin
 *   64   S_0, S_1, S_2: lane r of S_i = bytes 4i..4i+3 of row r's 12 packed 6-bit scale/min bytes
 *   256  P_{c,k} (c = 0..3, k = 0..7) at 256 + 64·(8c + k): lane r = quant bytes 32c + 4k .. +3 of row r,
 *        whose low nibbles are elements 64c + 4k.. of sub-block 2c and high nibbles those of sub-block 2c + 1.
 * Q5_K (2816 bytes): the same with QH_k (k = 0..7, lane r = qh bytes 4k..4k+3: bit j = the 16s of sub-block j)
 * at 256 and the P vectors at 768. Q6_K: further down.
 *
 * Per super-block, rows in lanes: s_j = Σ q·x of sub-block j by VPDPBUSD (8 per token), sumi = Σ_j sc_j·s_j (exact
 * int32), summins = Σ_j m_j·(bsums[2j] + bsums[2j+1]) by VPDPBUSD on the 6-bit mins against the token's pair sums
 * split as 128·h + l with h, l int8 (exact). Then the float steps of k4_value and acc[b % 8], the 4/2/1 fold: the bits of
 * bf_dot_q4_k_scalar (docs/kernels.md "Integer super-blocks").
 */
#include "x16.h"

#include <stdlib.h>
#include <string.h>
#include "quant_blocks.h"


#ifdef BF_AVX512_QUANT
#include <immintrin.h>

#define AI static inline __attribute__((always_inline))
#define K16_PREFETCH_BYTES (8 * 1024)
#define K16_MAX_TOK 7

/* Per token and super-block: dwords {h_0..3, h_4..7, l_0..3, l_4..7} with bsums pair p_j = 128·h_j + l_j */
static void k16_min_parts(const bf_act_row *a, int nb, int32_t *hl) {
  for (int b = 0; b < nb; b++) {
    int8_t h[8], l[8];
    for (int j = 0; j < 8; j++) {
      const int32_t p = a->sums[16 * b + 2 * j] + a->sums[16 * b + 2 * j + 1]; /* |p| ≤ 32·128 */
      const int32_t hj = (p + 64) >> 7;                                         /* −32..32 */
      h[j] = (int8_t)hj;
      l[j] = (int8_t)(p - 128 * hj);                                            /* −64..63 */
    }
    memcpy(hl + 4 * b, h, 8);
    memcpy(hl + 4 * b + 2, l, 8);
  }
}

AI __m512i byte_lane(__m512i v, int i) { return _mm512_and_si512(_mm512_srli_epi32(v, 8 * i), _mm512_set1_epi32(0xff)); }

/* k4_scales for the 16 rows of one super-block at p (x16 layout), on dwords: sc / m [0] = bytes of scales / mins 0..3,
 * [1] = 4..7 (6 bits each) */
AI void k16_scales(const uint8_t *p, __m512i sc[2], __m512i m[2]) {
  const __m512i m6 = _mm512_set1_epi32(0x3f3f3f3f), lo4 = _mm512_set1_epi32(0x0f0f0f0f), top2 = _mm512_set1_epi32(0x03030303);
  const __m512i w0 = _mm512_loadu_si512((const void *)(p + 64)), w1 = _mm512_loadu_si512((const void *)(p + 128));
  const __m512i w2 = _mm512_loadu_si512((const void *)(p + 192));
  sc[0] = _mm512_and_si512(w0, m6);
  m[0] = _mm512_and_si512(w1, m6);
  sc[1] = _mm512_or_si512(_mm512_and_si512(w2, lo4), _mm512_slli_epi32(_mm512_and_si512(_mm512_srli_epi32(w0, 6), top2), 4));
  m[1] = _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi32(w2, 4), lo4),
                         _mm512_slli_epi32(_mm512_and_si512(_mm512_srli_epi32(w1, 6), top2), 4));
}

/* The 8 weight vectors of sub-block j (elements 32j + 4k .. +3 of 16 rows): the nibbles of P_{j/2,k}, low for even
 * j; Q5_K adds bit j of QH_k as 16 (QH at 256, P at 768; Q4_K: P at 256). 16-bit shifts cannot carry across bytes:
 * the bit moves between bits 0 and 7 of its byte. */
AI void k16_quants(const uint8_t *p, int j, int Q5, __m512i wv[8]) {
  const __m512i m4 = _mm512_set1_epi8(0x0f), hmask = _mm512_set1_epi8((char)(1 << j));
  const uint8_t *q = p + (Q5 ? 768 : 256) + 64 * 8 * (j >> 1);
  for (int k = 0; k < 8; k++) {
    const __m512i v = _mm512_loadu_si512((const void *)(q + 64 * k));
    wv[k] = j & 1 ? bf_hi_nibbles(v) : _mm512_and_si512(v, m4);
    if (Q5) {
      const __m512i h = _mm512_and_si512(_mm512_loadu_si512((const void *)(p + 256 + 64 * k)), hmask);
      wv[k] = _mm512_or_si512(wv[k], j < 4 ? _mm512_slli_epi16(h, 4 - j) : j == 4 ? h : _mm512_srli_epi16(h, j - 4));
    }
  }
}

/* One group of 16 rows × NT tokens → out[t·rows + 0..15] */
AI void k16_group(const uint8_t *grp, const bf_act_row *a, const int32_t *hl, int NT, int Q5, int nb, float *out,
                  int64_t rows) {
  const int bb = Q5 ? 16 * Q5_K_BYTES : 16 * Q4_K_BYTES;
  const char *pf = (const char *)grp + K16_PREFETCH_BYTES;
  __m512 lane[8][K16_MAX_TOK];
  for (int c8 = 0; c8 < 8; c8++) {
    __m512 f[K16_MAX_TOK];
    for (int t = 0; t < NT; t++) f[t] = _mm512_setzero_ps();
    for (int b = c8; b < nb; b += 8) {
      const uint8_t *p = grp + (size_t)b * bb;
      const __m512 dw = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)p));
      const __m512 dm = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(p + 32)));
      __m512i scv[2], mv[2];
      k16_scales(p, scv, mv);
      const __m512i sc_lo = scv[0], sc_hi = scv[1], m_lo = mv[0], m_hi = mv[1];
      __m512i sumi[K16_MAX_TOK];
      for (int t = 0; t < NT; t++) sumi[t] = _mm512_setzero_si512();
      for (int j = 0; j < 8; j++) {
        for (int i = 0; i < bb / 8; i += 64) _mm_prefetch(pf + i, _MM_HINT_T1); /* an eighth of the super-block */
        pf += bb / 8;
        const __m512i sc = byte_lane(j < 4 ? sc_lo : sc_hi, j & 3);
        __m512i wv[8];
        k16_quants(p, j, Q5, wv);
        for (int t = 0; t < NT; t++) {
          const int32_t *xq = (const int32_t *)(a[t].q + (size_t)b * BF_QK_K + 32 * j);
          __m512i s0 = _mm512_setzero_si512();
#define K16_DP(k) __asm__("vpdpbusd " #k "*4(%[q])%{1to16%}, %[w], %[acc]" : [acc] "+v"(s0) : [w] "v"(wv[k]), [q] "r"(xq), "m"(*(const int32_t(*)[8])xq))
          K16_DP(0); K16_DP(1); K16_DP(2); K16_DP(3); K16_DP(4); K16_DP(5); K16_DP(6); K16_DP(7);
#undef K16_DP
          sumi[t] = _mm512_add_epi32(sumi[t], _mm512_mullo_epi32(s0, sc));
        }
      }
      for (int t = 0; t < NT; t++) {
        const int32_t *h = hl + ((size_t)t * nb + b) * 4;
        __m512i hs = _mm512_dpbusd_epi32(_mm512_setzero_si512(), m_lo, _mm512_set1_epi32(h[0]));
        __m512i ls = _mm512_dpbusd_epi32(_mm512_setzero_si512(), m_lo, _mm512_set1_epi32(h[2]));
        hs = _mm512_dpbusd_epi32(hs, m_hi, _mm512_set1_epi32(h[1]));
        ls = _mm512_dpbusd_epi32(ls, m_hi, _mm512_set1_epi32(h[3]));
        const __m512i summins = _mm512_add_epi32(_mm512_slli_epi32(hs, 7), ls);
        const __m512 dx = _mm512_set1_ps(a[t].d[b]);
        const __m512 v = _mm512_sub_ps(_mm512_mul_ps(_mm512_mul_ps(dw, dx), _mm512_cvtepi32_ps(sumi[t])),
                                       _mm512_mul_ps(_mm512_mul_ps(dm, dx), _mm512_cvtepi32_ps(summins)));
        f[t] = _mm512_add_ps(f[t], v);
      }
    }
    for (int t = 0; t < NT; t++) lane[c8][t] = f[t];
  }
  for (int t = 0; t < NT; t++) bf_x16_fold_store(&lane[0][t], K16_MAX_TOK, out + t * rows);
}

/* 16 rows of a group → the AMX path's unpacked copy (amx.c unpack_k4's output): int8 quants in element order (row m
 * at dst + m·cols), sc[(b·8 + j)·16 + m], mn[(b·4 + j)·16 + m] = m_2j | m_2j+1 << 16, dw / dmin[b·16 + m] */
void bf_x16_unpack_k(const uint8_t *grp, int q5, int nb, int cols, int8_t *dst, int32_t *sc, int32_t *mn, float *dw, float *dmin) {
  const __m512i ff = _mm512_set1_epi32(0xff);
  const size_t bb = 16 * (size_t)(q5 ? Q5_K_BYTES : Q4_K_BYTES);
  _Alignas(64) int32_t tmp[8][16];
  for (int b = 0; b < nb; b++) {
    const uint8_t *p = grp + (size_t)b * bb;
    _mm512_store_ps(dw + (size_t)b * 16, _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)p)));
    _mm512_store_ps(dmin + (size_t)b * 16, _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(p + 32))));
    __m512i scv[2], mv[2];
    k16_scales(p, scv, mv);
    const __m512i sc_lo = scv[0], sc_hi = scv[1], m_lo = mv[0], m_hi = mv[1];
    for (int j = 0; j < 8; j++) _mm512_store_si512((void *)(sc + ((size_t)b * 8 + j) * 16), byte_lane(j < 4 ? sc_lo : sc_hi, j & 3));
    for (int j = 0; j < 4; j++) {
      const __m512i v = _mm512_srli_epi32(j < 2 ? m_lo : m_hi, 16 * (j & 1)); /* bytes m_2j, m_2j+1 at 0 and 8 */
      _mm512_store_si512((void *)(mn + ((size_t)b * 4 + j) * 16),
                         _mm512_or_si512(_mm512_and_si512(v, ff), _mm512_slli_epi32(_mm512_and_si512(_mm512_srli_epi32(v, 8), ff), 16)));
    }
    for (int j = 0; j < 8; j++) {
      __m512i wv[8];
      if (q5) k16_quants(p, j, 1, wv);
      else k16_quants(p, j, 0, wv);
      for (int k = 0; k < 8; k++) _mm512_store_si512((void *)tmp[k], wv[k]);
      bf_x16_lanes_to_rows((const int32_t(*)[16])tmp, dst + (size_t)b * BF_QK_K + 32 * j, (size_t)cols);
    }
  }
}

#define K16_CASE(N)                                                                                               \
  case N:                                                                                                         \
    for (int64_t g = g0; g < g1; g++) {                                                                           \
      float *o = job->out + 16 * g + t0 * job->rows;                                                              \
      if (q5) k16_group(job->w + (size_t)g * gb, a, hl, N, 1, nb, o, job->rows);                                 \
      else k16_group(job->w + (size_t)g * gb, a, hl, N, 0, nb, o, job->rows);                                    \
    }                                                                                                             \
    break;

size_t bf_x16_prep_ints_k(const bf_matmul_job *job) { return (size_t)(job->type == BF_Q6_K ? 16 : 4) * (size_t)(job->cols / BF_QK_K); }

void bf_x16_prep_k(const bf_matmul_job *job, int64_t t, int32_t *dst) {
  const int nb = (int)(job->cols / BF_QK_K);
  const bf_act_row a = bf_act_row_at(job->acts, t);
  if (job->type == BF_Q6_K) {
    for (int i = 0; i < 16 * nb; i++) dst[i] = -32 * a.sums[i];
  } else {
    k16_min_parts(&a, nb, dst);
  }
}

void bf_x16_groups_q4_k(const bf_matmul_job *job, int64_t t0, int nt, int64_t g0, int64_t g1, const int32_t *hl) {
  const int nb = (int)(job->cols / BF_QK_K), q5 = job->type == BF_Q5_K;
  const size_t gb = 16 * job->row_bytes;
  bf_act_row a[K16_MAX_TOK];
  for (int t = 0; t < nt; t++) a[t] = bf_act_row_at(job->acts, t0 + t);
  switch (nt) { K16_CASE(1) K16_CASE(2) K16_CASE(3) K16_CASE(4) K16_CASE(5) K16_CASE(6) K16_CASE(7) default: break; }
}

#endif

/*
 * Q6_K (docs/kernels.md "Integer super-blocks"). Per super-block b of a 16-row group, 3360 bytes (16 × 210):
 *   0     the 16 rows' F16 d
 *   32    S_0..S_3: lane r of S_k = scales 4k..4k+3 of row r (int8, one per 16 elements)
 *   288   L_{n,k} (n = 0..1, k = 0..15) at 288 + 64·(16n + k): lane r = ql bytes 64n + 4k .. +3 of row r
 *   2336  H_{n,k} (n = 0..1, k = 0..7) at 2336 + 64·(8n + k): lane r = qh bytes 32n + 4k .. +3 of row r
 * Elements 128n + 32qq + 4k .. +3 (qq = 0..3, k = 0..7) are the nibble (low for qq < 2, high otherwise) of
 * L_{n, k + 8·(qq & 1)} plus bits 2qq, 2qq+1 of H_{n,k} as bits 4, 5: u = q + 32 in 0..63. Per token and 16-element
 * sub-block j, VPDPBUSD sums start from −32·bsums_j, so s_j = Σ (u − 32)·x exactly; sumi = Σ_j sc_j·s_j (VPMULLD,
 * exact int32), then v_b = f32(f32(d_w·d_x)·f32(sumi)) and acc[b % 8] as for the other types: the bits of
 * bf_dot_q6_k_scalar.
 */
#define Q6X_BYTES (16 * Q6_K_BYTES) /* 3360 */

#ifdef BF_AVX512_QUANT

/* sign-extended int8 scale j of each row lane (S = the 4 scale vectors) */
AI __m512i q6x_scale(const __m512i S[4], int j) {
  return _mm512_srai_epi32(_mm512_slli_epi32(S[j >> 2], 24 - 8 * (j & 3)), 24);
}

/* u = q + 32 (0..63) of elements 128n + 32qq + 4k.. for k = 0..7 of 16 rows */
AI void q6x_unpack(const uint8_t *p, int n, int qq, __m512i u[8]) {
  const __m512i m4 = _mm512_set1_epi8(0x0f);
  const __m512i hmask = _mm512_set1_epi8((char)(0x03 << (2 * qq)));
  for (int k = 0; k < 8; k++) {
    const __m512i l = _mm512_loadu_si512((const void *)(p + 288 + 64 * (16 * n + k + 8 * (qq & 1))));
    const __m512i h = _mm512_and_si512(_mm512_loadu_si512((const void *)(p + 2336 + 64 * (8 * n + k))), hmask);
    const __m512i nib = qq < 2 ? _mm512_and_si512(l, m4) : bf_hi_nibbles(l);
    /* the two high bits to bits 4, 5 of each byte (16-bit shifts cannot carry across bytes: the bits stay in 2..7) */
    const __m512i hb = qq == 0 ? _mm512_slli_epi16(h, 4) : qq == 1 ? _mm512_slli_epi16(h, 2) : qq == 2 ? h : _mm512_srli_epi16(h, 2);
    u[k] = _mm512_or_si512(nib, hb);
  }
}

/* One group of 16 rows × NT tokens → out[t·rows + 0..15]; bias[(t·nb + b)·16 + j] = −32·bsums_j */
AI void q6x_group(const uint8_t *grp, const bf_act_row *a, const int32_t *bias, int NT, int nb, float *out, int64_t rows) {
  const char *pf = (const char *)grp + K16_PREFETCH_BYTES;
  __m512 lane[8][K16_MAX_TOK];
  for (int c8 = 0; c8 < 8; c8++) {
    __m512 f[K16_MAX_TOK];
    for (int t = 0; t < NT; t++) f[t] = _mm512_setzero_ps();
    for (int b = c8; b < nb; b += 8) {
      const uint8_t *p = grp + (size_t)b * Q6X_BYTES;
      const __m512 dw = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)p));
      __m512i S[4];
      for (int k = 0; k < 4; k++) S[k] = _mm512_loadu_si512((const void *)(p + 32 + 64 * k));
      __m512i sumi[K16_MAX_TOK];
      for (int t = 0; t < NT; t++) sumi[t] = _mm512_setzero_si512();
      for (int n = 0; n < 2; n++)
        for (int qq = 0; qq < 4; qq++) {
          for (int i = 0; i < 448; i += 64) _mm_prefetch(pf + i, _MM_HINT_T1); /* 8 × 420 ≈ the super-block's 3360 bytes */
          pf += 420;
          __m512i u[8];
          q6x_unpack(p, n, qq, u);
          const int j = 8 * n + 2 * qq;
          const __m512i sc0 = q6x_scale(S, j), sc1 = q6x_scale(S, j + 1);
          for (int t = 0; t < NT; t++) {
            const int32_t *xq = (const int32_t *)(a[t].q + (size_t)b * BF_QK_K + 128 * n + 32 * qq);
            const int32_t *bi = bias + ((size_t)t * nb + b) * 16 + j;
            __m512i s0 = _mm512_set1_epi32(bi[0]), s1 = _mm512_set1_epi32(bi[1]);
#define Q6X_DP(acc, k) __asm__("vpdpbusd " #k "*4(%[q])%{1to16%}, %[w], %[s]" : [s] "+v"(acc) : [w] "v"(u[k]), [q] "r"(xq), "m"(*(const int32_t(*)[8])xq))
            Q6X_DP(s0, 0); Q6X_DP(s0, 1); Q6X_DP(s0, 2); Q6X_DP(s0, 3);
            Q6X_DP(s1, 4); Q6X_DP(s1, 5); Q6X_DP(s1, 6); Q6X_DP(s1, 7);
#undef Q6X_DP
            sumi[t] = _mm512_add_epi32(sumi[t], _mm512_add_epi32(_mm512_mullo_epi32(s0, sc0), _mm512_mullo_epi32(s1, sc1)));
          }
        }
      for (int t = 0; t < NT; t++) {
        const __m512 s = _mm512_mul_ps(dw, _mm512_set1_ps(a[t].d[b]));
        f[t] = _mm512_add_ps(f[t], _mm512_mul_ps(s, _mm512_cvtepi32_ps(sumi[t])));
      }
    }
    for (int t = 0; t < NT; t++) lane[c8][t] = f[t];
  }
  for (int t = 0; t < NT; t++) bf_x16_fold_store(&lane[0][t], K16_MAX_TOK, out + t * rows);
}

/* 16 rows of a group → the AMX path's unpacked copy (amx.c unpack_q6's output): u = q + 32 in element order (row m at
 * dst + m·cols), sc[(b·16 + j)·16 + m] (int32), dw[b·16 + m] */
void bf_x16_unpack_q6_k(const uint8_t *grp, int nb, int cols, int8_t *dst, int32_t *sc, float *dw) {
  _Alignas(64) int32_t tmp[8][16];
  for (int b = 0; b < nb; b++) {
    const uint8_t *p = grp + (size_t)b * Q6X_BYTES;
    _mm512_store_ps(dw + (size_t)b * 16, _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)p)));
    __m512i S[4];
    for (int k = 0; k < 4; k++) S[k] = _mm512_loadu_si512((const void *)(p + 32 + 64 * k));
    for (int j = 0; j < 16; j++) _mm512_store_si512((void *)(sc + ((size_t)b * 16 + j) * 16), q6x_scale(S, j));
    for (int n = 0; n < 2; n++)
      for (int qq = 0; qq < 4; qq++) {
        __m512i u[8];
        q6x_unpack(p, n, qq, u);
        for (int k = 0; k < 8; k++) _mm512_store_si512((void *)tmp[k], u[k]);
        bf_x16_lanes_to_rows((const int32_t(*)[16])tmp, dst + (size_t)b * BF_QK_K + 128 * n + 32 * qq, (size_t)cols);
      }
  }
}

#define Q6X_CASE(N) case N: for (int64_t g = g0; g < g1; g++) q6x_group(job->w + (size_t)g * gb, a, bias, N, nb, job->out + 16 * g + t0 * job->rows, job->rows); break;

void bf_x16_groups_q6_k(const bf_matmul_job *job, int64_t t0, int nt, int64_t g0, int64_t g1, const int32_t *bias) {
  const int nb = (int)(job->cols / BF_QK_K);
  const size_t gb = 16 * job->row_bytes;
  bf_act_row a[K16_MAX_TOK];
  for (int t = 0; t < nt; t++) a[t] = bf_act_row_at(job->acts, t0 + t);
  switch (nt) { Q6X_CASE(1) Q6X_CASE(2) Q6X_CASE(3) Q6X_CASE(4) Q6X_CASE(5) Q6X_CASE(6) Q6X_CASE(7) default: break; }
}

#endif
