/* Kernel selection and the row loop: weight rows outer, tokens inner, so each weight row is read once per call. */
#include "butterfly.h"
#include "matmul.h"
#include "quant_blocks.h"
#include <stdlib.h>
#include "amx.h"
#include "x16.h"

size_t bf_row_bytes(int type, int64_t cols) {
  if (cols <= 0) return 0;
  switch (type) {
    case BF_F32: return (size_t)cols * 4;
    case BF_F16:
    case BF_BF16: return (size_t)cols * 2;
    case BF_Q8_0: return cols % BF_QK ? 0 : (size_t)(cols / BF_QK) * 34;
    case BF_Q4_0: return cols % BF_QK ? 0 : (size_t)(cols / BF_QK) * 18;
    case BF_Q4_K: return cols % BF_QK_K ? 0 : (size_t)(cols / BF_QK_K) * 144;
    case BF_Q5_K: return cols % BF_QK_K ? 0 : (size_t)(cols / BF_QK_K) * 176;
    case BF_Q6_K: return cols % BF_QK_K ? 0 : (size_t)(cols / BF_QK_K) * 210;
    default: return 0;
  }
}

int bf_dot_for_type(int type, int scalar, bf_dot_fn *dot1, bf_dot4_fn *dot4) {
  bf_dot_fn s = 0, v = 0;
  bf_dot4_fn v4 = 0;
  switch (type) {
    case BF_F32: s = bf_dot_f32_scalar; v = bf_dot_f32_simd; v4 = bf_dot4_f32_simd; break;
    case BF_F16: s = bf_dot_f16_scalar; v = bf_dot_f16_simd; v4 = bf_dot4_f16_simd; break;
    case BF_BF16: s = bf_dot_bf16_scalar; v = bf_dot_bf16_simd; v4 = bf_dot4_bf16_simd; break;
    case BF_Q8_0: s = bf_dot_q8_0_scalar; v = bf_dot_q8_0_simd; v4 = bf_dot4_q8_0_simd; break;
    case BF_Q4_0: s = bf_dot_q4_0_scalar; v = bf_dot_q4_0_simd; v4 = bf_dot4_q4_0_simd; break;
    case BF_Q4_K: s = bf_dot_q4_k_scalar; v = bf_dot_q4_k_simd; v4 = bf_dot4_q4_k_simd; break;
    case BF_Q5_K: s = bf_dot_q5_k_scalar; v = bf_dot_q5_k_simd; v4 = bf_dot4_q5_k_simd; break;
    case BF_Q6_K: s = bf_dot_q6_k_scalar; v = bf_dot_q6_k_simd; v4 = bf_dot4_q6_k_simd; break;
    default: return -1;
  }
  const int simd = !scalar && v;
  *dot1 = simd ? v : s;
  *dot4 = simd ? v4 : 0;
  return 0;
}

const char *bf_simd_level(void) {
#if defined(__AVX512F__) && defined(__AVX2__) && defined(__F16C__)
  return "avx512";
#elif defined(__AVX2__) && defined(__F16C__)
  return "avx2";
#else
  return "scalar";
#endif
}

/*
 * Rows are taken in tiles of about BF_ROW_TILE_BYTES (kept in L2) and every 4-token group runs over the tile, so
 * weights still come from RAM once per call while a group's activations stay in L1. Tiling only reorders whole
 * dot products: each output element is computed exactly as before.
 */
#define BF_ROW_TILE_BYTES (96 * 1024)

/*
 * One token (decode): every weight byte is used once, so a call streams its matrix from L3 or RAM. The quantized
 * kernels do enough work per byte that the core's own prefetchers fall behind (Q8_0 streamed at ~12 GB/s against
 * ~27 GB/s for a plain read of the same memory), so rows are prefetched into L2 BF_PREFETCH_BYTES ahead, one line
 * at a time. Past the last row this runs on into the next tensor, which in the arena (src/engine/model/load.ts) is
 * usually the next matrix of the decode step. Float kernels prefetch inside their loop instead (dot_float.c): for
 * them this row-at-a-time burst measured slower than no prefetch at all. Only the timing of loads changes.
 * Measured with the 85 matrices of one `medium` decode step, 1 thread: Q8_0 9.2 → 5.1 ms, Q4_0 4.3 → 3.2 ms.
 */
#define BF_PREFETCH_BYTES (24 * 1024)
/* prepared activations up to this size live on the stack (Q4_0: 1.25 bytes per column) */
#define BF_PREP_STACK_BYTES (40 * 1024)

