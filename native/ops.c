/*
 * RMSNorm, residual/bias adds and RoPE (ops.h). The portable path transcribes src/engine/model/ops.ts operation by
 * operation (float arithmetic where ops.ts rounds with Math.fround, double where it keeps a JavaScript number;
 * compiled with -ffp-contract=off, so no fused multiply-add). The AVX-512 path does the same operations on
 * independent elements, 16 at a time, except for RMSNorm's sum of squares: that is one sequential double chain per
 * row, so there the lanes are rows (8 rows per vector, 16 per pass): the chains of different rows overlap instead
 * of one row's 4-cycle add latency setting the pace.
 */
#include "ops.h"

#include <math.h>

#if defined(__AVX512F__) && defined(__AVX512VL__)
#define BF_OPS_AVX512 1
#include <immintrin.h>
#include "transpose.h"
#endif

/* ops.ts rmsNorm from the sum of squares on: mean = fr(sum / n), scale = fr(1 / fr(sqrt(fr(mean + eps)))), where
 * every intermediate is a JavaScript number (double) rounded to float at each fr. */
static float rms_scale(double sum_sq, int dim, double eps) {
  const float mean = (float)(sum_sq / (double)dim);
  const float shifted = (float)((double)mean + eps);
  const float root = (float)sqrt((double)shifted);
  return (float)(1.0 / (double)root);
}

/* out[i] = fr(fr(x[i] · scale) · w[i]) */
static void scale_row(float *out, const float *x, const float *w, int dim, float scale, int scalar) {
  int i = 0;
#ifdef BF_OPS_AVX512
  if (!scalar) {
    const __m512 sc = _mm512_set1_ps(scale);
    for (; i + 16 <= dim; i += 16)
      _mm512_storeu_ps(out + i, _mm512_mul_ps(_mm512_mul_ps(_mm512_loadu_ps(x + i), sc), _mm512_loadu_ps(w + i)));
  }
#endif
  for (; i < dim; i++) out[i] = (x[i] * scale) * w[i];
}

/* Σ fr(v·v) in double, in index order (v·v of two equal floats is exact in double, so fr(v·v) = the float product) */
static double sum_squares(const float *x, int dim) {
  double s = 0;
  for (int i = 0; i < dim; i++) {
    const float sq = x[i] * x[i];
    s += (double)sq;
  }
  return s;
}

#ifdef BF_OPS_AVX512
/* sums[j] = Σ_i fr(x_ji²) for rows x_j (j < 8·n_groups, n_groups 1 or 2), each a chain in index order with row j in
 * lane j % 8 of group j / 8. Pointers of absent rows repeat a present row; their lanes are ignored. */
static inline __attribute__((always_inline)) void sum_squares_rows(const float *const rows[16], int n_groups, int dim,
                                                                   double sums[16]) {
  __m512d acc[2] = {_mm512_setzero_pd(), _mm512_setzero_pd()};
  int d = 0;
  for (; d + 8 <= dim; d += 8) {
    for (int g = 0; g < n_groups; g++) {
      __m256 c[8];
      bf_transpose8x8_ps(rows + 8 * g, d, c);
      for (int i = 0; i < 8; i++) acc[g] = _mm512_add_pd(acc[g], _mm512_cvtps_pd(_mm256_mul_ps(c[i], c[i])));
    }
  }
  for (int g = 0; g < n_groups; g++) _mm512_storeu_pd(sums + 8 * g, acc[g]);
  for (int j = 0; j < 8 * n_groups; j++) /* the dim % 8 tail continues each row's chain */
    for (int i = d; i < dim; i++) {
      const float sq = rows[j][i] * rows[j][i];
      sums[j] += (double)sq;
    }
}
#endif

void bf_rmsnorm_rows(float *out, const float *x, const float *weight, int64_t n_rows, int dim, double eps, int scalar) {
  int64_t r = 0;
#ifdef BF_OPS_AVX512
  if (!scalar) {
    for (; r < n_rows; r += 16) {
      const int64_t left = n_rows - r;
      const int n = left >= 16 ? 16 : (int)left;
      const float *rows[16];
      for (int j = 0; j < 16; j++) rows[j] = x + (r + (j < n ? j : n - 1)) * (int64_t)dim;
      double sums[16];
      if (n > 8) sum_squares_rows(rows, 2, dim, sums);
      else sum_squares_rows(rows, 1, dim, sums);
      /* every sum is complete before any row of out (which may be x) is written */
      for (int j = 0; j < n; j++)
        scale_row(out + (r + j) * (int64_t)dim, rows[j], weight, dim, rms_scale(sums[j], dim, eps), 0);
    }
    return;
  }
#endif
  for (; r < n_rows; r++) {
    const float *xr = x + r * (int64_t)dim;
    scale_row(out + r * (int64_t)dim, xr, weight, dim, rms_scale(sum_squares(xr, dim), dim, eps), scalar);
  }
}

