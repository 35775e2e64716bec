/*
 * Float-lane dot products (F32, F16, BF16 weights) in the docs/kernels.md order: 16 lane accumulators, folded
 * 8/4/2/1, then the tail added in order. The SIMD versions keep the 16 lanes in one __m512 (AVX-512) or two
 * __m256 (AVX2: lanes 0-7 and 8-15), so they perform the very same float operations as the scalar ones. For
 * batches, the AVX-512 build also has register-blocked tiles (tile_*) that compute several rows × tokens at once.
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

static inline float ld1_f32(const uint8_t *w, int i) { return load_f32(w + 4 * i); }
static inline float ld1_f16(const uint8_t *w, int i) { return bf_load_f16(w + 2 * i); }
static inline float ld1_bf16(const uint8_t *w, int i) { return bf_bf16_to_f32(bf_load_u16(w + 2 * i)); }

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

static inline __m512 ld16_f32(const uint8_t *w, int i) { return _mm512_loadu_ps(w + 4 * i); }
static inline __m512 ld16_f16(const uint8_t *w, int i) {
  return _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(w + 2 * i)));
}
static inline __m512 ld16_bf16(const uint8_t *w, int i) {
  return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i *)(w + 2 * i))), 16));
}

/*
 * One token streams each weight once, and the hardware prefetchers alone fall short of a plain read with software
 * prefetch, so each step asks for the line BF_FLOAT_PREFETCH_BYTES ahead into L2 (measured on the `medium` shapes,
 * 1 thread: F16 200 MB 15.1 → 12.7 ms, F32 400 MB 24.8 → 22.5 ms). Loads only: the arithmetic is unchanged.
 */
#ifndef BF_FLOAT_PREFETCH_BYTES
#define BF_FLOAT_PREFETCH_BYTES 4096
#endif

/* One __m512 holds the 16 lanes; the 4-token form runs 4 independent lane sets on one weight load. */
#define FLOAT_DOTS(NAME, ESZ)                                                                              \
  static float dot_##NAME##_simd(const uint8_t *w, const bf_act_row *a, int cols) {                       \
    const float *x = a->xf;                                                                               \
    const int m = cols - cols % 16;                                                                       \
    __m512 acc = _mm512_setzero_ps();                                                                     \
    for (int i = 0; i < m; i += 16) {                                                                     \
      _mm_prefetch((const char *)w + ESZ * i + BF_FLOAT_PREFETCH_BYTES, _MM_HINT_T1);                     \
      acc = _mm512_add_ps(acc, _mm512_mul_ps(ld16_##NAME(w, i), _mm512_loadu_ps(x + i)));                 \
    }                                                                                                     \
    float s = fold512(acc);                                                                               \
    for (int i = m; i < cols; i++) s = s + ld1_##NAME(w, i) * x[i];                                       \
    return s;                                                                                             \
  }                                                                                                       \
  static void dot4_##NAME##_simd(const uint8_t *w, const bf_act_row *a, int cols, float *out) {           \
    const float *x0 = a[0].xf, *x1 = a[1].xf, *x2 = a[2].xf, *x3 = a[3].xf;                               \
    const int m = cols - cols % 16;                                                                       \
    __m512 c0 = _mm512_setzero_ps(), c1 = c0, c2 = c0, c3 = c0;                                           \
    for (int i = 0; i < m; i += 16) {                                                                     \
      const __m512 wv = ld16_##NAME(w, i);                                                                \
      c0 = _mm512_add_ps(c0, _mm512_mul_ps(wv, _mm512_loadu_ps(x0 + i)));                                 \
      c1 = _mm512_add_ps(c1, _mm512_mul_ps(wv, _mm512_loadu_ps(x1 + i)));                                 \
      c2 = _mm512_add_ps(c2, _mm512_mul_ps(wv, _mm512_loadu_ps(x2 + i)));                                 \
      c3 = _mm512_add_ps(c3, _mm512_mul_ps(wv, _mm512_loadu_ps(x3 + i)));                                 \
    }                                                                                                     \
    out[0] = fold512(c0); out[1] = fold512(c1); out[2] = fold512(c2); out[3] = fold512(c3);               \
    for (int k = 0; k < 4; k++)                                                                           \
      for (int i = m; i < cols; i++) out[k] = out[k] + ld1_##NAME(w, i) * a[k].xf[i];                     \
  }

