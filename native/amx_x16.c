/*
 * AMX tiles for batches of x16 Q4_0 / Q8_0 weights (native/x16.c), weights as the B operand.
 *
 * The x16 layout already holds each block of 16 rows as VNNI rows: vector k = elements 4k..4k+3 of the 16 rows. So a
 * B tile (8 rows × 64 bytes: K = 32, N = 16 weight rows) is those 8 vectors, made signed once per call (Q4_0: the
 * nibbles − 8; Q8_0: the stored q + 128 flipped back) with no transposes, and A = 16 tokens × the block's 32 int8
 * activations. TDPBSSD gives C[n][m] = the exact block sum isum of docs/kernels.md. The float steps run with rows in
 * the lanes, token by token, in the reference order (v_b = f32(f32(d_w·d_x)·f32(isum)), acc[b % 8] += v_b in
 * increasing b, the 4/2/1 fold), and each token's 16 results are one contiguous store: the bits of the scalar kernel.
 *
 * Versus unpacking x16 rows for amx.c's tiles (rows as A, which needs an 8 × 8 transpose per 8 rows of every block),
 * 2048×768, 1 thread, L2-hot: Q4_0 16 tokens 0.116 vs 0.137 ms, 128 tokens 0.59 vs 0.68 ms; Q8_0 16 tokens 0.123 vs
 * 0.112 ms (amx.c reads Q8_0 rows in place), 128 tokens 0.60 vs 0.67 ms.
 */
#define _GNU_SOURCE
#include "amx.h"
#include "butterfly.h"

#include <stdlib.h>
#include <string.h>
#include "pool.h"
#include "quant_blocks.h"
#include "x16.h"

#if defined(__x86_64__) && defined(__linux__) && defined(BF_AVX512_QUANT) && \
    ((defined(__clang__) && __clang_major__ >= 12) || (!defined(__clang__) && defined(__GNUC__) && __GNUC__ >= 11))
#include <immintrin.h>

#define AMX_FN __attribute__((target("amx-tile,amx-int8")))
#define TILE 512                    /* bytes of one A or B tile: 16 × 32 or 8 × 64 */
#define ROW_BLOCK_BYTES (128 * 1024) /* B tiles of one row block, kept in L2 while every token group runs over it */

typedef struct {
  uint8_t palette, start_row, reserved[14];
  uint16_t colsb[16];
  uint8_t rows[16];
} __attribute__((aligned(64))) tile_config;

/* tmm0, tmm1 = C (16 tokens × 16 rows int32); tmm2, tmm3 = A (16 tokens × 32 int8); tmm4, tmm5 = B (8 × 64 bytes) */
static AMX_FN void load_config(void) {
  tile_config cfg;
  memset(&cfg, 0, sizeof cfg);
  cfg.palette = 1;
  for (int t = 0; t < 2; t++) { cfg.rows[t] = 16; cfg.colsb[t] = 64; }
  for (int t = 2; t < 4; t++) { cfg.rows[t] = 16; cfg.colsb[t] = 32; }
  for (int t = 4; t < 6; t++) { cfg.rows[t] = 8; cfg.colsb[t] = 64; }
  _tile_loadconfig(&cfg);
}

/* step k of the sequence: block seq[k]; the weights in place are stored in step order (x16_slot), the copy by block */
#define ISSUE(C, A, B, k)                                                                                         \
  do {                                                                                                            \
    _tile_zero(C);                                                                                                \
    _tile_loadd(A, ap + (size_t)seq[k] * TILE, 32);                                                               \
    _tile_loadd(B, wp + (size_t)(in_place ? (k) : seq[k]) * wstride, 64);                                         \
    if (in_place) _tile_dpbsud(C, A, B);                                                                          \
    else _tile_dpbssd(C, A, B);                                                                                   \
  } while (0)

/*
 * out[n·rows + 0..15] for the n_valid tokens of one group and one 16-row tile: ap = [nb] A tiles, dw = [nb][16] row
 * scales, dx = [nb][16] token scales; seq = blocks lane class by lane class. B tiles: with in_place, the Q8_0
 * weights themselves (unsigned q + 128, wstride = a block of the group), and bias[b·16 + n] = −128·Σx is added to
 * the sums; otherwise the signed copy (wstride = TILE). Two tile sets alternate so that a block's sums are stored
 * while the next one multiplies.
 */
