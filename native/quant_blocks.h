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

/* ggml get_scale_min_k4: 8 six-bit scales and mins packed in 12 bytes */
static inline void k4_scales(const uint8_t *q, uint8_t sc[8], uint8_t m[8]) {
  for (int j = 0; j < 8; j++) {
    if (j < 4) {
      sc[j] = q[j] & 63;
      m[j] = q[j + 4] & 63;
    } else {
      sc[j] = (uint8_t)((q[j + 4] & 0xf) | ((q[j - 4] >> 6) << 4));
      m[j] = (uint8_t)((q[j + 4] >> 4) | ((q[j] >> 6) << 4));
    }
  }
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

#endif