/*
 * Several tokens (tile_*, for matmul.c): register blocking. A dot4 step loads a weight vector and 4 activation
 * vectors for only 4 mul/add pairs, whose 4 add chains barely cover the add latency. Here BLK_R weight rows meet
 * BLK_T tokens: a step does 24 pairs on 11 loads, over 24 independent chains (24 accumulators + 3 weight vectors
 * of the 32 zmm registers). Measured 1 thread, 2048×768 F32 × 128 tokens: ~75-85 → ~100 GFLOP/s (the mul + add
 * pairs peak near 116 here); 3 × 8 came out a little ahead of 4 × 6, 2 × 12, 5 × 5 and 4 × 7 (which spills).
 * Each output keeps its own 16 lanes, fold and in-order tail exactly as dot_*_simd: blocking only chooses which
 * outputs are computed side by side.
 */
#define BLK_R 3
#define BLK_T 8
/* the first pass over a row tile reads it from L3 or RAM: prefetch this many row blocks ahead into L2 (F32 at 4
 * tokens on 32000×768: ~20 → ~45 GFLOP/s) */
#define BLK_PF_BLOCKS 2

/*
 * R rows (rb bytes apart) × T tokens x[0..T) → out[t·os + r]; R and T are constants in every instantiation, so the
 * accumulators stay in registers. pfd is the prefetch distance in bytes (0 on later passes, whose tile is already in
 * L2: the prefetch then asks for the line being loaded anyway). Prefetching changes loads only, not the arithmetic.
 */
#define FLOAT_BLOCK(NAME, ESZ)                                                                             \
  static inline __attribute__((always_inline)) void blk_##NAME(const uint8_t *w, size_t rb, const float *const *x, \
                                                               int cols, float *out, int64_t os, size_t pfd,     \
                                                               const int R, const int T) {                       \
    const int m = cols - cols % 16;                                                                       \
    __m512 acc[BLK_R][BLK_T];                                                                             \
    for (int r = 0; r < R; r++)                                                                           \
      for (int t = 0; t < T; t++) acc[r][t] = _mm512_setzero_ps();                                        \
    for (int i = 0; i < m; i += 16) {                                                                     \
      __m512 wv[BLK_R];                                                                                   \
      for (int r = 0; r < R; r++) {                                                                       \
        _mm_prefetch((const char *)w + r * rb + ESZ * i + pfd, _MM_HINT_T1);                              \
        wv[r] = ld16_##NAME(w + r * rb, i);                                                               \
      }                                                                                                   \
      for (int t = 0; t < T; t++) {                                                                       \
        const __m512 xv = _mm512_loadu_ps(x[t] + i);                                                      \
        for (int r = 0; r < R; r++) acc[r][t] = _mm512_add_ps(acc[r][t], _mm512_mul_ps(wv[r], xv));       \
      }                                                                                                   \
    }                                                                                                     \
    for (int r = 0; r < R; r++)                                                                           \
      for (int t = 0; t < T; t++) {                                                                       \
        float s = fold512(acc[r][t]);                                                                     \
        for (int i = m; i < cols; i++) s = s + ld1_##NAME(w + r * rb, i) * x[t][i];                       \
        out[t * os + r] = s;                                                                              \
      }                                                                                                   \
  }                                                                                                       \
  /* R = BLK_R or 1 (the last rows of a range), any T in 1..BLK_T */                                      \
  static void blk_any_##NAME(const uint8_t *w, size_t rb, const float *const *x, int cols, float *out,    \
                             int64_t os, size_t pfd, int R, int T) {                                      \
    if (R == BLK_R) {                                                                                     \
      switch (T) {                                                                                        \
        BLK_CASES(NAME, BLK_R)                                                                            \
      }                                                                                                   \
    } else {                                                                                              \
      switch (T) {                                                                                        \
        BLK_CASES(NAME, 1)                                                                                \
      }                                                                                                   \
    }                                                                                                     \
  }                                                                                                       \
  /* Rows are taken in L2 tiles of whole row blocks; every token block passes over a tile before the next. */ \
  static void tile_##NAME(const uint8_t *w, size_t rb, int64_t n_rows, const bf_acts *acts, int64_t n_tok, \
                          int cols, float *out, int64_t os, int64_t tile_rows) {                          \
    tile_rows = tile_rows < BLK_R ? BLK_R : tile_rows - tile_rows % BLK_R;                                \
    /* ceil(n_tok / BLK_T) token blocks of near-equal size: 20 tokens are 7 + 7 + 6, not 8 + 8 + 4 */     \
    const int64_t n_tb = (n_tok + BLK_T - 1) / BLK_T;                                                     \
    for (int64_t r0 = 0; r0 < n_rows; r0 += tile_rows) {                                                  \
      const int64_t r1 = r0 + tile_rows < n_rows ? r0 + tile_rows : n_rows;                               \
      for (int64_t b = 0, t0 = 0; b < n_tb; b++) {                                                        \
        const int T = (int)(n_tok / n_tb + (b < n_tok % n_tb));                                           \
        const size_t pfd = b == 0 ? BLK_PF_BLOCKS * BLK_R * rb : 0;                                       \
        const float *x[BLK_T];                                                                            \
        for (int t = 0; t < T; t++) x[t] = acts->xf + (t0 + t) * (int64_t)acts->layout.xf;                \
        for (int64_t r = r0; r < r1;) {                                                                   \
          const int R = r1 - r >= BLK_R ? BLK_R : 1;                                                      \
          blk_any_##NAME(w + (size_t)r * rb, rb, x, cols, out + t0 * os + r, os, pfd, R, T);              \
          r += R;                                                                                         \
        }                                                                                                 \
        t0 += T;                                                                                          \
      }                                                                                                   \
    }                                                                                                     \
  }
