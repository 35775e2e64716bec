/*
 * Attention, SwiGLU and exp (docs/kernels.md "Attention", "SwiGLU", "exp"). The portable C path is a line-by-line
 * transcription of the TypeScript kernels (src/engine/kernels/ts.ts). The AVX-512 path performs the same IEEE
 * operations on every element, only several independent elements at a time:
 *  - q·k: lanes are 8 *positions* (never dimensions): each lane runs its own double sum over d in order, so 8 key
 *    rows are transposed (as floats, 16 columns per 24 shuffles) into a small buffer first, and each column is
 *    converted to double as the sums load it.
 *  - q·k and Σ w·v use fused multiply-add on doubles. That is exact here, not a contraction: both factors are
 *    float32 values, so their product has at most 48 significant bits and is exact in double; fma(a, b, c) =
 *    round(a·b + c) = round(round(a·b) + c), which is the separate multiply and add of the contract.
 *  - Σ w·v: lanes are 8 output dimensions, each its own sum over positions in order.
 * The heads of a GQA group share work that does not touch any result: the transposed and converted keys and the
 * double conversion of each value row (up to 4 heads per pass over them). A software prefetch cursor runs a few
 * rows ahead of the reads (see pf_row): in the model the caches come from DRAM.
 */
#include "attention.h"

#include "bf_exp.h"

#include <math.h>

#define AI static inline __attribute__((always_inline))

#if defined(__AVX512F__) && defined(__AVX512VL__)
#define BF_ATTN_AVX512 1
#endif

/* blocks of 8 positions per q·k step on the AVX-512 path (half as many when a group has more than 2 heads) */
#define QK_MAX_BLOCKS 8
#define QK_STEP (8 * QK_MAX_BLOCKS)

/* Query tokens per block when tokens of a thread's range read the same cache (a prefill): see block_avx512 */
#define QB 8

static inline int imin(int a, int b) { return a < b ? a : b; }
static size_t round64(size_t n) { return (n + 63) & ~(size_t)63; }
static size_t score_stride(int max_pos) { return ((size_t)max_pos + QK_STEP - 1) / QK_STEP * QK_STEP; }

size_t bf_attention_scratch_bytes(int n_heads, int n_kv_heads, int head_dim, int max_pos) {
  const size_t group = (size_t)(n_heads / n_kv_heads), hd = (size_t)head_dim;
  return round64(QB * group * score_stride(max_pos) * sizeof(float)) /* scores, then weights, per token and head */
         + round64(QK_MAX_BLOCKS * 8 * hd * sizeof(float))       /* transposed keys (AVX-512) */
         + round64(QB * group * hd * sizeof(double))             /* q of the block's tokens as doubles */
         + round64(hd * sizeof(double))                           /* Σ w·v accumulators (portable path) */
         + round64(group * sizeof(double));                       /* softmax sums */
}

typedef struct {
  float *scores;
  float *kt;
  double *qd;
  double *acc;
  double *sums;
  size_t stride;
} scratch_t;

static scratch_t carve(const bf_attention_job *J, uint8_t *s) {
  const size_t group = (size_t)(J->n_heads / J->n_kv_heads), hd = (size_t)J->head_dim;
  scratch_t r;
  r.stride = score_stride(J->max_pos);
  r.scores = (float *)s;
  s += round64(QB * group * r.stride * sizeof(float));
  r.kt = (float *)s;
  s += round64(QK_MAX_BLOCKS * 8 * hd * sizeof(float));
  r.qd = (double *)s;
  s += round64(QB * group * hd * sizeof(double));
  r.acc = (double *)s;
  s += round64(hd * sizeof(double));
  r.sums = (double *)s;
  return r;
}

/* ---------------- portable path ---------------- */

/* s_p = f32(f32(Σ_d q_d·k_pd) · scale), the sum in double in d order. Four positions at a time only to give the
 * CPU four independent chains; each chain is the sequential sum of the contract. */