static void matmul_rows_1tok(const bf_matmul_job *job, int64_t row_begin, int64_t row_end) {
  const int cols = (int)job->cols;
  const size_t rb = job->row_bytes;
  const bf_act_row a = bf_act_row_at(job->acts, 0);
  const uint8_t *w = job->w;
  if (rb >= 2 * (size_t)job->cols) { /* F32, F16, BF16 */
    for (int64_t r = row_begin; r < row_end; r++) job->out[r] = job->dot(w + (size_t)r * rb, &a, cols);
    return;
  }
  /* activations re-laid once per call where the type's kernel wants it (bf_dot1_prep) */
  const bf_dot1_prep *pk = bf_dot1_prep_for(job->dot);
  _Alignas(64) uint8_t stack_buf[BF_PREP_STACK_BYTES];
  void *buf = NULL;
  if (pk) {
    const size_t need = pk->prep_bytes(cols);
    buf = need <= sizeof stack_buf ? stack_buf : aligned_alloc(64, (need + 63) & ~(size_t)63);
    if (buf) pk->prep(&a, cols, buf);
    else pk = NULL;
  }
  /* every line below pf has been prefetched (or is near enough to the start to be fetched on demand) */
  uintptr_t pf = (((uintptr_t)(w + (size_t)row_begin * rb)) & ~(uintptr_t)63) + BF_PREFETCH_BYTES;
  for (int64_t r = row_begin; r < row_end; r++) {
    const uint8_t *row = w + (size_t)r * rb;
    for (const uintptr_t want = (uintptr_t)row + rb + BF_PREFETCH_BYTES; pf < want; pf += 64)
      __builtin_prefetch((const void *)pf, 0, 2);
    job->out[r] = pk ? pk->dot(row, buf, cols) : job->dot(row, &a, cols);
  }
  if (buf != stack_buf) free(buf);
}

/*
 * A few tokens (batched decode of 2..BF_DOTN_MAX sequences): as for one token, a call streams its matrix once, so
 * rows are prefetched the same way and every weight row is read once for all tokens by bf_dotn (quant_blocks.h).
 * Where the type has dot2, rows go two per call (`medium` decode step of 4 sequences, 1 thread: ~10% faster for
 * Q4_0 and Q4_K, docs/kernel-decision.md). Pairs start at row_begin, so a thread's range may end on a single row.
 * Kernels with self_prefetch (Q8_0) prefetch their rows themselves, spread over their steps, instead of this burst.
 */
static void matmul_rows_small(const bf_matmul_job *job, const bf_dotn *dn, int64_t row_begin, int64_t row_end) {
  const int cols = (int)job->cols, nt = (int)job->n_tok;
  const size_t rb = job->row_bytes;
  const uint8_t *w = job->w;
  bf_act_row a[BF_DOTN_MAX];
  for (int t = 0; t < nt; t++) a[t] = bf_act_row_at(job->acts, t);
  _Alignas(64) uint8_t stack_buf[BF_PREP_STACK_BYTES];
  const size_t need = dn->prep_bytes(nt, cols);
  void *buf = need <= sizeof stack_buf ? stack_buf : aligned_alloc(64, (need + 63) & ~(size_t)63);
  if (!buf) { /* no memory for the re-laid activations: token at a time, same bits */
    for (int64_t r = row_begin; r < row_end; r++)
      for (int t = 0; t < nt; t++) job->out[t * job->rows + r] = job->dot(w + (size_t)r * rb, &a[t], cols);
    return;
  }
  dn->prep(a, nt, cols, buf);
  uintptr_t pf = (((uintptr_t)(w + (size_t)row_begin * rb)) & ~(uintptr_t)63) + BF_PREFETCH_BYTES;
  int64_t r = row_begin;
  /* two rows per call where the type has it (each activation load serves both); a last odd row goes alone */
  if (dn->dot2)
    for (; r + 1 < row_end; r += 2) {
      const uint8_t *row = w + (size_t)r * rb;
      if (!dn->self_prefetch)
        for (const uintptr_t want = (uintptr_t)row + 2 * rb + BF_PREFETCH_BYTES; pf < want; pf += 64)
          __builtin_prefetch((const void *)pf, 0, 2);
      float res[2 * BF_DOTN_MAX];
      dn->dot2(row, rb, a, buf, nt, cols, res);
      for (int t = 0; t < nt; t++) {
        job->out[t * job->rows + r] = res[t];
        job->out[t * job->rows + r + 1] = res[nt + t];
      }
    }
  for (; r < row_end; r++) {
    const uint8_t *row = w + (size_t)r * rb;
    if (!dn->self_prefetch)
      for (const uintptr_t want = (uintptr_t)row + rb + BF_PREFETCH_BYTES; pf < want; pf += 64)
        __builtin_prefetch((const void *)pf, 0, 2);
    float res[BF_DOTN_MAX];
    dn->dot(row, a, buf, nt, cols, res);
    for (int t = 0; t < nt; t++) job->out[t * job->rows + r] = res[t];
  }
  if (buf != stack_buf) free(buf);
}