#define BLK_CASE(NAME, R, T) case T: blk_##NAME(w, rb, x, cols, out, os, pfd, R, T); break;
#define BLK_CASES(NAME, R)                                                                                 \
  BLK_CASE(NAME, R, 1) BLK_CASE(NAME, R, 2) BLK_CASE(NAME, R, 3) BLK_CASE(NAME, R, 4)                      \
  BLK_CASE(NAME, R, 5) BLK_CASE(NAME, R, 6) BLK_CASE(NAME, R, 7) BLK_CASE(NAME, R, 8)

#define HAVE_FLOAT_SIMD 1
#define HAVE_FLOAT_TILE 1

#elif defined(__AVX2__) && defined(__F16C__)

/* lanes 0-7 in lo, 8-15 in hi; the first fold step (l += l+8) is lo + hi */
static inline float fold256x2(__m256 lo, __m256 hi) {
  const __m256 a8 = _mm256_add_ps(lo, hi);
  const __m128 a4 = _mm_add_ps(_mm256_castps256_ps128(a8), _mm256_extractf128_ps(a8, 1));
  const __m128 a2 = _mm_add_ps(a4, _mm_movehl_ps(a4, a4));
  return _mm_cvtss_f32(_mm_add_ss(a2, _mm_movehdup_ps(a2)));
}

static inline __m256 ld8_f32(const uint8_t *w, int i) { return _mm256_loadu_ps((const float *)(w + 4 * i)); }
static inline __m256 ld8_f16(const uint8_t *w, int i) { return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(w + 2 * i))); }
static inline __m256 ld8_bf16(const uint8_t *w, int i) {
  return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)(w + 2 * i))), 16));
}