static void scores_scalar(const float *qh, const float *k, int64_t kv_dim, int hd, int np, float scale, float *s) {
  int p = 0;
  for (; p + 4 <= np; p += 4) {
    const float *k0 = k + (int64_t)p * kv_dim, *k1 = k0 + kv_dim, *k2 = k1 + kv_dim, *k3 = k2 + kv_dim;
    double d0 = 0, d1 = 0, d2 = 0, d3 = 0;
    for (int d = 0; d < hd; d++) {
      const double qv = qh[d];
      d0 += qv * (double)k0[d];
      d1 += qv * (double)k1[d];
      d2 += qv * (double)k2[d];
      d3 += qv * (double)k3[d];
    }
    s[p] = (float)d0 * scale;
    s[p + 1] = (float)d1 * scale;
    s[p + 2] = (float)d2 * scale;
    s[p + 3] = (float)d3 * scale;
  }
  for (; p < np; p++) {
    const float *kp = k + (int64_t)p * kv_dim;
    double dot = 0;
    for (int d = 0; d < hd; d++) dot += (double)qh[d] * (double)kp[d];
    s[p] = (float)dot * scale;
  }
}

/* Softmax weights in place: e_p = bf_expf(f32(s_p − max)), sum in double in order, w_p = f32(e_p · (1/sum)). */
static void softmax_scalar(float *s, int np) {
  float max = -__builtin_inff();
  for (int p = 0; p < np; p++)
    if (s[p] > max) max = s[p];
  double sum = 0;
  for (int p = 0; p < np; p++) {
    const float e = bf_expf(s[p] - max);
    s[p] = e;
    sum += e;
  }
  const double inv = 1.0 / sum;
  for (int p = 0; p < np; p++) s[p] = (float)((double)s[p] * inv);
}

static void weighted_sum_scalar(const float *w, const float *v, int64_t kv_dim, int hd, int np, double *acc, float *out) {
  for (int d = 0; d < hd; d++) acc[d] = 0;
  for (int p = 0; p < np; p++) {
    const double wp = w[p];
    const float *vp = v + (int64_t)p * kv_dim;
    for (int d = 0; d < hd; d++) acc[d] += wp * (double)vp[d];
  }
  for (int d = 0; d < hd; d++) out[d] = (float)acc[d];
}

static void item_scalar(const bf_attention_job *J, int64_t t, int g, const scratch_t *S) {
  const int group = J->n_heads / J->n_kv_heads, hd = J->head_dim, np = J->n_pos[t];
  const int64_t kv_dim = (int64_t)J->n_kv_heads * hd, q_dim = (int64_t)J->n_heads * hd;
  const float *k = J->keys[t] + (int64_t)g * hd, *v = J->values[t] + (int64_t)g * hd;
  for (int h = 0; h < group; h++) {
    const int64_t off = t * q_dim + (int64_t)(g * group + h) * hd;
    float *s = S->scores + (size_t)h * S->stride;
    scores_scalar(J->q + off, k, kv_dim, hd, np, J->scale, s);
    softmax_scalar(s, np);
    weighted_sum_scalar(s, v, kv_dim, hd, np, S->acc, J->out + off);
  }
}

/* ---------------- AVX-512 path ---------------- */

#ifdef BF_ATTN_AVX512
#include <immintrin.h>
#include "transpose.h"

/*
 * Software prefetch. In a decode step a layer's caches come from DRAM: the rest of the step (every other layer's
 * weights and caches, ~180 MB at 16 sequences of the medium model) evicted them. With demand loads alone an item
 * alternated between waiting for rows and computing on them, so in the model the kernel took about the sum of its
 * memory time and its compute time (~2.3x its cache-hot time). A cursor walks the rows in the order the thread
 * reads them (item by item: its keys, then its values), PF_LEAD_ROWS rows ahead and one row per row consumed, so
 * the misses are spread over the computation. Longer leads were not faster: software prefetches occupy the core's
 * few line-fill buffers until the line arrives.
 */
#define PF_LEAD_ROWS 8

typedef struct {
  const bf_attention_job *job;
  int64_t item, end; /* the item being prefetched; the thread's range ends at `end` */
  const char *base;  /* keys or values of that item's KV head */
  int64_t stride;    /* bytes between positions */
  int row, n_rows, values, row_bytes;
} pf_cursor;

static void pf_item(pf_cursor *c) {
  const bf_attention_job *J = c->job;
  c->row = 0;
  c->values = 0;
  if (c->item >= c->end) { c->n_rows = 0; return; }
  const int64_t t = c->item / J->n_kv_heads;
  const int g = (int)(c->item % J->n_kv_heads);
  c->base = (const char *)(J->keys[t] + (int64_t)g * J->head_dim);
  c->n_rows = J->n_pos[t];
}