void bf_add(float *a, const float *b, int64_t n, int scalar) {
  int64_t i = 0;
#ifdef BF_OPS_AVX512
  if (!scalar)
    for (; i + 16 <= n; i += 16) _mm512_storeu_ps(a + i, _mm512_add_ps(_mm512_loadu_ps(a + i), _mm512_loadu_ps(b + i)));
#endif
  for (; i < n; i++) a[i] = a[i] + b[i];
}

void bf_add_bias(float *a, const float *bias, int64_t rows, int64_t n, int scalar) {
  for (int64_t r = 0; r < rows; r++) bf_add(a + r * n, bias, n, scalar);
}

/* One head: x[a] = fr(fr(x0·c) − fr(x1·s)), x[b] = fr(fr(x0·s) + fr(x1·c)) for pairs i < half (ops.ts applyRope). */
static void rope_head_scalar(float *x, int half, const float *cs, const float *sn, int neox) {
  for (int i = 0; i < half; i++) {
    const int a = neox ? i : 2 * i, b = neox ? i + half : 2 * i + 1;
    const float x0 = x[a], x1 = x[b], c = cs[i], s = sn[i];
    x[a] = x0 * c - x1 * s;
    x[b] = x0 * s + x1 * c;
  }
}

#ifdef BF_OPS_AVX512
static inline int imin(int a, int b) { return a < b ? a : b; }
static __mmask16 tail16(int n) { return n >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << n) - 1); }

static void rope_neox_avx512(float *x, int half, const float *cs, const float *sn) {
  for (int i = 0; i < half; i += 16) {
    const __mmask16 k = tail16(half - i);
    const __m512 x0 = _mm512_maskz_loadu_ps(k, x + i), x1 = _mm512_maskz_loadu_ps(k, x + half + i);
    const __m512 c = _mm512_maskz_loadu_ps(k, cs + i), s = _mm512_maskz_loadu_ps(k, sn + i);
    _mm512_mask_storeu_ps(x + i, k, _mm512_sub_ps(_mm512_mul_ps(x0, c), _mm512_mul_ps(x1, s)));
    _mm512_mask_storeu_ps(x + half + i, k, _mm512_add_ps(_mm512_mul_ps(x0, s), _mm512_mul_ps(x1, c)));
  }
}

/* Interleaved pairs (2i, 2i + 1) of every head of one token, 8 pairs per vector: even lanes x0·c − x1·s, odd lanes
 * x1·c + x0·s (= x0·s + x1·c: IEEE addition is commutative). cos/sin are widened to one value per lane once per
 * 64 pairs and reused by every head. */
static void rope_pairs_avx512(float *x, int n_heads, int head_dim, int half, const float *cs, const float *sn) {
  const __m512i dup = _mm512_setr_epi32(0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7);
  for (int i0 = 0; i0 < half; i0 += 64) {
    const int nv = (imin(64, half - i0) + 7) / 8;
    __m512 c[8], s[8];
    __mmask16 k[8];
    for (int v = 0; v < nv; v++) {
      const int i = i0 + 8 * v, pairs = imin(8, half - i);
      const __mmask8 k8 = (__mmask8)((1u << pairs) - 1);
      k[v] = tail16(2 * pairs);
      c[v] = _mm512_permutexvar_ps(dup, _mm512_castps256_ps512(_mm256_maskz_loadu_ps(k8, cs + i)));
      s[v] = _mm512_permutexvar_ps(dup, _mm512_castps256_ps512(_mm256_maskz_loadu_ps(k8, sn + i)));
    }
    for (int h = 0; h < n_heads; h++) {
      float *xh = x + (int64_t)h * head_dim + 2 * i0;
      for (int v = 0; v < nv; v++) {
        const __m512 a = _mm512_maskz_loadu_ps(k[v], xh + 16 * v);
        const __m512 ac = _mm512_mul_ps(a, c[v]), bs = _mm512_mul_ps(_mm512_permute_ps(a, _MM_SHUFFLE(2, 3, 0, 1)), s[v]);
        _mm512_mask_storeu_ps(xh + 16 * v, k[v], _mm512_mask_blend_ps((__mmask16)0xaaaa, _mm512_sub_ps(ac, bs), _mm512_add_ps(ac, bs)));
      }
    }
  }
}
#endif

void bf_rope_rows(float *x, int64_t n_tok, int n_heads, int head_dim, int rope_dims, const int32_t *positions,
                  const float *cos_table, const float *sin_table, int neox, int scalar) {
  const int half = rope_dims / 2;
  const int64_t row = (int64_t)n_heads * head_dim;
  for (int64_t t = 0; t < n_tok; t++) {
    const float *cs = cos_table + (int64_t)positions[t] * half, *sn = sin_table + (int64_t)positions[t] * half;
#ifdef BF_OPS_AVX512
    if (!scalar) {
      if (neox)
        for (int h = 0; h < n_heads; h++) rope_neox_avx512(x + t * row + (int64_t)h * head_dim, half, cs, sn);
      else
        rope_pairs_avx512(x + t * row, n_heads, head_dim, half, cs, sn);
      continue;
    }
#endif
    for (int h = 0; h < n_heads; h++) rope_head_scalar(x + t * row + (int64_t)h * head_dim, half, cs, sn, neox);
  }
}
