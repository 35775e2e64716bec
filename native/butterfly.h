/*
 * Shared declarations of the native kernels. The reduction order of every dot product is fixed by
 * docs/kernels.md; each kernel has a portable scalar version and (where the compiler targets it) a SIMD
 * version that gives the same bits, selectable per call so tests can compare the two.
 */
#ifndef BUTTERFLY_H
#define BUTTERFLY_H

#include <stddef.h>
#include <stdint.h>

/* ggml's on-disk type ids (src/engine/gguf/types.ts) */
enum bf_type {
  BF_F32 = 0, BF_F16 = 1, BF_Q4_0 = 2, BF_Q8_0 = 8, BF_Q4_K = 12, BF_Q5_K = 13, BF_Q6_K = 14, BF_BF16 = 30,
};

/* AVX-512 with byte/word ops and VNNI (Intel Ice Lake / Sapphire Rapids and later, AMD Zen 4 and later): the quantized kernels of dot_avx512.c replace
 * the AVX2 ones. */
#if defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512VL__) && defined(__AVX512VNNI__) && defined(__F16C__)
#define BF_AVX512_QUANT 1
#endif

#define BF_QK 32   /* elements per Q8_0 / Q4_0 block */
#define BF_QK_K 256 /* elements per K-quant super-block */

/*
 * One token's activations in the format its weight type needs (docs/kernels.md):
 * F32/F16/BF16 use xf (F16/BF16: x rounded through that format); Q8_0/Q4_0 use q, d (F32 value of the F16 block
 * scale) and sums (Σq per 32-block, so Q4_0 can subtract its offset of 8 exactly); K-quants use q, d (f32 scale
 * per 256) and sums (ggml's bsums, Σq per 16).
 */
typedef struct {
  const float *xf;
  const int8_t *q;
  const float *d;
  const int32_t *sums;
} bf_act_row;

/* dot(row w, activation row a) over `cols` elements, in the docs/kernels.md order */
typedef float (*bf_dot_fn)(const uint8_t *w, const bf_act_row *a, int cols);

/* The same dot product for 4 tokens at once (a[0..3] → out[0..3]): each token's result has exactly the bits of
 * bf_dot_fn; sharing the weight loads and decoding across tokens is what makes prefill and batches fast. */
#define BF_TOK_GROUP 4
typedef void (*bf_dot4_fn)(const uint8_t *w, const bf_act_row *a, int cols, float *out);

/* Float-lane types (F32, F16, BF16) with several tokens: rows [0, n_rows) of w (row_bytes apart) × tokens
 * [0, n_tok) of acts → out[t·out_stride + r], register-blocked over rows and tokens, in row tiles of about
 * tile_rows (kept in L2 while every token passes over them). Each element has exactly the bits of the type's
 * bf_dot_fn. bf_dot_tile_for returns NULL unless `dot` is a float-lane SIMD kernel with such tiles (AVX-512). */
struct bf_acts;
typedef void (*bf_dot_tile_fn)(const uint8_t *w, size_t row_bytes, int64_t n_rows, const struct bf_acts *acts,
                               int64_t n_tok, int cols, float *out, int64_t out_stride, int64_t tile_rows);
bf_dot_tile_fn bf_dot_tile_for(bf_dot_fn dot);

/* Returns 0 and fills *dot1 (and *dot4, NULL if there is none) for a supported type; `scalar` forces the
 * portable path (which has no 4-token form). */
int bf_dot_for_type(int type, int scalar, bf_dot_fn *dot1, bf_dot4_fn *dot4);
/* Bytes per weight row, or 0 if cols does not fit the type's block size. */
size_t bf_row_bytes(int type, int64_t cols);
/* Name of the SIMD level compiled in: "avx512", "avx2" or "scalar". */
const char *bf_simd_level(void);