static pf_cursor pf_start(const bf_attention_job *J, int64_t begin, int64_t end) {
  pf_cursor c;
  c.job = J;
  c.item = begin;
  c.end = end;
  c.stride = (int64_t)J->n_kv_heads * J->head_dim * 4;
  c.row_bytes = J->head_dim * 4;
  pf_item(&c);
  return c;
}

/* Prefetch the cursor's next row and move on (to the values after the keys, then to the next item). */
AI void pf_row(pf_cursor *c) {
  while (c->row >= c->n_rows) {
    if (c->item >= c->end) return;
    if (!c->values) {
      const bf_attention_job *J = c->job;
      const int64_t t = c->item / J->n_kv_heads;
      const int g = (int)(c->item % J->n_kv_heads);
      c->base = (const char *)(J->values[t] + (int64_t)g * J->head_dim);
      c->values = 1;
      c->row = 0;
    } else {
      c->item++;
      pf_item(c);
    }
  }
  const char *r = c->base + (int64_t)c->row * c->stride;
  for (int o = 0; o < c->row_bytes; o += 64) _mm_prefetch(r + o, _MM_HINT_T0);
  _mm_prefetch(r + c->row_bytes - 1, _MM_HINT_T0); /* rows need not start on a cache line */
  c->row++;
}

/* Columns d..d+15 of 8 rows into dst[c][8] (c = 0..15, row j in lane j): 24 in-register shuffles for 128 floats.
 * The keys stay float here; q·k converts each column to double as it loads it. */
AI void transpose8x16(const float *const rows[8], int d, float *dst) {
  __m512 z[8];
  for (int j = 0; j < 8; j++) z[j] = _mm512_loadu_ps(rows[j] + d);
  /* per 128-bit lane L (columns 4L..4L+3): pairs of rows interleaved, then quads */
  __m512 t[8], u[8];
  for (int i = 0; i < 4; i++) {
    t[2 * i] = _mm512_unpacklo_ps(z[2 * i], z[2 * i + 1]);     /* r0c0 r1c0 r0c1 r1c1 */
    t[2 * i + 1] = _mm512_unpackhi_ps(z[2 * i], z[2 * i + 1]); /* r0c2 r1c2 r0c3 r1c3 */
  }
  for (int i = 0; i < 2; i++) { /* rows 4i..4i+3 */
    const __m512d a0 = _mm512_castps_pd(t[4 * i]), a1 = _mm512_castps_pd(t[4 * i + 1]);
    const __m512d b0 = _mm512_castps_pd(t[4 * i + 2]), b1 = _mm512_castps_pd(t[4 * i + 3]);
    u[4 * i + 0] = _mm512_castpd_ps(_mm512_unpacklo_pd(a0, b0)); /* lane L: rows 4i..4i+3 of column 4L */
    u[4 * i + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(a0, b0)); /* column 4L+1 */
    u[4 * i + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(a1, b1)); /* column 4L+2 */
    u[4 * i + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(a1, b1)); /* column 4L+3 */
  }
  const __m512i lo = _mm512_setr_epi64(0, 1, 8, 9, 2, 3, 10, 11), hi = _mm512_setr_epi64(4, 5, 12, 13, 6, 7, 14, 15);
  for (int c = 0; c < 4; c++) {
    const __m512d a = _mm512_castps_pd(u[c]), b = _mm512_castps_pd(u[4 + c]);
    const __m512 x = _mm512_castpd_ps(_mm512_permutex2var_pd(a, lo, b)); /* columns c | c+4 */
    const __m512 y = _mm512_castpd_ps(_mm512_permutex2var_pd(a, hi, b)); /* columns c+8 | c+12 */
    _mm256_store_ps(dst + 8 * c, _mm512_castps512_ps256(x));
    _mm256_store_ps(dst + 8 * (c + 4), _mm512_extractf32x8_ps(x, 1));
    _mm256_store_ps(dst + 8 * (c + 8), _mm512_castps512_ps256(y));
    _mm256_store_ps(dst + 8 * (c + 12), _mm512_extractf32x8_ps(y, 1));
  }
}