static inline __attribute__((always_inline)) AMX_FN void tile_x16(
    const uint8_t *ap, const uint8_t *wp, size_t wstride, const int32_t *bias, const int in_place, const float *dw,
    const float *dx, int nb, const int32_t *seq, int32_t *cbuf, float *lanes, float *out, int64_t rows, int n_valid,
    const uint8_t *pf, int64_t n_pf) {
  const int64_t pf_per_block = (n_pf + nb - 1) / nb;
  int32_t *const c0 = cbuf, *const c1 = cbuf + 256;
  ISSUE(0, 2, 4, 0);
  if (nb > 1) ISSUE(1, 3, 5, 1);
  _tile_stored(0, c0, 64);
  if (nb > 2) ISSUE(0, 2, 4, 2);
  int p = 0;
  for (int l = 0; l < 8; l++) {
    __m512 acc[16];
#pragma GCC unroll 16
    for (int n = 0; n < 16; n++) acc[n] = _mm512_setzero_ps();
    for (int b = l; b < nb; b += 8, p++) {
      const int q = p + 1;
      if (q < nb) {
        if (q & 1) {
          _tile_stored(1, c1, 64);
          if (q + 2 < nb) ISSUE(1, 3, 5, q + 2);
        } else {
          _tile_stored(0, c0, 64);
          if (q + 2 < nb) ISSUE(0, 2, 4, q + 2);
        }
      }
      const int32_t *c = p & 1 ? c1 : c0;
      const __m512 w = _mm512_load_ps(dw + (size_t)b * 16);
      const float *x = dx + (size_t)b * 16;
#pragma GCC unroll 16
      for (int n = 0; n < 16; n++) {
        __m512i isum = _mm512_load_si512((const void *)(c + 16 * n));
        if (in_place) isum = _mm512_add_epi32(isum, _mm512_set1_epi32(bias[(size_t)b * 16 + n]));
        const __m512 s = _mm512_mul_ps(w, _mm512_set1_ps(x[n]));
        acc[n] = _mm512_add_ps(acc[n], _mm512_mul_ps(s, _mm512_cvtepi32_ps(isum)));
      }
      for (int64_t i = 0; i < pf_per_block && n_pf > 0; i++, n_pf--, pf += 64) _mm_prefetch((const char *)pf, _MM_HINT_T1);
    }
#pragma GCC unroll 16
    for (int n = 0; n < 16; n++) _mm512_store_ps(lanes + l * 256 + n * 16, acc[n]);
  }
  for (int n = 0; n < n_valid; n++) {
    __m512 v[8];
    for (int l = 0; l < 8; l++) v[l] = _mm512_load_ps(lanes + l * 256 + n * 16);
    for (int l = 0; l < 4; l++) v[l] = _mm512_add_ps(v[l], v[l + 4]);
    for (int l = 0; l < 2; l++) v[l] = _mm512_add_ps(v[l], v[l + 2]);
    _mm512_storeu_ps(out + n * rows, _mm512_add_ps(v[0], v[1]));
  }
}

/* Token group g: A tiles (token n's 32 quants of block b at row n), dx and bias = −128·Σx per block; tokens past n_tok
 * are zero */
static void pack_tokens(const bf_acts *acts, int64_t n_tok, int64_t g, int nb, uint8_t *ap, float *dx, int32_t *bias) {
  for (int n = 0; n < 16; n++) {
    const int64_t t = g * 16 + n;
    if (t < n_tok) {
      const bf_act_row row = bf_act_row_at(acts, t);
      for (int b = 0; b < nb; b++) {
        memcpy(ap + (size_t)b * TILE + 32 * n, row.q + (size_t)b * BF_QK, 32);
        dx[(size_t)b * 16 + n] = row.d[b];
        bias[(size_t)b * 16 + n] = -128 * row.sums[b];
      }
    } else {
      for (int b = 0; b < nb; b++) {
        memset(ap + (size_t)b * TILE + 32 * n, 0, 32);
        dx[(size_t)b * 16 + n] = 0.0f;
        bias[(size_t)b * 16 + n] = 0;
      }
    }
  }
}

