/*
 * Activation formats (docs/kernels.md): x is rounded or quantized once per matmul call, for all tokens, so the
 * per-row dot products only read prepared data. Rules match llama.cpp on x86 and src/engine/quant/activations.ts.
 */
#include "butterfly.h"
#include "half.h"

#include <math.h>
#include <string.h>
#ifdef BF_AVX512_QUANT
#include <immintrin.h>
#endif

static int is_q8_0_family(int type) { return type == BF_Q8_0 || type == BF_Q4_0; }
static int is_k_family(int type) { return type == BF_Q4_K || type == BF_Q5_K || type == BF_Q6_K; }

bf_act_layout bf_act_layout_for(int type, int64_t cols) {
  bf_act_layout l = {0, 0, 0, 0};
  if (type == BF_F32 || type == BF_F16 || type == BF_BF16) {
    l.xf = (size_t)cols;
  } else if (is_q8_0_family(type)) {
    l.q = (size_t)cols;
    l.d = (size_t)(cols / BF_QK);
    l.sums = (size_t)(cols / BF_QK);
  } else if (is_k_family(type)) {
    l.q = (size_t)cols;
    l.d = (size_t)(cols / BF_QK_K);
    l.sums = (size_t)(cols / 16);
  }
  return l;
}

static size_t round64(size_t n) { return (n + 63) & ~(size_t)63; }

size_t bf_act_scratch_bytes(int type, int64_t cols, int64_t n_tok) {
  const bf_act_layout l = bf_act_layout_for(type, cols);
  const size_t n = (size_t)n_tok;
  const size_t xf = type == BF_F32 ? 0 : l.xf * n * sizeof(float); /* F32 reads the caller's x in place */
  return round64(xf) + round64(l.q * n) + round64(l.d * n * sizeof(float)) + round64(l.sums * n * sizeof(int32_t));
}

/* ggml x86 quantize_row_q8_0: d = amax/127 kept as F16, id = 127/amax, q = round-half-even(x·id) */
static __attribute__((unused)) void quantize_q8_0_scalar(const float *x, int64_t cols, int8_t *q, float *d, int32_t *sums) {
  for (int64_t b = 0; b < cols / BF_QK; b++) {
    const float *xb = x + b * BF_QK;
    float amax = 0.0f;
    for (int j = 0; j < BF_QK; j++) {
      const float a = fabsf(xb[j]);
      if (a > amax) amax = a;
    }
    const float scale = amax / 127.0f;
    const float inv = amax != 0.0f ? 127.0f / amax : 0.0f;
    d[b] = bf_f16_to_f32(bf_f32_to_f16(scale));
    int32_t sum = 0;
    for (int j = 0; j < BF_QK; j++) {
      const float v = xb[j] * inv;
      const int32_t qi = (int32_t)nearbyintf(v); /* |v| ≤ 127 up to one rounding: no clamp needed */
      q[b * BF_QK + j] = (int8_t)qi;
      sum += qi;
    }
    sums[b] = sum;
  }
}

#ifdef BF_AVX512_QUANT
/*
 * The same steps 16 lanes at a time: max is exact in any order (max_ps(|x|, acc) keeps acc when |x| is NaN, like
 * `a > amax`), x·inv is the same IEEE product, and the conversion rounds half to even (default MXCSR mode, as
 * nearbyintf); the int8 store truncates like the (int8_t) cast.
 */