/* Columns d..d+7 of 8 rows into dst[c][8]. */
AI void transpose8x8(const float *const rows[8], int d, float *dst) {
  __m256 c[8];
  bf_transpose8x8_ps(rows, d, c);
  for (int i = 0; i < 8; i++) _mm256_store_ps(dst + 8 * i, c[i]);
}

/* Keys of positions p0 .. p0+7 (rows past np repeat row np−1; their lanes are never stored) into kt[d][lane]. */
static void transpose_block(const float *k, int64_t kv_dim, int hd, int p0, int np, float *kt, pf_cursor *pf) {
  if (pf) /* NULL: no cursor (block_avx512) */
    for (int j = p0; j < p0 + 8 && j < np; j++) pf_row(pf);
  const float *rows[8];
  for (int j = 0; j < 8; j++) rows[j] = k + (int64_t)(p0 + j < np ? p0 + j : np - 1) * kv_dim;
  int d = 0;
  for (; d + 16 <= hd; d += 16) transpose8x16(rows, d, kt + (size_t)d * 8);
  for (; d + 8 <= hd; d += 8) transpose8x8(rows, d, kt + (size_t)d * 8);
  for (; d < hd; d++)
    for (int j = 0; j < 8; j++) kt[(size_t)d * 8 + j] = rows[j][d];
}

/* nh heads (≤ 4) × nb blocks of 8 positions: acc[h][b] = Σ_d q_{h,d}·k_{b,d} lane-wise (d in order), then
 * f32(f32(acc)·scale). The heads share every key conversion; nh·nb independent add chains hide the FMA latency. */
AI void qk_heads(const double *qd, const float *kt, int hd, int nh, int nb, float scale, float *s, size_t sstride) {
  __m512d acc[4][QK_MAX_BLOCKS];
  for (int h = 0; h < nh; h++)
    for (int b = 0; b < nb; b++) acc[h][b] = _mm512_setzero_pd();
  const size_t bstride = (size_t)hd * 8;
  for (int d = 0; d < hd; d++) {
    __m512d k[QK_MAX_BLOCKS];
    for (int b = 0; b < nb; b++) k[b] = _mm512_cvtps_pd(_mm256_load_ps(kt + b * bstride + (size_t)d * 8));
    for (int h = 0; h < nh; h++) {
      const __m512d qv = _mm512_set1_pd(qd[(size_t)h * hd + d]);
      for (int b = 0; b < nb; b++) acc[h][b] = _mm512_fmadd_pd(qv, k[b], acc[h][b]);
    }
  }
  const __m256 sc = _mm256_set1_ps(scale);
  for (int h = 0; h < nh; h++)
    for (int b = 0; b < nb; b++) _mm256_storeu_ps(s + h * sstride + 8 * b, _mm256_mul_ps(_mm512_cvtpd_ps(acc[h][b]), sc));
}

#define QK_CASE(NH, NB) \
  case NH * 16 + NB: qk_heads(qd, kt, hd, NH, NB, scale, s, stride); break;

/* Scores of a group's heads (q as doubles at qd0, head_dim apart; scores at s0, stride apart) for the nb transposed
 * key blocks in kt, 4 heads per pass */
static void qk_group(const double *qd0, const float *kt, int hd, int group, int nb, float scale, float *s0, size_t stride) {
  for (int h = 0; h < group; h += 4) {
    const int nh = imin(4, group - h);
    const double *qd = qd0 + (size_t)h * hd;
    float *s = s0 + (size_t)h * stride;
    switch (nh * 16 + nb) { /* constant counts keep the accumulators in registers */
      QK_CASE(1, 1) QK_CASE(1, 2) QK_CASE(1, 3) QK_CASE(1, 4) QK_CASE(1, 5) QK_CASE(1, 6) QK_CASE(1, 7) QK_CASE(1, 8)
      QK_CASE(2, 1) QK_CASE(2, 2) QK_CASE(2, 3) QK_CASE(2, 4) QK_CASE(2, 5) QK_CASE(2, 6) QK_CASE(2, 7) QK_CASE(2, 8)
      QK_CASE(3, 1) QK_CASE(3, 2) QK_CASE(3, 3) QK_CASE(3, 4)
      QK_CASE(4, 1) QK_CASE(4, 2) QK_CASE(4, 3)
      default: qk_heads(qd, kt, hd, 4, 4, scale, s, stride); break;
    }
  }
}

