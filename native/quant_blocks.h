/*
 * Block-level pieces shared by the scalar and SIMD quantized kernels: exact integer sums of one block, the
 * K-quant scale unpacking and the per-super-block float value v_b of docs/kernels.md.
 */
#ifndef BUTTERFLY_QUANT_BLOCKS_H
#define BUTTERFLY_QUANT_BLOCKS_H

#include "butterfly.h"
#include "half.h"

#define Q8_0_BYTES 34
#define Q4_0_BYTES 18
#define Q4_K_BYTES 144
#define Q5_K_BYTES 176
#define Q6_K_BYTES 210

static inline int32_t isum_q8_0(const uint8_t *blk, const int8_t *xq) {
  const int8_t *wq = (const int8_t *)(blk + 2);
  int32_t s = 0;
  for (int j = 0; j < BF_QK; j++) s += (int32_t)wq[j] * xq[j];
  return s;
}

/* Σ (nibble − 8)·x = Σ nibble·x − 8·Σx, with Σx precomputed per activation block */
static inline int32_t isum_q4_0(const uint8_t *blk, const int8_t *xq, int32_t xsum) {
  const uint8_t *qs = blk + 2;
  int32_t s = 0;
  for (int j = 0; j < 16; j++) s += (int32_t)(qs[j] & 0xf) * xq[j] + (int32_t)(qs[j] >> 4) * xq[j + 16];
  return s - 8 * xsum;
}

/* ggml get_scale_min_k4 for all 8 sub-blocks at once, on 32-bit words (bytes 0-3, 4-7, 8-11 of the 12):
 * scales 0-3 = low 6 bits of bytes 0-3, mins 0-3 = low 6 bits of bytes 4-7; scales 4-7 = low nibbles of bytes
 * 8-11 plus the top 2 bits of bytes 0-3 as bits 4-5; mins 4-7 = high nibbles of bytes 8-11 plus the top 2 bits
 * of bytes 4-7. sc and m each get 8 bytes. */
static inline void k4_scales(const uint8_t *q, uint8_t sc[8], uint8_t m[8]) {
  uint32_t w0, w1, w2;
  memcpy(&w0, q, 4);
  memcpy(&w1, q + 4, 4);
  memcpy(&w2, q + 8, 4);
  const uint32_t sc_lo = w0 & 0x3f3f3f3fu, m_lo = w1 & 0x3f3f3f3fu;
  const uint32_t sc_hi = (w2 & 0x0f0f0f0fu) | (((w0 >> 6) & 0x03030303u) << 4);
  const uint32_t m_hi = ((w2 >> 4) & 0x0f0f0f0fu) | (((w1 >> 6) & 0x03030303u) << 4);
  memcpy(sc, &sc_lo, 4);
  memcpy(sc + 4, &sc_hi, 4);
  memcpy(m, &m_lo, 4);
  memcpy(m + 4, &m_hi, 4);
}

static inline int32_t k4_summins(const uint8_t m[8], const int32_t *bsums) {
  int32_t s = 0;
  for (int j = 0; j < 8; j++) s += (int32_t)m[j] * (bsums[2 * j] + bsums[2 * j + 1]);
  return s;
}

/* v_b = f32( f32(f32(d_w·d_x)·sumi) − f32(f32(dmin_w·d_x)·summins) ) */
static inline float k4_value(const uint8_t *blk, float dx, int32_t sumi, int32_t summins) {
  const float dw = bf_load_f16(blk), dmin = bf_load_f16(blk + 2);
  return bf_scale_int(dw * dx, sumi) - bf_scale_int(dmin * dx, summins);
}

/* Q6_K: Σ sc_j·Σ(q−32)·x = Σ sc_j·Σ q·x − 32·Σ sc_j·bsums_j; this is the second term */
static inline int32_t q6_offset(const int8_t *sc, const int32_t *bsums) {
  int32_t s = 0;
  for (int j = 0; j < 16; j++) s += sc[j] * bsums[j];
  return 32 * s;
}

/*
 * One-token kernels that read activations re-laid once per call: matmul's 1-token path calls prep() once per call
 * (and thread) into a 64-byte-aligned buffer of prep_bytes(cols), then dot() per weight row. dot() gives exactly the
 * bits of the type's bf_dot_fn; only where the activations sit in memory changes. bf_dot1_prep_for returns NULL for
 * types (or builds) without one.
 */
typedef struct {
  size_t (*prep_bytes)(int cols);
  void (*prep)(const bf_act_row *a, int cols, void *buf);
  float (*dot)(const uint8_t *w, const void *buf, int cols);
} bf_dot1_prep;
const bf_dot1_prep *bf_dot1_prep_for(bf_dot_fn dot);

/*
 * Small batches (2 ≤ nt ≤ BF_DOTN_MAX tokens, batched decode): prep() re-lays the nt activation rows once per call
 * (and thread) into a 64-byte-aligned buffer of prep_bytes(nt, cols) (0 for kernels that read a[] as it is), then
 * dot() per weight row: a[0..nt) → out[0..nt). Each token's result has exactly the bits of the type's bf_dot_fn.
 * bf_dotn_for returns NULL for types (or builds) without one.
 */
#define BF_DOTN_MAX 7
typedef struct {
  size_t (*prep_bytes)(int nt, int cols);
  void (*prep)(const bf_act_row *a, int nt, int cols, void *buf);
  void (*dot)(const uint8_t *w, const bf_act_row *a, const void *buf, int nt, int cols, float *out);
  /* two weight rows, w and w + row_bytes: out[0..nt) for the first, out[nt..2nt) for the second, each with the bits
   * of dot(). Every activation load then serves two rows. NULL where it does not pay. */
  void (*dot2)(const uint8_t *w, size_t row_bytes, const bf_act_row *a, const void *buf, int nt, int cols, float *out);
  /* 1: dot() / dot2() prefetch their rows BF_DOTN_PREFETCH_BYTES ahead into L2 themselves, a few lines per step of
   * the kernel, and the row loop does not (Q8_0: a burst per row pair kept the line-fill buffers busy) */
  int self_prefetch;
} bf_dotn;
#define BF_DOTN_PREFETCH_BYTES (24 * 1024)
const bf_dotn *bf_dotn_for(bf_dot_fn dot);

#endif