/* Two __m256 hold lanes 0-7 and 8-15. */
#define FLOAT_DOTS(NAME, ESZ)                                                                              \
  static float dot_##NAME##_simd(const uint8_t *w, const bf_act_row *a, int cols) {                       \
    const float *x = a->xf;                                                                               \
    const int m = cols - cols % 16;                                                                       \
    __m256 lo = _mm256_setzero_ps(), hi = _mm256_setzero_ps();                                            \
    for (int i = 0; i < m; i += 16) {                                                                     \
      lo = _mm256_add_ps(lo, _mm256_mul_ps(ld8_##NAME(w, i), _mm256_loadu_ps(x + i)));                    \
      hi = _mm256_add_ps(hi, _mm256_mul_ps(ld8_##NAME(w, i + 8), _mm256_loadu_ps(x + i + 8)));            \
    }                                                                                                     \
    float s = fold256x2(lo, hi);                                                                          \
    for (int i = m; i < cols; i++) s = s + ld1_##NAME(w, i) * x[i];                                       \
    return s;                                                                                             \
  }                                                                                                       \
  static void dot4_##NAME##_simd(const uint8_t *w, const bf_act_row *a, int cols, float *out) {           \
    const int m = cols - cols % 16;                                                                       \
    __m256 lo[4], hi[4];                                                                                  \
    for (int k = 0; k < 4; k++) lo[k] = hi[k] = _mm256_setzero_ps();                                      \
    for (int i = 0; i < m; i += 16) {                                                                     \
      const __m256 w0 = ld8_##NAME(w, i), w1 = ld8_##NAME(w, i + 8);                                      \
      for (int k = 0; k < 4; k++) {                                                                       \
        lo[k] = _mm256_add_ps(lo[k], _mm256_mul_ps(w0, _mm256_loadu_ps(a[k].xf + i)));                    \
        hi[k] = _mm256_add_ps(hi[k], _mm256_mul_ps(w1, _mm256_loadu_ps(a[k].xf + i + 8)));                \
      }                                                                                                   \
    }                                                                                                     \
    for (int k = 0; k < 4; k++) {                                                                         \
      out[k] = fold256x2(lo[k], hi[k]);                                                                   \
      for (int i = m; i < cols; i++) out[k] = out[k] + ld1_##NAME(w, i) * a[k].xf[i];                     \
    }                                                                                                     \
  }

#define HAVE_FLOAT_SIMD 1
#endif

#ifdef HAVE_FLOAT_SIMD
FLOAT_DOTS(f32, 4)
FLOAT_DOTS(f16, 2)
FLOAT_DOTS(bf16, 2)
const bf_dot_fn bf_dot_f32_simd = dot_f32_simd;
const bf_dot_fn bf_dot_f16_simd = dot_f16_simd;
const bf_dot_fn bf_dot_bf16_simd = dot_bf16_simd;
const bf_dot4_fn bf_dot4_f32_simd = dot4_f32_simd;
const bf_dot4_fn bf_dot4_f16_simd = dot4_f16_simd;
const bf_dot4_fn bf_dot4_bf16_simd = dot4_bf16_simd;
#else
const bf_dot_fn bf_dot_f32_simd = 0;
const bf_dot_fn bf_dot_f16_simd = 0;
const bf_dot_fn bf_dot_bf16_simd = 0;
const bf_dot4_fn bf_dot4_f32_simd = 0;
const bf_dot4_fn bf_dot4_f16_simd = 0;
const bf_dot4_fn bf_dot4_bf16_simd = 0;
#endif

#ifdef HAVE_FLOAT_TILE
FLOAT_BLOCK(f32, 4)
FLOAT_BLOCK(f16, 2)
FLOAT_BLOCK(bf16, 2)
bf_dot_tile_fn bf_dot_tile_for(bf_dot_fn dot) {
  return dot == dot_f32_simd ? tile_f32 : dot == dot_f16_simd ? tile_f16 : dot == dot_bf16_simd ? tile_bf16 : 0;
}
#else
/* AVX2 (16 ymm registers) and scalar builds: matmul.c keeps its dot4 / dot1 loop. The AVX2 variants tried
 * (2 rows × 2 tokens, 1 × 4 with remainder tokens and prefetch) measured no faster than dot4 on this machine. */
bf_dot_tile_fn bf_dot_tile_for(bf_dot_fn dot) { (void)dot; return 0; }
#endif