/* Scores of the group's heads for positions [0, np): per step, the keys of up to `blocks` blocks of 8 positions
 * are transposed once and used by every head. */
static void scores_avx512(const bf_attention_job *J, const float *k, int64_t kv_dim, int np, int group,
                          const scratch_t *S, pf_cursor *pf) {
  const int hd = J->head_dim;
  const int blocks = group <= 2 ? QK_MAX_BLOCKS : QK_MAX_BLOCKS / 2; /* ≥ 8 chains, ≤ 16 accumulators */
  const int step = 8 * blocks;
  for (int p0 = 0; p0 < np; p0 += step) {
    const int nb = imin(blocks, (np - p0 + 7) / 8);
    for (int b = 0; b < nb; b++) transpose_block(k, kv_dim, hd, p0 + 8 * b, np, S->kt + (size_t)b * hd * 8, pf);
    qk_group(S->qd, S->kt, hd, group, nb, J->scale, S->scores + p0, S->stride); /* stride: a multiple of QK_STEP */
  }
}

static __mmask16 tail16(int n) { return n >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << n) - 1); }

/*
 * max by lanes: _mm512_max_ps(s, m) returns m when s is NaN, so NaN scores are skipped as the sequential
 * `if (s > max)` skips them. The lane order can only change the sign of a zero maximum, and that never changes a
 * result: s − (±0) = s for s ≠ 0, and for s = ±0 the difference is ±0, whose exp is 1 either way.
 */
static float max_avx512(const float *s, int np) {
  __m512 m = _mm512_set1_ps(-__builtin_inff());
  for (int p = 0; p < np; p += 16) {
    const __mmask16 k = tail16(np - p);
    m = _mm512_mask_max_ps(m, k, _mm512_maskz_loadu_ps(k, s + p), m);
  }
  return _mm512_reduce_max_ps(m);
}

/* e_p = bf_expf(f32(s_p − max)) in place, 16 at a time (lane-exact) */
static void exp_shifted_avx512(float *s, int np, float max) {
  const __m512 mv = _mm512_set1_ps(max);
  for (int p = 0; p < np; p += 16) {
    const __mmask16 k = tail16(np - p);
    _mm512_mask_storeu_ps(s + p, k, bf_expf16(_mm512_sub_ps(_mm512_maskz_loadu_ps(k, s + p), mv)));
  }
}

/* sums[h] = Σ_p e_{h,p} in double, positions in order, for nh (≤ 4) heads side by side in registers (independent
 * chains; kept out of memory so that no store-to-load forwarding sits in the chains) */
AI void exp_sums(const float *e, size_t stride, int np, int nh, double *sums) {
  double a[4] = {0, 0, 0, 0};
  for (int p = 0; p < np; p++)
    for (int h = 0; h < nh; h++) a[h] += (double)e[(size_t)h * stride + p];
  for (int h = 0; h < nh; h++) sums[h] = a[h];
}

/* w_p = f32(e_p · inv) in place (double product, one rounding to float, as the contract) */
static void normalize_avx512(float *s, int np, double inv) {
  const __m512d iv = _mm512_set1_pd(inv);
  for (int p = 0; p < np; p += 8) {
    const __mmask8 k = (__mmask8)(np - p >= 8 ? 0xff : (1u << (np - p)) - 1);
    const __m512d e = _mm512_cvtps_pd(_mm256_maskz_loadu_ps(k, s + p));
    _mm256_mask_storeu_ps(s + p, k, _mm512_cvtpd_ps(_mm512_mul_pd(e, iv)));
  }
}

/* Up to 4 heads × nv (≤ 4) vectors of 8 dimensions: out_h[d] = f32(Σ_p w_{h,p}·v_{p,d}), positions in order, one
 * accumulator per (head, vector). Each value vector is converted to double once for all the heads of the group. */