/* One 16-row group's row scales and B tiles, by block: the x16 vectors (block b in slot seq⁻¹(b), read in step k
 * order) as signed quants (Q4_0: nibble − 8; Q8_0: the stored q + 128 flipped back) */
static void unpack_group(const uint8_t *grp, int nb, int q8, int in_place, const int32_t *seq, uint8_t *wp, float *dw) {
  const __m512i m4 = _mm512_set1_epi8(0x0f), eight = _mm512_set1_epi8(8), flip = _mm512_set1_epi8((char)0x80);
  const size_t bb = 16 * (size_t)(q8 ? Q8_0_BYTES : Q4_0_BYTES);
  for (int k = 0; k < nb; k++) {
    const int b = seq[k];
    const uint8_t *p = grp + (size_t)k * bb;
    uint8_t *o = wp + (size_t)b * TILE;
    _mm512_store_ps(dw + (size_t)b * 16, _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)p)));
    if (in_place) continue;
    if (q8) {
      for (int j = 0; j < 8; j++)
        _mm512_store_si512((void *)(o + 64 * j), _mm512_xor_si512(_mm512_loadu_si512((const void *)(p + 32 + 64 * j)), flip));
    } else {
      for (int j = 0; j < 4; j++) {
        const __m512i v = _mm512_loadu_si512((const void *)(p + 32 + 64 * j));
        _mm512_store_si512((void *)(o + 64 * j), _mm512_sub_epi8(_mm512_and_si512(v, m4), eight));
        _mm512_store_si512((void *)(o + 64 * (j + 4)), _mm512_sub_epi8(bf_hi_nibbles(v), eight));
      }
    }
  }
}

static size_t round64(size_t n) { return (n + 63) & ~(size_t)63; }