float bf_dot_f32_scalar(const uint8_t *w, const bf_act_row *a, int cols);
float bf_dot_f16_scalar(const uint8_t *w, const bf_act_row *a, int cols);
float bf_dot_bf16_scalar(const uint8_t *w, const bf_act_row *a, int cols);
float bf_dot_q8_0_scalar(const uint8_t *w, const bf_act_row *a, int cols);
float bf_dot_q4_0_scalar(const uint8_t *w, const bf_act_row *a, int cols);
float bf_dot_q4_k_scalar(const uint8_t *w, const bf_act_row *a, int cols);
float bf_dot_q5_k_scalar(const uint8_t *w, const bf_act_row *a, int cols);
float bf_dot_q6_k_scalar(const uint8_t *w, const bf_act_row *a, int cols);

/* NULL when the SIMD version is not compiled in */
extern const bf_dot_fn bf_dot_f32_simd, bf_dot_f16_simd, bf_dot_bf16_simd;
extern const bf_dot_fn bf_dot_q8_0_simd, bf_dot_q4_0_simd;
extern const bf_dot_fn bf_dot_q4_k_simd, bf_dot_q5_k_simd, bf_dot_q6_k_simd;
extern const bf_dot4_fn bf_dot4_f32_simd, bf_dot4_f16_simd, bf_dot4_bf16_simd;
extern const bf_dot4_fn bf_dot4_q8_0_simd, bf_dot4_q4_0_simd;
extern const bf_dot4_fn bf_dot4_q4_k_simd, bf_dot4_q5_k_simd, bf_dot4_q6_k_simd;

/* ---- activations (activations.c) ---- */

/* Per-token strides (in elements) of the prepared activation buffers for a type and row length. */
typedef struct {
  size_t xf, q, d, sums; /* per token */
} bf_act_layout;

bf_act_layout bf_act_layout_for(int type, int64_t cols);
/* Bytes of scratch needed for nTok tokens (each array 64-byte aligned inside the scratch). */
size_t bf_act_scratch_bytes(int type, int64_t cols, int64_t n_tok);

typedef struct bf_acts {
  bf_act_layout layout;
  float *xf;       /* caller's x for F32, else scratch */
  int8_t *q;
  float *d;
  int32_t *sums;
} bf_acts;

/* n_tok rows of x (n_tok × cols floats) in the type's activation format, in two steps so that threads can fill
 * disjoint tokens: the layout (pointers into `scratch`; F32 points at x itself), then tokens [t_begin, t_end)
 * converted or quantized into it. */
void bf_acts_layout(int type, const float *x, int64_t cols, int64_t n_tok, void *scratch, bf_acts *out);
void bf_acts_fill(int type, const float *x, int64_t cols, int64_t t_begin, int64_t t_end, const bf_acts *out);
static inline bf_act_row bf_act_row_at(const bf_acts *a, int64_t t) {
  bf_act_row r;
  r.xf = a->xf ? a->xf + t * (int64_t)a->layout.xf : NULL;
  r.q = a->q ? a->q + t * (int64_t)a->layout.q : NULL;
  r.d = a->d ? a->d + t * (int64_t)a->layout.d : NULL;
  r.sums = a->sums ? a->sums + t * (int64_t)a->layout.sums : NULL;
  return r;
}

/* ---- float-lane and block-lane reductions shared by the scalar kernels ---- */

/* docs/kernels.md "Float lanes": fold 16 lane sums, then the tail is added by the caller. */
static inline float bf_fold16(float acc[16]) {
  for (int l = 0; l < 8; l++) acc[l] = acc[l] + acc[l + 8];
  for (int l = 0; l < 4; l++) acc[l] = acc[l] + acc[l + 4];
  for (int l = 0; l < 2; l++) acc[l] = acc[l] + acc[l + 2];
  return acc[0] + acc[1];
}

/* docs/kernels.md "Block accumulation": fold 8 block lanes. */
static inline float bf_fold8(float acc[8]) {
  for (int l = 0; l < 4; l++) acc[l] = acc[l] + acc[l + 4];
  for (int l = 0; l < 2; l++) acc[l] = acc[l] + acc[l + 2];
  return acc[0] + acc[1];
}

/* f32(s · f32(isum)): the int sum is converted to float first, as C's usual arithmetic conversion does (and as
 * the TypeScript kernels' fr(sumi) does). Exact for |isum| < 2^24 (all Q8_0/Q4_0 sums); K-quant sums can pass it. */
static inline float bf_scale_int(float s, int32_t isum) { return s * (float)isum; }

#endif