AI void wsum_heads(const float *const w[4], const float *v, int64_t kv_dim, int np, int nh, int nv, float *const out[4],
                   pf_cursor *pf) {
  __m512d acc[4][4];
  for (int h = 0; h < nh; h++)
    for (int i = 0; i < nv; i++) acc[h][i] = _mm512_setzero_pd();
  for (int p = 0; p < np; p++) {
    if (pf) pf_row(pf);
    const float *vp = v + (int64_t)p * kv_dim;
    __m512d x[4];
    for (int i = 0; i < nv; i++) x[i] = _mm512_cvtps_pd(_mm256_loadu_ps(vp + 8 * i));
    for (int h = 0; h < nh; h++) {
      const __m512d wp = _mm512_set1_pd((double)w[h][p]);
      for (int i = 0; i < nv; i++) acc[h][i] = _mm512_fmadd_pd(wp, x[i], acc[h][i]);
    }
  }
  for (int h = 0; h < nh; h++)
    for (int i = 0; i < nv; i++) _mm256_storeu_ps(out[h] + 8 * i, _mm512_cvtpd_ps(acc[h][i]));
}

#define WSUM_CASE(NH, NV) \
  case NH * 8 + NV: wsum_heads(w, v + d0, kv_dim, np, NH, NV, o, d0 == 0 ? pf : NULL); break;

/* Σ w·v for nh (≤ 4) heads that read the same KV head: 32 dimensions per pass, the head_dim % 8 tail in scalar. */
static void weighted_sum_avx512(const float *const w[4], const float *v, int64_t kv_dim, int hd, int np, int nh,
                                float *const out[4], pf_cursor *pf) {
  int d0 = 0;
  for (; d0 + 8 <= hd; ) {
    const int nv = (hd - d0) / 8 >= 4 ? 4 : (hd - d0) / 8;
    float *const o[4] = {out[0] + d0, out[nh > 1 ? 1 : 0] + d0, out[nh > 2 ? 2 : 0] + d0, out[nh > 3 ? 3 : 0] + d0};
    switch (nh * 8 + nv) {
      WSUM_CASE(4, 4) WSUM_CASE(4, 3) WSUM_CASE(4, 2) WSUM_CASE(4, 1)
      WSUM_CASE(3, 4) WSUM_CASE(3, 3) WSUM_CASE(3, 2) WSUM_CASE(3, 1)
      WSUM_CASE(2, 4) WSUM_CASE(2, 3) WSUM_CASE(2, 2) WSUM_CASE(2, 1)
      WSUM_CASE(1, 4) WSUM_CASE(1, 3) WSUM_CASE(1, 2)
      default: wsum_heads(w, v + d0, kv_dim, np, 1, 1, o, d0 == 0 ? pf : NULL); break;
    }
    d0 += 8 * nv;
  }
  for (int h = 0; h < nh; h++) {
    for (int d = d0; d < hd; d++) { /* the last head_dim % 8 dimensions */
      double a = 0;
      for (int p = 0; p < np; p++) a += (double)w[h][p] * (double)v[(int64_t)p * kv_dim + d];
      out[h][d] = (float)a;
    }
  }
}

/* Softmax of the group's score rows (sc, stride apart) in place: the weights of docs/kernels.md */
static void softmax_group(float *sc, size_t stride, int np, int group, double *sums) {
  for (int h = 0; h < group; h++) {
    float *s = sc + (size_t)h * stride;
    exp_shifted_avx512(s, np, max_avx512(s, np));
  }
  for (int h = 0; h < group; h += 4) {
    const float *e = sc + (size_t)h * stride;
    switch (imin(4, group - h)) {
      case 1: exp_sums(e, stride, np, 1, sums + h); break;
      case 2: exp_sums(e, stride, np, 2, sums + h); break;
      case 3: exp_sums(e, stride, np, 3, sums + h); break;
      default: exp_sums(e, stride, np, 4, sums + h); break;
    }
  }
  for (int h = 0; h < group; h++) normalize_avx512(sc + (size_t)h * stride, np, 1.0 / sums[h]);
}

/* Σ w·v of the group's heads (weights sc, stride apart) into out (head h at out + h·head_dim), 4 heads per pass */
static void wsum_group(const float *sc, size_t stride, const float *v, int64_t kv_dim, int hd, int np, int group,
                       float *out0, pf_cursor *pf) {
  for (int h = 0; h < group; h += 4) {
    const int nh = group - h >= 4 ? 4 : group - h;
    const float *w[4];
    float *out[4];
    for (int j = 0; j < 4; j++) {
      const int hh = h + (j < nh ? j : 0);
      w[j] = sc + (size_t)hh * stride;
      out[j] = out0 + (size_t)hh * hd;
    }
    weighted_sum_avx512(w, v, kv_dim, hd, np, nh, out, h == 0 ? pf : NULL);
  }
}