static AMX_FN int64_t amx_rows_x16(const bf_matmul_job *job, int64_t row_begin, int64_t row_end) {
  const int cols = (int)job->cols, nb = cols / BF_QK, q8 = job->type == BF_Q8_0;
  const int64_t n_tok = job->n_tok, n_groups = (n_tok + 15) / 16;
  const int64_t n_tiles = (row_end - row_begin) / 16, full_end = row_begin + 16 * n_tiles;
  const size_t wtile = (size_t)nb * TILE, group_bytes = 16 * job->row_bytes;
  /* Q8_0 with one token group: B tiles straight from the weights, and a bias add per sum (cheaper than a
   * copy per call: 2048×768, 16 tokens, L2-hot 0.098 vs 0.123 ms); with more groups the copy is shared and the add
   * is not (128 tokens: 0.60 vs 0.68 ms) */
  const int in_place = q8 && n_groups == 1;
  /* With one or two token groups, one 16-row group at a time, unpacked just before its tiles run, so the copy is
   * written to and read from L1 (`medium` decode step, 1 thread, matmul: B=16 12.1 → 10.0 ms, B=32 17.9 → 16.5 ms;
   * B=64 30.1 → 33.3 ms, so larger batches keep the row blocks) */
  int64_t rb_tiles = n_groups <= 2 ? 1 : (int64_t)(ROW_BLOCK_BYTES / wtile);
  if (rb_tiles < 1) rb_tiles = 1;
  if (rb_tiles > n_tiles) rb_tiles = n_tiles;
  const size_t ap_bytes = round64((size_t)n_groups * nb * TILE);
  const size_t dx_bytes = round64((size_t)n_groups * nb * 16 * sizeof(float));
  const size_t wp_bytes = round64((size_t)rb_tiles * wtile);
  const size_t dw_bytes = round64((size_t)rb_tiles * nb * 16 * sizeof(float));
  const size_t seq_bytes = round64((size_t)nb * sizeof(int32_t));
  const size_t fixed = 2 * 256 * sizeof(int32_t) + 8 * 256 * sizeof(float);
  uint8_t *mem = bf_thread_scratch(ap_bytes + 2 * dx_bytes + wp_bytes + dw_bytes + seq_bytes + fixed);
  if (!mem) return row_begin;
  uint8_t *at = mem;
  uint8_t *ap = at; at += ap_bytes;
  float *dx = (float *)at; at += dx_bytes;
  int32_t *bias = (int32_t *)at; at += dx_bytes;
  uint8_t *wp = at; at += wp_bytes;
  float *dw = (float *)at; at += dw_bytes;
  int32_t *seq = (int32_t *)at; at += seq_bytes;
  int32_t *cbuf = (int32_t *)at;
  float *lanes = (float *)(cbuf + 512);

  int k = 0; /* the blocks in the order they are accumulated, which is also the order they are stored in */
  for (int l = 0; l < 8; l++)
    for (int b = l; b < nb; b += 8) seq[k++] = b;
  for (int64_t g = 0; g < n_groups; g++)
    pack_tokens(job->acts, n_tok, g, nb, ap + (size_t)g * nb * TILE, dx + (size_t)g * nb * 16, bias + (size_t)g * nb * 16);
  load_config();
  for (int64_t t0 = 0; t0 < n_tiles; t0 += rb_tiles) {
    const int64_t nt = t0 + rb_tiles <= n_tiles ? rb_tiles : n_tiles - t0;
    for (int64_t i = 0; i < nt; i++)
      unpack_group(job->w + (size_t)(row_begin / 16 + t0 + i) * group_bytes, nb, q8, in_place, seq, wp + i * wtile, dw + i * nb * 16);
    __asm__ volatile("" ::: "memory"); /* the tile loads read ap and wp as plain memory */
    /* the next row block is brought into L2 a slice per tile call, so its unpacking does not wait for RAM */
    const int64_t next_tiles = n_tiles - (t0 + nt) < rb_tiles ? n_tiles - (t0 + nt) : rb_tiles;
    const uint8_t *pf_next = job->w + (size_t)(row_begin / 16 + t0 + nt) * group_bytes;
    const uint8_t *pf_end = pf_next + (size_t)next_tiles * group_bytes;
    const int64_t pf_per_call = ((int64_t)(pf_end - pf_next) / 64 + n_groups * nt - 1) / (n_groups * nt);
    for (int64_t g = 0; g < n_groups; g++) {
      const int n_valid = n_tok - g * 16 < 16 ? (int)(n_tok - g * 16) : 16;
      for (int64_t i = 0; i < nt; i++) {
        const int64_t r0 = row_begin + 16 * (t0 + i);
        const int64_t n_pf = pf_end - pf_next < 64 * pf_per_call ? (pf_end - pf_next) / 64 : pf_per_call;
        const uint8_t *a = ap + (size_t)g * nb * TILE;
        const float *d = dx + (size_t)g * nb * 16;
        float *o = job->out + g * 16 * job->rows + r0;
        if (in_place)
          tile_x16(a, job->w + (size_t)(r0 / 16) * group_bytes + 32, 16 * Q8_0_BYTES, bias + (size_t)g * nb * 16, 1,
                   dw + i * nb * 16, d, nb, seq, cbuf, lanes, o, job->rows, n_valid, pf_next, n_pf);
        else
          tile_x16(a, wp + i * wtile, TILE, NULL, 0, dw + i * nb * 16, d, nb, seq, cbuf, lanes, o, job->rows, n_valid,
                   pf_next, n_pf);
        pf_next += 64 * n_pf;
      }
    }
  }
  _tile_release();
  return full_end;
}

int64_t bf_amx_rows_x16(const bf_matmul_job *job, int64_t row_begin, int64_t row_end) {
  if (row_end - row_begin < 16 || job->n_tok < 1 || !bf_amx_available()) return row_begin;
  return amx_rows_x16(job, row_begin, row_end);
}

#else

int64_t bf_amx_rows_x16(const bf_matmul_job *job, int64_t row_begin, int64_t row_end) {
  (void)job;
  (void)row_end;
  return row_begin;
}

#endif