void bf_matmul_rows(const bf_matmul_job *job, int64_t row_begin, int64_t row_end) {
  if (job->x16) {
    bf_x16_rows(job, row_begin, row_end);
    return;
  }
  /* 2..7 tokens go to bf_dotn for every type, Q8_0 included: its two-row q8n kernel with spread prefetch beats AMX's
   * narrow tiles (an AMX path for 2..7 tokens, since removed) in a `medium` decode step, 1 thread, best of 48 steps over
   * 5 alternating runs: B=2 5.16 vs 5.49 ms, B=4 6.17 vs 7.03, B=7 8.58 vs 9.35 (docs/kernel-decision.md). */
  if (job->n_tok == 1) {
    matmul_rows_1tok(job, row_begin, row_end);
    return;
  }
  if (job->n_tok <= BF_DOTN_MAX) {
    const bf_dotn *dn = bf_dotn_for(job->dot);
    if (dn) {
      matmul_rows_small(job, dn, row_begin, row_end);
      return;
    }
  }
  /* AMX tiles for big Q8_0 / Q4_0 batches (native/amx.c): whole 16-row groups; any rest continues below */
  if (job->no_amx) {
    /* AVX-512 paths only (tests) */
  } else if (job->n_tok >= BF_AMX_MIN_TOK && (job->dot == bf_dot_q8_0_simd || job->dot == bf_dot_q4_0_simd))
    row_begin = bf_amx_rows(job, job->dot == bf_dot_q4_0_simd, row_begin, row_end);
  else if (job->n_tok >= BF_AMX_MIN_TOK &&
           (job->dot == bf_dot_q4_k_simd || job->dot == bf_dot_q5_k_simd || job->dot == bf_dot_q6_k_simd))
    row_begin = bf_amx_rows_k(job, job->dot == bf_dot_q6_k_simd ? 2 : job->dot == bf_dot_q5_k_simd, row_begin, row_end);
  const int cols = (int)job->cols;
  const int64_t n_groups = job->dot4 ? job->n_tok / BF_TOK_GROUP : 0;
  const int64_t t_rest = n_groups * BF_TOK_GROUP;
  int64_t tile = (int64_t)(BF_ROW_TILE_BYTES / job->row_bytes);
  if (tile < 1) tile = 1;
  /* F32/F16/BF16 (dot_float.c): several rows × tokens per pass, over the same row tiles */
  const bf_dot_tile_fn dot_tile = bf_dot_tile_for(job->dot);
  if (dot_tile) {
    dot_tile(job->w + (size_t)row_begin * job->row_bytes, job->row_bytes, row_end - row_begin, job->acts, job->n_tok,
             cols, job->out + row_begin, job->rows, tile);
    return;
  }
  for (int64_t r0 = row_begin; r0 < row_end; r0 += tile) {
    const int64_t r1 = r0 + tile < row_end ? r0 + tile : row_end;
    for (int64_t g = 0; g < n_groups; g++) {
      const int64_t t = g * BF_TOK_GROUP;
      bf_act_row a[BF_TOK_GROUP];
      for (int k = 0; k < BF_TOK_GROUP; k++) a[k] = bf_act_row_at(job->acts, t + k);
      for (int64_t r = r0; r < r1; r++) {
        float res[BF_TOK_GROUP];
        job->dot4(job->w + (size_t)r * job->row_bytes, a, cols, res);
        for (int k = 0; k < BF_TOK_GROUP; k++) job->out[(t + k) * job->rows + r] = res[k];
      }
    }
    for (int64_t r = r0; r < r1; r++) {
      const uint8_t *wrow = job->w + (size_t)r * job->row_bytes;
      for (int64_t t = t_rest; t < job->n_tok; t++) {
        const bf_act_row a = bf_act_row_at(job->acts, t);
        job->out[t * job->rows + r] = job->dot(wrow, &a, cols);
      }
    }
  }
}