/* pf: the thread's prefetch cursor, PF_LEAD_ROWS rows ahead of this item's reads */
static void item_avx512(const bf_attention_job *J, int64_t t, int g, const scratch_t *S, pf_cursor *pf) {
  const int group = J->n_heads / J->n_kv_heads, hd = J->head_dim, np = J->n_pos[t];
  const int64_t kv_dim = (int64_t)J->n_kv_heads * hd, q_dim = (int64_t)J->n_heads * hd;
  const float *k = J->keys[t] + (int64_t)g * hd, *v = J->values[t] + (int64_t)g * hd;
  const float *q = J->q + t * q_dim + (int64_t)g * group * hd;
  const int n = group * hd;
  int i = 0;
  for (; i + 8 <= n; i += 8) _mm512_store_pd(S->qd + i, _mm512_cvtps_pd(_mm256_loadu_ps(q + i)));
  for (; i < n; i++) S->qd[i] = q[i];
  scores_avx512(J, k, kv_dim, np, group, S, pf);
  softmax_group(S->scores, S->stride, np, group, S->sums);
  wsum_group(S->scores, S->stride, v, kv_dim, hd, np, group, J->out + t * q_dim + (int64_t)g * group * hd, pf);
}

/* Tokens toks[0..nq) read the same cache (one sequence being prefilled) at KV head g. Per step of 8-position blocks
 * the keys are transposed once, and every token and head that attends them runs on that copy; softmax and Σ w·v per
 * token as in item_avx512. Every score and output is the same sequence of operations as item_avx512's. (`medium` Q4_0
 * prefill, 1 thread, attention per prefill: 128 tokens 12.0 → 9.5 ms, 512 tokens 169 → 137 ms.) */
static void block_avx512(const bf_attention_job *J, const int64_t *toks, int nq, int g, const scratch_t *S) {
  const int group = J->n_heads / J->n_kv_heads, hd = J->head_dim;
  const int64_t kv_dim = (int64_t)J->n_kv_heads * hd, q_dim = (int64_t)J->n_heads * hd;
  const float *k = J->keys[toks[0]] + (int64_t)g * hd, *v = J->values[toks[0]] + (int64_t)g * hd;
  int maxp = 0;
  for (int j = 0; j < nq; j++) {
    if (J->n_pos[toks[j]] > maxp) maxp = J->n_pos[toks[j]];
    const float *q = J->q + toks[j] * q_dim + (int64_t)g * group * hd;
    double *qd = S->qd + (size_t)j * group * hd;
    const int n = group * hd;
    int i = 0;
    for (; i + 8 <= n; i += 8) _mm512_storeu_pd(qd + i, _mm512_cvtps_pd(_mm256_loadu_ps(q + i)));
    for (; i < n; i++) qd[i] = q[i];
  }
  const int blocks = group <= 2 ? QK_MAX_BLOCKS : QK_MAX_BLOCKS / 2;
  for (int p0 = 0; p0 < maxp; p0 += 8 * blocks) {
    const int nbmax = imin(blocks, (maxp - p0 + 7) / 8);
    for (int b = 0; b < nbmax; b++) transpose_block(k, kv_dim, hd, p0 + 8 * b, maxp, S->kt + (size_t)b * hd * 8, NULL);
    for (int j = 0; j < nq; j++) {
      const int np = J->n_pos[toks[j]];
      if (np <= p0) continue;
      const int nb = imin(nbmax, (np - p0 + 7) / 8); /* lanes past np are never read */
      qk_group(S->qd + (size_t)j * group * hd, S->kt, hd, group, nb, J->scale,
               S->scores + (size_t)j * group * S->stride + p0, S->stride);
    }
  }
  for (int j = 0; j < nq; j++) {
    const int64_t t = toks[j];
    const int np = J->n_pos[t];
    float *const sc = S->scores + (size_t)j * group * S->stride;
    softmax_group(sc, S->stride, np, group, S->sums);
    wsum_group(sc, S->stride, v, kv_dim, hd, np, group, J->out + t * q_dim + (int64_t)g * group * hd, NULL);
  }
}

/* The AVX-512 path over a thread's items when neighbouring tokens read the same cache: KV head by KV head, runs of up
 * to QB tokens with the same cache go through block_avx512 together */