static void quantize_q8_0(const float *x, int64_t cols, int8_t *q, float *d, int32_t *sums) {
  for (int64_t b = 0; b < cols / BF_QK; b++) {
    const float *xb = x + b * BF_QK;
    const __m512 x0 = _mm512_loadu_ps(xb), x1 = _mm512_loadu_ps(xb + 16);
    const __m512 m = _mm512_max_ps(_mm512_abs_ps(x1), _mm512_max_ps(_mm512_abs_ps(x0), _mm512_setzero_ps()));
    const float amax = _mm512_reduce_max_ps(m);
    const float scale = amax / 127.0f;
    const float inv = amax != 0.0f ? 127.0f / amax : 0.0f;
    d[b] = bf_f16_to_f32(bf_f32_to_f16(scale));
    const __m512 vi = _mm512_set1_ps(inv);
    const __m512i q0 = _mm512_cvt_roundps_epi32(_mm512_mul_ps(x0, vi), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    const __m512i q1 = _mm512_cvt_roundps_epi32(_mm512_mul_ps(x1, vi), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    _mm_storeu_si128((__m128i *)(q + b * BF_QK), _mm512_cvtepi32_epi8(q0));
    _mm_storeu_si128((__m128i *)(q + b * BF_QK + 16), _mm512_cvtepi32_epi8(q1));
    sums[b] = _mm512_reduce_add_epi32(_mm512_add_epi32(q0, q1));
  }
}
#else
#define quantize_q8_0 quantize_q8_0_scalar
#endif

/* ggml quantize_row_q8_K_ref: scale from the first element of largest magnitude (signed), iscale = -127/max */
static __attribute__((unused)) void quantize_q8_k_scalar(const float *x, int64_t cols, int8_t *q, float *d, int32_t *bsums) {
  for (int64_t b = 0; b < cols / BF_QK_K; b++) {
    const float *xb = x + b * BF_QK_K;
    int8_t *qb = q + b * BF_QK_K;
    int32_t *sb = bsums + b * 16;
    float amax = 0.0f, max = 0.0f;
    for (int j = 0; j < BF_QK_K; j++) {
      const float a = fabsf(xb[j]);
      if (a > amax) { amax = a; max = xb[j]; }
    }
    if (amax == 0.0f) {
      d[b] = 0.0f;
      memset(qb, 0, BF_QK_K);
      memset(sb, 0, 16 * sizeof(int32_t)); /* ggml leaves bsums unset; with d = 0 they cannot matter */
      continue;
    }
    const float iscale = -127.0f / max;
    for (int g = 0; g < 16; g++) {
      int32_t sum = 0;
      for (int k = 0; k < 16; k++) {
        const int j = g * 16 + k;
        int32_t qi = (int32_t)nearbyintf(iscale * xb[j]); /* ties to even, like ggml's nearest_int */
        if (qi > 127) qi = 127;
        qb[j] = (int8_t)qi;
        sum += qi;
      }
      sb[g] = sum;
    }
    d[b] = 1.0f / iscale;
  }
}

#ifdef BF_AVX512_QUANT
/* The same steps 16 lanes at a time (see quantize_q8_0); max is the first element whose |x| equals amax. */
static void quantize_q8_k(const float *x, int64_t cols, int8_t *q, float *d, int32_t *bsums) {
  for (int64_t b = 0; b < cols / BF_QK_K; b++) {
    const float *xb = x + b * BF_QK_K;
    int8_t *qb = q + b * BF_QK_K;
    int32_t *sb = bsums + b * 16;
    __m512 m = _mm512_setzero_ps();
    for (int g = 0; g < 16; g++) m = _mm512_max_ps(_mm512_abs_ps(_mm512_loadu_ps(xb + 16 * g)), m);
    const float amax = _mm512_reduce_max_ps(m);
    if (amax == 0.0f) {
      d[b] = 0.0f;
      memset(qb, 0, BF_QK_K);
      memset(sb, 0, 16 * sizeof(int32_t));
      continue;
    }
    float max = 0.0f;
    const __m512 va = _mm512_set1_ps(amax);
    for (int g = 0; g < 16; g++) {
      const __mmask16 hit = _mm512_cmp_ps_mask(_mm512_abs_ps(_mm512_loadu_ps(xb + 16 * g)), va, _CMP_EQ_OQ);
      if (hit) { max = xb[16 * g + __builtin_ctz((unsigned)hit)]; break; }
    }
    const float iscale = -127.0f / max;
    const __m512 vs = _mm512_set1_ps(iscale);
    const __m512i c127 = _mm512_set1_epi32(127);
    for (int g = 0; g < 16; g++) {
      __m512i qi = _mm512_cvt_roundps_epi32(_mm512_mul_ps(vs, _mm512_loadu_ps(xb + 16 * g)), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
      qi = _mm512_min_epi32(qi, c127);
      _mm_storeu_si128((__m128i *)(qb + 16 * g), _mm512_cvtepi32_epi8(qi));
      sb[g] = _mm512_reduce_add_epi32(qi);
    }
    d[b] = 1.0f / iscale;
  }
}
#else
#define quantize_q8_k quantize_q8_k_scalar
#endif

void bf_acts_layout(int type, const float *x, int64_t cols, int64_t n_tok, void *scratch, bf_acts *out) {
  const bf_act_layout l = bf_act_layout_for(type, cols);
  uint8_t *p = (uint8_t *)scratch;
  out->layout = l;
  out->xf = NULL; out->q = NULL; out->d = NULL; out->sums = NULL;
  const size_t n = (size_t)n_tok;
  if (type == BF_F32) {
    out->xf = (float *)x;
    return;
  }
  if (l.xf) { out->xf = (float *)p; p += round64(l.xf * n * sizeof(float)); }
  if (l.q) { out->q = (int8_t *)p; p += round64(l.q * n); }
  if (l.d) { out->d = (float *)p; p += round64(l.d * n * sizeof(float)); }
  if (l.sums) { out->sums = (int32_t *)p; }
}

void bf_acts_fill(int type, const float *x, int64_t cols, int64_t t_begin, int64_t t_end, const bf_acts *out) {
  const bf_act_layout l = out->layout;
  if (type == BF_F32) return;
  for (int64_t t = t_begin; t < t_end; t++) {
    const float *xt = x + t * cols;
    if (type == BF_F16) {
      float *dst = out->xf + t * (int64_t)l.xf;
      for (int64_t i = 0; i < cols; i++) dst[i] = bf_f16_to_f32(bf_f32_to_f16(xt[i]));
    } else if (type == BF_BF16) {
      float *dst = out->xf + t * (int64_t)l.xf;
      for (int64_t i = 0; i < cols; i++) dst[i] = bf_bf16_to_f32(bf_f32_to_bf16(xt[i]));
    } else if (is_q8_0_family(type)) {
      quantize_q8_0(xt, cols, out->q + t * (int64_t)l.q, out->d + t * (int64_t)l.d, out->sums + t * (int64_t)l.sums);
    } else if (is_k_family(type)) {
      quantize_q8_k(xt, cols, out->q + t * (int64_t)l.q, out->d + t * (int64_t)l.d, out->sums + t * (int64_t)l.sums);
    }
  }
}