static void blocked_items(const bf_attention_job *J, int64_t begin, int64_t end, const scratch_t *S) {
  const int n_kv = J->n_kv_heads;
  const int64_t t_first = begin / n_kv, t_last = (end - 1) / n_kv;
  int64_t toks[QB];
  for (int g = 0; g < n_kv; g++) {
    int nq = 0;
    for (int64_t t = t_first; t <= t_last; t++) {
      const int64_t item = t * n_kv + g;
      const int in = item >= begin && item < end;
      if (nq && (!in || nq == QB || J->keys[t] != J->keys[toks[0]] || J->values[t] != J->values[toks[0]])) {
        block_avx512(J, toks, nq, g, S);
        nq = 0;
      }
      if (in) toks[nq++] = t;
    }
    if (nq) block_avx512(J, toks, nq, g, S);
  }
}

/* 1 if two neighbouring tokens of the thread's items read the same cache */
static int shares_caches(const bf_attention_job *J, int64_t begin, int64_t end) {
  for (int64_t t = begin / J->n_kv_heads + 1; t <= (end - 1) / J->n_kv_heads; t++)
    if (J->keys[t] == J->keys[t - 1]) return 1;
  return 0;
}
#endif

void bf_attention_items(const bf_attention_job *job, int64_t begin, int64_t end, uint8_t *scratch) {
  const scratch_t S = carve(job, scratch);
#ifdef BF_ATTN_AVX512
  if (!job->scalar && end > begin && shares_caches(job, begin, end)) {
    blocked_items(job, begin, end, &S);
    return;
  }
  pf_cursor pf = pf_start(job, begin, end);
  if (!job->scalar)
    for (int i = 0; i < PF_LEAD_ROWS; i++) pf_row(&pf);
#endif
  for (int64_t i = begin; i < end; i++) {
    const int64_t t = i / job->n_kv_heads;
    const int g = (int)(i % job->n_kv_heads);
#ifdef BF_ATTN_AVX512
    if (!job->scalar) {
      item_avx512(job, t, g, &S, &pf);
      continue;
    }
#endif
    item_scalar(job, t, g, &S);
  }
}

/* ---------------- SwiGLU and exp ---------------- */

void bf_swiglu(float *gate, const float *up, int64_t n, int scalar) {
  int64_t i = 0;
#if defined(__AVX512F__)
  if (!scalar) {
    const __m512i sign = _mm512_set1_epi32((int)0x80000000u);
    const __m512 one = _mm512_set1_ps(1.0f);
    for (; i + 16 <= n; i += 16) {
      const __m512 g = _mm512_loadu_ps(gate + i);
      const __m512 e = bf_expf16(_mm512_castsi512_ps(_mm512_xor_si512(_mm512_castps_si512(g), sign))); /* exp(−g) */
      _mm512_storeu_ps(gate + i, _mm512_mul_ps(_mm512_div_ps(g, _mm512_add_ps(one, e)), _mm512_loadu_ps(up + i)));
    }
  }
#elif defined(__AVX2__)
  if (!scalar) {
    const __m256 sign = _mm256_castsi256_ps(_mm256_set1_epi32((int)0x80000000u));
    const __m256 one = _mm256_set1_ps(1.0f);
    for (; i + 8 <= n; i += 8) {
      const __m256 g = _mm256_loadu_ps(gate + i);
      const __m256 e = bf_expf8(_mm256_xor_ps(g, sign));
      _mm256_storeu_ps(gate + i, _mm256_mul_ps(_mm256_div_ps(g, _mm256_add_ps(one, e)), _mm256_loadu_ps(up + i)));
    }
  }
#endif
  for (; i < n; i++) {
    const float g = gate[i];
    gate[i] = (g / (1.0f + bf_expf(-g))) * up[i];
  }
}

void bf_exp_array(float *out, const float *x, int64_t n, int scalar) {
  int64_t i = 0;
#if defined(__AVX512F__)
  if (!scalar)
    for (; i + 16 <= n; i += 16) _mm512_storeu_ps(out + i, bf_expf16(_mm512_loadu_ps(x + i)));
#elif defined(__AVX2__)
  if (!scalar)
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(out + i, bf_expf8(_mm256_loadu_ps(x + i)));
#endif
  for (; i < n; i++) out[i] = bf_expf(x[i]);
}
