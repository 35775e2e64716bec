/*
 * Q8_0 / Q4_0 weights × Q8_0 activations (and, further down, Q4_K / Q5_K / Q6_K × Q8_K) on Intel AMX tiles, for
 * batches of BF_AMX_MIN_TOK tokens and more.
 *
 * Every tile multiply covers exactly one 32-element block (K = 32):
 *   A = 16 weight rows × the 32 int8 quants of block b (Q8_0: loaded straight from the weight rows, stride = the
 *       row's byte length; Q4_0: from a per-thread copy of the 16 rows unpacked to nibble − 8),
 *   B = the 32 int8 quants of block b of 16 tokens in the VNNI layout (8 rows of 16 tokens × 4 bytes),
 *   C = 16 × 16 int32 = the exact block sums isum_b of docs/kernels.md (TDPBSSD, signed × signed).
 * The float steps then run in the reference order, 16 tokens per vector: v_b = f32(f32(d_w·d_x)·f32(isum_b)),
 * acc[b % 8] += v_b with the blocks of one lane in increasing order (the lanes are independent, so the lanes are
 * done one after the other), and the 4/2/1 fold. So every output has the bits of the scalar kernel.
 *
 * Threads split rows (addon.c); each thread loads its own tile configuration and releases the tiles when done.
 * Rows are taken 16 at a time; the last (row_end − row_begin) % 16 rows are left to the caller's usual path.
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
#define BF_AMX_BUILD 1
#endif

#ifdef BF_AMX_BUILD
#include <cpuid.h>
#include <immintrin.h>
#include <pthread.h>
#include <sys/syscall.h>
#include <unistd.h>

#define ARCH_GET_XCOMP_PERM 0x1022
#define ARCH_REQ_XCOMP_PERM 0x1023
#define XFEATURE_XTILEDATA 18

static int amx_ok;
static pthread_once_t amx_once = PTHREAD_ONCE_INIT;

/* CPUID.(7,0):EDX bit 24 = AMX-TILE, bit 25 = AMX-INT8. Linux hands out the 8 KB tile state only on request;
 * the permission is per process, so threads started before or after this call may all use the tiles. */
static void amx_detect(void) {
  const char *env = getenv("BUTTERFLY_AMX");
  if (env && env[0] == '0') return;
  unsigned a, b, c, d;
  if (__get_cpuid_max(0, NULL) < 7) return;
  __cpuid_count(7, 0, a, b, c, d);
  if (!(d & (1u << 24)) || !(d & (1u << 25))) return;
  if (syscall(SYS_arch_prctl, ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA) != 0) return;
  unsigned long perm = 0;
  if (syscall(SYS_arch_prctl, ARCH_GET_XCOMP_PERM, &perm) != 0 || !(perm & (1ul << XFEATURE_XTILEDATA))) return;
  amx_ok = 1;
}

int bf_amx_available(void) {
  pthread_once(&amx_once, amx_detect);
  return amx_ok;
}

#define AMX_FN __attribute__((target("amx-tile,amx-int8")))
/* every AMX-INT8 CPU also has AVX512-VNNI (used for the Q4_K / Q5_K min sums) */
#define AMX_VNNI_FN __attribute__((target("amx-tile,amx-int8,avx512vnni")))
#define AI static inline __attribute__((always_inline))

#define B_TILE_BYTES 512 /* 8 rows × 64 bytes: one block of 16 tokens */

/* Q8_0 / Q4_0 tile layout, load_tile_config(2, 32, 8): palette 1; tmm0, tmm1 = C (16 × 16 int32), tmm2, tmm3 = A (16 rows × 32 int8), tmm4, tmm5 = B (8 × 64 bytes) */
typedef struct {
  uint8_t palette, start_row, reserved[14];
  uint16_t colsb[16];
  uint8_t rows[16];
} __attribute__((aligned(64))) tile_config;

/* Tiles 0..n_c-1 hold C (16 × 16 int32); the next two hold A (16 weight rows × a_colsb int8); the two after that
 * hold B (b_rows VNNI rows × 64 bytes). Each thread loads its own configuration. */
static AMX_FN void load_tile_config(int n_c, int a_colsb, int b_rows) {
  tile_config cfg;
  memset(&cfg, 0, sizeof cfg);
  cfg.palette = 1;
  for (int t = 0; t < n_c; t++) { cfg.rows[t] = 16; cfg.colsb[t] = 64; }
  for (int t = n_c; t < n_c + 2; t++) { cfg.rows[t] = 16; cfg.colsb[t] = (uint16_t)a_colsb; }
  for (int t = n_c + 2; t < n_c + 4; t++) { cfg.rows[t] = (uint8_t)b_rows; cfg.colsb[t] = 64; }
  _tile_loadconfig(&cfg);
}

/* acc[m] (16 tokens) += f32(f32(dw[m]·dx)·f32(c[m])) for the 16 rows m of one block */
AI void block_epilogue(__m512 acc[16], const int32_t *c, const float *dw, const float *dx) {
  const __m512 x = _mm512_load_ps(dx);
#pragma GCC unroll 16
  for (int m = 0; m < 16; m++) {
    const __m512 s = _mm512_mul_ps(_mm512_set1_ps(dw[m]), x);
    acc[m] = _mm512_add_ps(acc[m], _mm512_mul_ps(s, _mm512_cvtepi32_ps(_mm512_load_si512((const void *)(c + 16 * m)))));
  }
}

/*
 * res[m·16 + n] = dot(row m, token n) for 16 rows × 16 tokens. Row m's quants of block b start at
 * a + m·a_stride + b·a_step; dw = [nb][16] row scales, bp = [nb] B tiles, dx = [nb][16] token scales;
 * seq = the nb blocks lane by lane (lane l: blocks l, l+8, l+16, … in increasing order, as acc[b % 8] sees them).
 * cbuf: 2 × 256 int32, lanes: 8 × 256 floats (both 64-byte aligned).
 *
 * Software pipeline over two tile sets (C, A, B) = (tmm0, tmm2, tmm4) and (tmm1, tmm3, tmm5), used by even and
 * odd positions of seq: while the vector units do the float work of position p, the sums of position p+1 are
 * stored and position p+3 is loaded and multiplied in the set just freed.
 */
#define ISSUE(C, A, B, b)                                                                                         \
  do {                                                                                                            \
    _tile_zero(C);                                                                                                \
    _tile_loadd(A, a + (size_t)(b) * a_step, a_stride);                                                           \
    _tile_loadd(B, bp + (size_t)(b) * B_TILE_BYTES, 64);                                                          \
    _tile_dpbssd(C, A, B);                                                                                        \
  } while (0)

static AMX_FN void tile16x16(const int8_t *a, long a_stride, size_t a_step, const float *dw, const uint8_t *bp,
                             const float *dx, int nb, const int32_t *seq, int32_t *cbuf, float *lanes, float *res,
                             const uint8_t *pf, int64_t n_pf) {
  /* n_pf lines from pf are prefetched into L2, spread over the blocks (a burst would fill the miss buffers) */
  const int64_t pf_per_block = (n_pf + nb - 1) / nb;
  int32_t *const c0 = cbuf, *const c1 = cbuf + 256;
  ISSUE(0, 2, 4, seq[0]);
  if (nb > 1) ISSUE(1, 3, 5, seq[1]);
  _tile_stored(0, c0, 64);
  if (nb > 2) ISSUE(0, 2, 4, seq[2]);
  int p = 0;
  for (int l = 0; l < 8; l++) {
    __m512 acc[16];
#pragma GCC unroll 16
    for (int m = 0; m < 16; m++) acc[m] = _mm512_setzero_ps();
    for (int b = l; b < nb; b += 8, p++) {
      const int q = p + 1;
      if (q < nb) {
        if (q & 1) {
          _tile_stored(1, c1, 64);
          if (q + 2 < nb) ISSUE(1, 3, 5, seq[q + 2]);
        } else {
          _tile_stored(0, c0, 64);
          if (q + 2 < nb) ISSUE(0, 2, 4, seq[q + 2]);
        }
      }
      block_epilogue(acc, p & 1 ? c1 : c0, dw + (size_t)b * 16, dx + (size_t)b * 16);
      for (int64_t i = 0; i < pf_per_block && n_pf > 0; i++, n_pf--, pf += 64) _mm_prefetch((const char *)pf, _MM_HINT_T1);
    }
#pragma GCC unroll 16
    for (int m = 0; m < 16; m++) _mm512_store_ps(lanes + l * 256 + m * 16, acc[m]);
  }
  /* bf_fold8, 16 tokens at a time */
  for (int m = 0; m < 16; m++) {
    __m512 v[8];
    for (int l = 0; l < 8; l++) v[l] = _mm512_load_ps(lanes + l * 256 + m * 16);
    for (int l = 0; l < 4; l++) v[l] = _mm512_add_ps(v[l], v[l + 4]);
    for (int l = 0; l < 2; l++) v[l] = _mm512_add_ps(v[l], v[l + 2]);
    _mm512_store_ps(res + m * 16, _mm512_add_ps(v[0], v[1]));
  }
}

/* Token group g's B tiles (VNNI: tile row k4 holds bytes 4·k4 .. 4·k4+3 of each token's block) and scales;
 * tokens past n_tok are zeros. */
static void pack_tokens(const bf_acts *acts, int64_t n_tok, int64_t g, int nb, uint8_t *bp, float *dx) {
  for (int n = 0; n < 16; n++) {
    const int64_t t = g * 16 + n;
    if (t < n_tok) {
      const bf_act_row row = bf_act_row_at(acts, t);
      for (int b = 0; b < nb; b++) {
        uint32_t *dst = (uint32_t *)(bp + (size_t)b * B_TILE_BYTES);
        const uint8_t *src = (const uint8_t *)(row.q + (size_t)b * BF_QK);
        for (int k4 = 0; k4 < 8; k4++) memcpy(dst + k4 * 16 + n, src + 4 * k4, 4);
        dx[(size_t)b * 16 + n] = row.d[b];
      }
    } else {
      for (int b = 0; b < nb; b++) {
        uint32_t *dst = (uint32_t *)(bp + (size_t)b * B_TILE_BYTES);
        for (int k4 = 0; k4 < 8; k4++) dst[k4 * 16 + n] = 0;
        dx[(size_t)b * 16 + n] = 0.0f;
      }
    }
  }
}

/* 16 Q4_0 rows → int8 (nibble − 8) rows of cols bytes: block b's low nibbles are elements 0-15, high 16-31 */
static void unpack_q4_0(const uint8_t *w, size_t row_bytes, int nb, int cols, int8_t *dst) {
  const __m128i m4 = _mm_set1_epi8(0x0f), eight = _mm_set1_epi8(8);
  for (int m = 0; m < 16; m++) {
    const uint8_t *row = w + (size_t)m * row_bytes;
    int8_t *d = dst + (size_t)m * cols;
    for (int b = 0; b < nb; b++) {
      const __m128i q = _mm_loadu_si128((const __m128i *)(row + (size_t)b * Q4_0_BYTES + 2));
      _mm_storeu_si128((__m128i *)(d + b * BF_QK), _mm_sub_epi8(_mm_and_si128(q, m4), eight));
      _mm_storeu_si128((__m128i *)(d + b * BF_QK + 16), _mm_sub_epi8(_mm_and_si128(_mm_srli_epi16(q, 4), m4), eight));
    }
  }
}

static size_t round64(size_t n) { return (n + 63) & ~(size_t)63; }

/* res = 16 rows × 16 tokens; token n's 16 row values go to out[n·rows .. +16) for n < n_valid (a 16×16 transpose
 * in registers: data movement only) */
static void store_transposed(const float *res, float *out, int64_t rows, int n_valid) {
  __m512 r[16], a[16], b[16];
  for (int i = 0; i < 16; i++) r[i] = _mm512_load_ps(res + 16 * i);
  for (int i = 0; i < 8; i++) {
    a[2 * i] = _mm512_unpacklo_ps(r[2 * i], r[2 * i + 1]);
    a[2 * i + 1] = _mm512_unpackhi_ps(r[2 * i], r[2 * i + 1]);
  }
  /* b[4j + c], 128-bit lane L = element 4L + c of rows 4j .. 4j+3 */
  for (int j = 0; j < 4; j++) {
    const __m512d p0 = _mm512_castps_pd(a[4 * j]), p1 = _mm512_castps_pd(a[4 * j + 1]);
    const __m512d p2 = _mm512_castps_pd(a[4 * j + 2]), p3 = _mm512_castps_pd(a[4 * j + 3]);
    b[4 * j] = _mm512_castpd_ps(_mm512_unpacklo_pd(p0, p2));
    b[4 * j + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(p0, p2));
    b[4 * j + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(p1, p3));
    b[4 * j + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(p1, p3));
  }
  for (int c = 0; c < 4; c++) {
    const __m512 u0 = _mm512_shuffle_f32x4(b[c], b[4 + c], 0x44), u1 = _mm512_shuffle_f32x4(b[c], b[4 + c], 0xee);
    const __m512 v0 = _mm512_shuffle_f32x4(b[8 + c], b[12 + c], 0x44), v1 = _mm512_shuffle_f32x4(b[8 + c], b[12 + c], 0xee);
    const __m512 col[4] = {_mm512_shuffle_f32x4(u0, v0, 0x88), _mm512_shuffle_f32x4(u0, v0, 0xdd),
                           _mm512_shuffle_f32x4(u1, v1, 0x88), _mm512_shuffle_f32x4(u1, v1, 0xdd)};
    for (int l = 0; l < 4; l++) {
      const int n = 4 * l + c;
      if (n < n_valid) _mm512_storeu_ps(out + n * rows, col[l]);
    }
  }
}

/* dw[b·16 + m] = F16 scale of block b of row m, for 16 rows (a gather of the 4 bytes at each scale; the upper two
 * are the block's first quants, always in bounds) */
static void row_scales(const uint8_t *w, size_t row_bytes, size_t blk_bytes, int nb, float *dw) {
  const __m512i offs = _mm512_mullo_epi32(_mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
                                          _mm512_set1_epi32((int)row_bytes));
  for (int b = 0; b < nb; b++) {
    const __m512i g = _mm512_i32gather_epi32(offs, (const void *)(w + (size_t)b * blk_bytes), 1);
    _mm512_store_ps(dw + (size_t)b * 16, _mm512_cvtph_ps(_mm512_cvtepi32_epi16(g)));
  }
}

/* Weight bytes (or unpacked Q4_0 bytes) of one row block, kept in L2 while every token group runs over it */
#define ROW_BLOCK_BYTES (128 * 1024)

static AMX_FN int64_t amx_rows(const bf_matmul_job *job, int q4, int64_t row_begin, int64_t row_end) {
  const int cols = (int)job->cols, nb = cols / BF_QK;
  const int64_t n_tok = job->n_tok, n_groups = (n_tok + 15) / 16;
  const int64_t n_tiles = (row_end - row_begin) / 16, full_end = row_begin + 16 * n_tiles;
  const size_t tile_bytes = 16 * (q4 ? (size_t)cols : job->row_bytes);
  int64_t rb_tiles = (int64_t)(ROW_BLOCK_BYTES / tile_bytes);
  if (rb_tiles < 1) rb_tiles = 1;
  if (rb_tiles > n_tiles) rb_tiles = n_tiles;
  const size_t bp_bytes = round64((size_t)n_groups * nb * B_TILE_BYTES);
  const size_t dx_bytes = round64((size_t)n_groups * nb * 16 * sizeof(float));
  const size_t dw_tile = (size_t)nb * 16; /* floats per 16-row tile */
  const size_t dw_bytes = round64((size_t)rb_tiles * dw_tile * sizeof(float));
  const size_t a_bytes = q4 ? round64((size_t)rb_tiles * 16 * cols) : 0;
  const size_t seq_bytes = round64((size_t)nb * sizeof(int32_t));
  const size_t fixed = 2 * 256 * sizeof(int32_t) + 8 * 256 * sizeof(float) + 256 * sizeof(float);
  uint8_t *mem = bf_thread_scratch(bp_bytes + dx_bytes + dw_bytes + a_bytes + seq_bytes + fixed);
  if (!mem) return row_begin;
  uint8_t *bp = mem;
  float *dx = (float *)(mem + bp_bytes);
  float *dw = (float *)(mem + bp_bytes + dx_bytes);
  int8_t *abuf = (int8_t *)(mem + bp_bytes + dx_bytes + dw_bytes);
  int32_t *seq = (int32_t *)(mem + bp_bytes + dx_bytes + dw_bytes + a_bytes);
  int32_t *cbuf = (int32_t *)(mem + bp_bytes + dx_bytes + dw_bytes + a_bytes + seq_bytes);
  float *lanes = (float *)(cbuf + 512);
  float *res = lanes + 8 * 256;

  int k = 0;
  for (int l = 0; l < 8; l++)
    for (int b = l; b < nb; b += 8) seq[k++] = b;
  for (int64_t g = 0; g < n_groups; g++)
    pack_tokens(job->acts, n_tok, g, nb, bp + (size_t)g * nb * B_TILE_BYTES, dx + (size_t)g * nb * 16);

  const size_t blk_bytes = q4 ? Q4_0_BYTES : Q8_0_BYTES;
  const long a_stride = q4 ? (long)cols : (long)job->row_bytes;
  const size_t a_step = q4 ? BF_QK : Q8_0_BYTES;
  load_tile_config(2, 32, 8);
  /* Row blocks of rb_tiles × 16 rows; inside, token groups outer and 16-row tiles inner, so that the outputs of a
   * token are written as runs of 16·rb_tiles floats. */
  for (int64_t t0 = 0; t0 < n_tiles; t0 += rb_tiles) {
    const int64_t nt = t0 + rb_tiles <= n_tiles ? rb_tiles : n_tiles - t0;
    for (int64_t i = 0; i < nt; i++) {
      const uint8_t *w = job->w + (size_t)(row_begin + 16 * (t0 + i)) * job->row_bytes;
      row_scales(w, job->row_bytes, blk_bytes, nb, dw + i * dw_tile);
      if (q4) unpack_q4_0(w, job->row_bytes, nb, cols, abuf + (size_t)i * 16 * cols);
    }
    __asm__ volatile("" ::: "memory"); /* the tile loads read bp and abuf as plain memory */
    /* the next row block's weights are brought into L2 a slice per tile call, so its first touch (the row scales)
     * does not wait for RAM */
    const int64_t next_tiles = n_tiles - (t0 + nt) < rb_tiles ? n_tiles - (t0 + nt) : rb_tiles;
    const uint8_t *pf_next = job->w + (size_t)(row_begin + 16 * (t0 + nt)) * job->row_bytes;
    const uint8_t *pf_end = pf_next + (size_t)next_tiles * 16 * job->row_bytes;
    const int64_t pf_per_call = ((int64_t)(pf_end - pf_next) / 64 + n_groups * nt - 1) / (n_groups * nt);
    for (int64_t g = 0; g < n_groups; g++) {
      const int n_valid = n_tok - g * 16 < 16 ? (int)(n_tok - g * 16) : 16;
      for (int64_t i = 0; i < nt; i++) {
        const int64_t r0 = row_begin + 16 * (t0 + i);
        const int8_t *a = q4 ? abuf + (size_t)i * 16 * cols : (const int8_t *)(job->w + (size_t)r0 * job->row_bytes + 2);
        const int64_t n_pf = pf_end - pf_next < 64 * pf_per_call ? (pf_end - pf_next) / 64 : pf_per_call;
        tile16x16(a, a_stride, a_step, dw + i * dw_tile, bp + (size_t)g * nb * B_TILE_BYTES, dx + (size_t)g * nb * 16,
                  nb, seq, cbuf, lanes, res, pf_next, n_pf);
        pf_next += 64 * n_pf;
        store_transposed(res, job->out + g * 16 * job->rows + r0, job->rows, n_valid);
      }
    }
  }
  _tile_release();
  return full_end;
}

/* ---- Q4_K / Q5_K (docs/kernels.md "Integer super-blocks") ----
 * One TDPBSSD per 32-element sub-block j of super-block b: A = 16 rows' unpacked quants (Q4_K: nibble 0..15; Q5_K:
 * nibble + 16·high bit, 0..31), B = the tokens' Q8_K quants of that sub-block (VNNI). C = the exact int32 Σ_k q·x
 * of each (row, token, sub-block). Then, in int32 (exact, so any order gives the same int): sumi = Σ_j sc_j·C_j and
 * summins = Σ_j m_j·(bsums[2j] + bsums[2j+1]); then v_b = f32(f32(f32(d_w·d_x)·f32(sumi)) − f32(f32(dmin_w·d_x)·
 * f32(summins))), acc[b % 8] += v_b lane by lane in increasing b, and the 4/2/1 fold, as the reference does. */

/* Q4_K / Q5_K tile layout, load_tile_config(4, 32, 8): tmm0-3 = C (16 × 16 int32), tmm4, tmm5 = A (16 rows × 32 int8), tmm6, tmm7 = B (8 × 64 bytes) */

/* Token group g: B tiles of every 32-element sub-block (nb·8 of them), dx[b·16 + n] = d of super-block b,
 * bsp[(b·8 + j)·16 + n] = bsums[2j] + bsums[2j+1] (Q4_K / Q5_K) or, with q6, bsp[(b·16 + j)·16 + n] =
 * 32·bsums[j]; tokens past n_tok are zeros. */
static void pack_tokens_k(const bf_acts *acts, int64_t n_tok, int64_t g, int nb, int q6, uint8_t *bp, float *dx,
                          int32_t *bsp) {
  const int n32 = nb * 8;
  for (int n = 0; n < 16; n++) {
    const int64_t t = g * 16 + n;
    if (t < n_tok) {
      const bf_act_row row = bf_act_row_at(acts, t);
      for (int c = 0; c < n32; c++) {
        uint32_t *dst = (uint32_t *)(bp + (size_t)c * B_TILE_BYTES);
        const uint8_t *src = (const uint8_t *)(row.q + (size_t)c * 32);
        for (int k4 = 0; k4 < 8; k4++) memcpy(dst + k4 * 16 + n, src + 4 * k4, 4);
        if (q6) {
          bsp[(size_t)(2 * c) * 16 + n] = 32 * row.sums[2 * c];
          bsp[(size_t)(2 * c + 1) * 16 + n] = 32 * row.sums[2 * c + 1];
        } else if ((c & 1) == 0) {
          /* pairs (j, j+1) = (c, c+1) as two int16 (|bsums pair| ≤ 32·127) for vpdpwssd */
          const int32_t s0 = row.sums[2 * c] + row.sums[2 * c + 1], s1 = row.sums[2 * c + 2] + row.sums[2 * c + 3];
          bsp[(size_t)(c / 2) * 16 + n] = (int32_t)(((uint32_t)(uint16_t)s0) | ((uint32_t)(uint16_t)s1 << 16));
        }
      }
      for (int b = 0; b < nb; b++) dx[(size_t)b * 16 + n] = row.d[b];
    } else {
      for (int c = 0; c < n32; c++) {
        uint32_t *dst = (uint32_t *)(bp + (size_t)c * B_TILE_BYTES);
        for (int k4 = 0; k4 < 8; k4++) dst[k4 * 16 + n] = 0;
        bsp[(size_t)c * 16 + n] = 0;
        if (q6) bsp[(size_t)(n32 + c) * 16 + n] = 0;
      }
      for (int b = 0; b < nb; b++) dx[(size_t)b * 16 + n] = 0.0f;
    }
  }
}

/* 16 Q4_K / Q5_K rows → int8 quants in element order (dst row m at m·cols), and per super-block b:
 * sc/mn[(b·8 + j)·16 + m] (int32), dw/dmin[b·16 + m] */
static void unpack_k4(const uint8_t *w, size_t row_bytes, int nb, int cols, int high, int8_t *dst, int32_t *sc,
                      int32_t *mn, float *dw, float *dmin) {
  const __m256i m4 = _mm256_set1_epi8(0x0f), one = _mm256_set1_epi8(1);
  const size_t blk_bytes = high ? Q5_K_BYTES : Q4_K_BYTES;
  for (int m = 0; m < 16; m++) {
    const uint8_t *row = w + (size_t)m * row_bytes;
    int8_t *d = dst + (size_t)m * cols;
    for (int b = 0; b < nb; b++) {
      const uint8_t *blk = row + (size_t)b * blk_bytes;
      uint8_t s8[8], m8[8];
      k4_scales(blk + 4, s8, m8);
      for (int j = 0; j < 8; j++) sc[((size_t)b * 8 + j) * 16 + m] = s8[j];
      for (int j = 0; j < 4; j++) mn[((size_t)b * 4 + j) * 16 + m] = (int32_t)(m8[2 * j] | ((uint32_t)m8[2 * j + 1] << 16));
      dw[(size_t)b * 16 + m] = bf_load_f16(blk);
      dmin[(size_t)b * 16 + m] = bf_load_f16(blk + 2);
      const uint8_t *qs = blk + (high ? 48 : 16);
      const __m256i qh = high ? _mm256_loadu_si256((const __m256i *)(blk + 16)) : _mm256_setzero_si256();
      for (int i = 0; i < 4; i++) {
        const __m256i q = _mm256_loadu_si256((const __m256i *)(qs + 32 * i));
        __m256i lo = _mm256_and_si256(q, m4), hi = _mm256_and_si256(_mm256_srli_epi16(q, 4), m4);
        if (high) {
          lo = _mm256_or_si256(lo, _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 2 * i), one), 4));
          hi = _mm256_or_si256(hi, _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 2 * i + 1), one), 4));
        }
        _mm256_storeu_si256((__m256i *)(d + (size_t)b * BF_QK_K + 64 * i), lo);
        _mm256_storeu_si256((__m256i *)(d + (size_t)b * BF_QK_K + 64 * i + 32), hi);
      }
    }
  }
}

#define SUBK(C, A, B, j)                                                                                          \
  do {                                                                                                            \
    _tile_zero(C);                                                                                                \
    _tile_loadd(A, a + 32 * (j), a_stride);                                                                       \
    _tile_loadd(B, bpb + (size_t)(j) * B_TILE_BYTES, 64);                                                         \
    _tile_dpbssd(C, A, B);                                                                                        \
  } while (0)

/* res[m·16 + n] for 16 rows × 16 tokens of a Q4_K / Q5_K job; a = unpacked rows (stride cols) */
static AMX_VNNI_FN void tile16x16_k(const int8_t *a0, long a_stride, const int32_t *sc, const int32_t *mn, const float *dw,
                               const float *dmin, const uint8_t *bp, const float *dx, const int32_t *bsp, int nb,
                               int32_t *cbuf, float *lanes, float *res) {
  for (int l = 0; l < 8; l++) {
    __m512 acc[16];
#pragma GCC unroll 16
    for (int m = 0; m < 16; m++) acc[m] = _mm512_setzero_ps();
    for (int b = l; b < nb; b += 8) {
      const int8_t *a = a0 + (size_t)b * BF_QK_K;
      const uint8_t *bpb = bp + (size_t)b * 8 * B_TILE_BYTES;
      SUBK(0, 4, 6, 0); SUBK(1, 5, 7, 1); SUBK(2, 4, 6, 2); SUBK(3, 5, 7, 3);
      _tile_stored(0, cbuf, 64); _tile_stored(1, cbuf + 256, 64);
      _tile_stored(2, cbuf + 512, 64); _tile_stored(3, cbuf + 768, 64);
      SUBK(0, 4, 6, 4); SUBK(1, 5, 7, 5); SUBK(2, 4, 6, 6); SUBK(3, 5, 7, 7);
      _tile_stored(0, cbuf + 1024, 64); _tile_stored(1, cbuf + 1280, 64);
      _tile_stored(2, cbuf + 1536, 64); _tile_stored(3, cbuf + 1792, 64);
      const __m512 x = _mm512_load_ps(dx + (size_t)b * 16);
      __m512i bs[4];
      for (int j = 0; j < 4; j++) bs[j] = _mm512_load_si512((const void *)(bsp + ((size_t)b * 4 + j) * 16));
      const int32_t *scb = sc + (size_t)b * 128, *mnb = mn + (size_t)b * 64;
#pragma GCC unroll 4
      for (int m = 0; m < 16; m++) {
        __m512i si = _mm512_setzero_si512(), sm = _mm512_setzero_si512();
        for (int j = 0; j < 8; j++) {
          si = _mm512_add_epi32(si, _mm512_mullo_epi32(_mm512_set1_epi32(scb[j * 16 + m]),
                                                        _mm512_load_si512((const void *)(cbuf + j * 256 + 16 * m))));
        }
        /* Σ_j m_j·bsp_j two sub-blocks at a time (int16 × int16 → int32, not saturating: exact) */
        for (int j = 0; j < 4; j++) sm = _mm512_dpwssd_epi32(sm, _mm512_set1_epi32(mnb[j * 16 + m]), bs[j]);
        const __m512 s1 = _mm512_mul_ps(_mm512_set1_ps(dw[(size_t)b * 16 + m]), x);
        const __m512 s2 = _mm512_mul_ps(_mm512_set1_ps(dmin[(size_t)b * 16 + m]), x);
        const __m512 v = _mm512_sub_ps(_mm512_mul_ps(s1, _mm512_cvtepi32_ps(si)), _mm512_mul_ps(s2, _mm512_cvtepi32_ps(sm)));
        acc[m] = _mm512_add_ps(acc[m], v);
      }
    }
#pragma GCC unroll 16
    for (int m = 0; m < 16; m++) _mm512_store_ps(lanes + l * 256 + m * 16, acc[m]);
  }
  for (int m = 0; m < 16; m++) {
    __m512 v[8];
    for (int l = 0; l < 8; l++) v[l] = _mm512_load_ps(lanes + l * 256 + m * 16);
    for (int l = 0; l < 4; l++) v[l] = _mm512_add_ps(v[l], v[l + 4]);
    for (int l = 0; l < 2; l++) v[l] = _mm512_add_ps(v[l], v[l + 2]);
    _mm512_store_ps(res + m * 16, _mm512_add_ps(v[0], v[1]));
  }
}

static AMX_VNNI_FN int64_t amx_rows_k(const bf_matmul_job *job, int high, int64_t row_begin, int64_t row_end) {
  const int cols = (int)job->cols, nb = cols / BF_QK_K;
  const int64_t n_tok = job->n_tok, n_groups = (n_tok + 15) / 16;
  const int64_t n_tiles = (row_end - row_begin) / 16, full_end = row_begin + 16 * n_tiles;
  const size_t tile_bytes = 16 * (size_t)cols;
  int64_t rb_tiles = (int64_t)(ROW_BLOCK_BYTES / tile_bytes);
  if (rb_tiles < 1) rb_tiles = 1;
  if (rb_tiles > n_tiles) rb_tiles = n_tiles;
  const size_t bp_g = (size_t)nb * 8 * B_TILE_BYTES, dx_g = (size_t)nb * 16, bsp_g = (size_t)nb * 128;
  const size_t bp_bytes = round64((size_t)n_groups * bp_g);
  const size_t dx_bytes = round64((size_t)n_groups * dx_g * sizeof(float));
  const size_t bsp_bytes = round64((size_t)n_groups * bsp_g * sizeof(int32_t));
  const size_t sc_tile = (size_t)nb * 128, dw_tile = (size_t)nb * 16;
  const size_t sc_bytes = round64((size_t)rb_tiles * sc_tile * sizeof(int32_t));
  const size_t dw_bytes = round64((size_t)rb_tiles * dw_tile * sizeof(float));
  const size_t a_bytes = round64((size_t)rb_tiles * tile_bytes);
  const size_t fixed = 8 * 256 * sizeof(int32_t) + 8 * 256 * sizeof(float) + 256 * sizeof(float);
  uint8_t *mem = bf_thread_scratch(bp_bytes + dx_bytes + bsp_bytes + 2 * sc_bytes + 2 * dw_bytes + a_bytes + fixed);
  if (!mem) return row_begin;
  uint8_t *p = mem;
  uint8_t *bp = p; p += bp_bytes;
  float *dx = (float *)p; p += dx_bytes;
  int32_t *bsp = (int32_t *)p; p += bsp_bytes;
  int32_t *sc = (int32_t *)p; p += sc_bytes;
  int32_t *mn = (int32_t *)p; p += sc_bytes;
  float *dw = (float *)p; p += dw_bytes;
  float *dmin = (float *)p; p += dw_bytes;
  int8_t *abuf = (int8_t *)p; p += a_bytes;
  int32_t *cbuf = (int32_t *)p; p += 8 * 256 * sizeof(int32_t);
  float *lanes = (float *)p;
  float *res = lanes + 8 * 256;

  for (int64_t g = 0; g < n_groups; g++)
    pack_tokens_k(job->acts, n_tok, g, nb, 0, bp + (size_t)g * bp_g, dx + (size_t)g * dx_g, bsp + (size_t)g * bsp_g);
  load_tile_config(4, 32, 8);
  for (int64_t t0 = 0; t0 < n_tiles; t0 += rb_tiles) {
    const int64_t nt = t0 + rb_tiles <= n_tiles ? rb_tiles : n_tiles - t0;
    for (int64_t i = 0; i < nt; i++) {
      const uint8_t *w = job->w + (size_t)(row_begin + 16 * (t0 + i)) * job->row_bytes;
      if (job->x16) { /* Q4_K / Q5_K in the x16 layout (x16_k.c) */
        bf_x16_unpack_k(w, high, nb, cols, abuf + (size_t)i * tile_bytes, sc + i * sc_tile, mn + i * sc_tile, dw + i * dw_tile,
                           dmin + i * dw_tile);
        continue;
      }
      unpack_k4(w, job->row_bytes, nb, cols, high, abuf + (size_t)i * tile_bytes, sc + i * sc_tile, mn + i * sc_tile,
                dw + i * dw_tile, dmin + i * dw_tile);
    }
    __asm__ volatile("" ::: "memory");
    for (int64_t g = 0; g < n_groups; g++) {
      const int n_valid = n_tok - g * 16 < 16 ? (int)(n_tok - g * 16) : 16;
      for (int64_t i = 0; i < nt; i++) {
        const int64_t r0 = row_begin + 16 * (t0 + i);
        tile16x16_k(abuf + (size_t)i * tile_bytes, (long)cols, sc + i * sc_tile, mn + i * sc_tile, dw + i * dw_tile,
                    dmin + i * dw_tile, bp + (size_t)g * bp_g, dx + (size_t)g * dx_g, bsp + (size_t)g * bsp_g, nb,
                    cbuf, lanes, res);
        store_transposed(res, job->out + g * 16 * job->rows + r0, job->rows, n_valid);
      }
    }
  }
  _tile_release();
  return full_end;
}


/* ---- Q6_K: 16 sub-blocks of 16 per super-block; one TDPBSSD with K = 16 per sub-block (A = 16 rows × 16 int8
 * quants 0..63, B = the first or second half (4 VNNI rows) of the tokens' 32-element B tile), so every
 * (row, token, sub-block) sum C_j is exact and separate. sumi = Σ_j sc_j·(C_j − 32·bsums_j) in int32 (equal, as
 * integers mod 2^32, to the reference's Σ sc_j·C_j − 32·Σ sc_j·bsums_j), v_b = f32(f32(d_w·d_x)·f32(sumi)). */

/* Q6_K tile layout, load_tile_config(4, 16, 4): tmm0-3 = C (16 × 16 int32), tmm4, tmm5 = A (16 rows × 16 int8), tmm6, tmm7 = B (4 × 64 bytes) */

/* 16 Q6_K rows → int8 quants 0..63 in element order; sc[(b·16 + j)·16 + m] (int32), dw[b·16 + m] */
static void unpack_q6(const uint8_t *w, size_t row_bytes, int nb, int cols, int8_t *dst, int32_t *sc, float *dw) {
  const __m256i m4 = _mm256_set1_epi8(0x0f), m2 = _mm256_set1_epi8(3);
  for (int m = 0; m < 16; m++) {
    const uint8_t *row = w + (size_t)m * row_bytes;
    int8_t *d = dst + (size_t)m * cols;
    for (int b = 0; b < nb; b++) {
      const uint8_t *blk = row + (size_t)b * Q6_K_BYTES;
      for (int j = 0; j < 16; j++) sc[((size_t)b * 16 + j) * 16 + m] = ((const int8_t *)(blk + 192))[j];
      dw[(size_t)b * 16 + m] = bf_load_f16(blk + 208);
      for (int n = 0; n < 2; n++) {
        const __m256i l0 = _mm256_loadu_si256((const __m256i *)(blk + 64 * n));
        const __m256i l1 = _mm256_loadu_si256((const __m256i *)(blk + 64 * n + 32));
        const __m256i h = _mm256_loadu_si256((const __m256i *)(blk + 128 + 32 * n));
        const __m256i q1 = _mm256_or_si256(_mm256_and_si256(l0, m4), _mm256_slli_epi16(_mm256_and_si256(h, m2), 4));
        const __m256i q2 = _mm256_or_si256(_mm256_and_si256(l1, m4),
                                           _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(h, 2), m2), 4));
        const __m256i q3 = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l0, 4), m4),
                                           _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(h, 4), m2), 4));
        const __m256i q4 = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l1, 4), m4),
                                           _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(h, 6), m2), 4));
        int8_t *o = d + (size_t)b * BF_QK_K + 128 * n;
        _mm256_storeu_si256((__m256i *)o, q1);
        _mm256_storeu_si256((__m256i *)(o + 32), q2);
        _mm256_storeu_si256((__m256i *)(o + 64), q3);
        _mm256_storeu_si256((__m256i *)(o + 96), q4);
      }
    }
  }
}

#define SUB6(C, A, B, j)                                                                                          \
  do {                                                                                                            \
    _tile_zero(C);                                                                                                \
    _tile_loadd(A, a + 16 * (j), a_stride);                                                                       \
    _tile_loadd(B, bpb + (size_t)((j) >> 1) * B_TILE_BYTES + ((j) & 1) * 256, 64);                                \
    _tile_dpbssd(C, A, B);                                                                                        \
  } while (0)

static AMX_FN void tile16x16_q6(const int8_t *a0, long a_stride, const int32_t *sc, const float *dw, const uint8_t *bp,
                                const float *dx, const int32_t *bsp, int nb, int32_t *cbuf, float *lanes, float *res) {
  for (int l = 0; l < 8; l++) {
    __m512 acc[16];
#pragma GCC unroll 16
    for (int m = 0; m < 16; m++) acc[m] = _mm512_setzero_ps();
    for (int b = l; b < nb; b += 8) {
      const int8_t *a = a0 + (size_t)b * BF_QK_K;
      const uint8_t *bpb = bp + (size_t)b * 8 * B_TILE_BYTES;
      for (int q = 0; q < 16; q += 4) {
        SUB6(0, 4, 6, q); SUB6(1, 5, 7, q + 1); SUB6(2, 4, 6, q + 2); SUB6(3, 5, 7, q + 3);
        _tile_stored(0, cbuf + q * 256, 64); _tile_stored(1, cbuf + (q + 1) * 256, 64);
        _tile_stored(2, cbuf + (q + 2) * 256, 64); _tile_stored(3, cbuf + (q + 3) * 256, 64);
      }
      const __m512 x = _mm512_load_ps(dx + (size_t)b * 16);
      const int32_t *scb = sc + (size_t)b * 256, *bsb = bsp + (size_t)b * 256;
#pragma GCC unroll 2
      for (int m = 0; m < 16; m++) {
        __m512i si = _mm512_setzero_si512();
        for (int j = 0; j < 16; j++) {
          const __m512i c = _mm512_sub_epi32(_mm512_load_si512((const void *)(cbuf + j * 256 + 16 * m)),
                                             _mm512_load_si512((const void *)(bsb + j * 16)));
          si = _mm512_add_epi32(si, _mm512_mullo_epi32(_mm512_set1_epi32(scb[j * 16 + m]), c));
        }
        const __m512 s1 = _mm512_mul_ps(_mm512_set1_ps(dw[(size_t)b * 16 + m]), x);
        acc[m] = _mm512_add_ps(acc[m], _mm512_mul_ps(s1, _mm512_cvtepi32_ps(si)));
      }
    }
#pragma GCC unroll 16
    for (int m = 0; m < 16; m++) _mm512_store_ps(lanes + l * 256 + m * 16, acc[m]);
  }
  for (int m = 0; m < 16; m++) {
    __m512 v[8];
    for (int l = 0; l < 8; l++) v[l] = _mm512_load_ps(lanes + l * 256 + m * 16);
    for (int l = 0; l < 4; l++) v[l] = _mm512_add_ps(v[l], v[l + 4]);
    for (int l = 0; l < 2; l++) v[l] = _mm512_add_ps(v[l], v[l + 2]);
    _mm512_store_ps(res + m * 16, _mm512_add_ps(v[0], v[1]));
  }
}

static AMX_FN int64_t amx_rows_q6(const bf_matmul_job *job, int64_t row_begin, int64_t row_end) {
  const int cols = (int)job->cols, nb = cols / BF_QK_K;
  const int64_t n_tok = job->n_tok, n_groups = (n_tok + 15) / 16;
  const int64_t n_tiles = (row_end - row_begin) / 16, full_end = row_begin + 16 * n_tiles;
  const size_t tile_bytes = 16 * (size_t)cols;
  int64_t rb_tiles = (int64_t)(ROW_BLOCK_BYTES / tile_bytes);
  if (rb_tiles < 1) rb_tiles = 1;
  if (rb_tiles > n_tiles) rb_tiles = n_tiles;
  const size_t bp_g = (size_t)nb * 8 * B_TILE_BYTES, dx_g = (size_t)nb * 16, bsp_g = (size_t)nb * 256;
  const size_t bp_bytes = round64((size_t)n_groups * bp_g);
  const size_t dx_bytes = round64((size_t)n_groups * dx_g * sizeof(float));
  const size_t bsp_bytes = round64((size_t)n_groups * bsp_g * sizeof(int32_t));
  const size_t sc_tile = (size_t)nb * 256, dw_tile = (size_t)nb * 16;
  const size_t sc_bytes = round64((size_t)rb_tiles * sc_tile * sizeof(int32_t));
  const size_t dw_bytes = round64((size_t)rb_tiles * dw_tile * sizeof(float));
  const size_t a_bytes = round64((size_t)rb_tiles * tile_bytes);
  const size_t fixed = 16 * 256 * sizeof(int32_t) + 8 * 256 * sizeof(float) + 256 * sizeof(float);
  uint8_t *mem = bf_thread_scratch(bp_bytes + dx_bytes + bsp_bytes + sc_bytes + dw_bytes + a_bytes + fixed);
  if (!mem) return row_begin;
  uint8_t *p = mem;
  uint8_t *bp = p; p += bp_bytes;
  float *dx = (float *)p; p += dx_bytes;
  int32_t *bsp = (int32_t *)p; p += bsp_bytes;
  int32_t *sc = (int32_t *)p; p += sc_bytes;
  float *dw = (float *)p; p += dw_bytes;
  int8_t *abuf = (int8_t *)p; p += a_bytes;
  int32_t *cbuf = (int32_t *)p; p += 16 * 256 * sizeof(int32_t);
  float *lanes = (float *)p;
  float *res = lanes + 8 * 256;

  for (int64_t g = 0; g < n_groups; g++)
    pack_tokens_k(job->acts, n_tok, g, nb, 1, bp + (size_t)g * bp_g, dx + (size_t)g * dx_g, bsp + (size_t)g * bsp_g);
  load_tile_config(4, 16, 4);
  for (int64_t t0 = 0; t0 < n_tiles; t0 += rb_tiles) {
    const int64_t nt = t0 + rb_tiles <= n_tiles ? rb_tiles : n_tiles - t0;
    for (int64_t i = 0; i < nt; i++) {
      const uint8_t *w = job->w + (size_t)(row_begin + 16 * (t0 + i)) * job->row_bytes;
      if (job->x16) { /* Q6_K in the x16 layout (x16_k.c) */
        bf_x16_unpack_q6_k(w, nb, cols, abuf + (size_t)i * tile_bytes, sc + i * sc_tile, dw + i * dw_tile);
        continue;
      }
      unpack_q6(w, job->row_bytes, nb, cols, abuf + (size_t)i * tile_bytes, sc + i * sc_tile, dw + i * dw_tile);
    }
    __asm__ volatile("" ::: "memory");
    for (int64_t g = 0; g < n_groups; g++) {
      const int n_valid = n_tok - g * 16 < 16 ? (int)(n_tok - g * 16) : 16;
      for (int64_t i = 0; i < nt; i++) {
        const int64_t r0 = row_begin + 16 * (t0 + i);
        tile16x16_q6(abuf + (size_t)i * tile_bytes, (long)cols, sc + i * sc_tile, dw + i * dw_tile,
                     bp + (size_t)g * bp_g, dx + (size_t)g * dx_g, bsp + (size_t)g * bsp_g, nb, cbuf, lanes, res);
        store_transposed(res, job->out + g * 16 * job->rows + r0, job->rows, n_valid);
      }
    }
  }
  _tile_release();
  return full_end;
}

int64_t bf_amx_rows_k(const bf_matmul_job *job, int high, int64_t row_begin, int64_t row_end) {
  if (row_end - row_begin < 16 || job->n_tok < 1 || job->cols < BF_QK_K || !bf_amx_available()) return row_begin;
  return high == 2 ? amx_rows_q6(job, row_begin, row_end) : amx_rows_k(job, high, row_begin, row_end);
}

int64_t bf_amx_rows(const bf_matmul_job *job, int q4, int64_t row_begin, int64_t row_end) {
  if (row_end - row_begin < 16 || job->n_tok < 1 || job->cols < BF_QK || !bf_amx_available()) return row_begin;
  return amx_rows(job, q4, row_begin, row_end);
}

#else /* no AMX in this build */

int bf_amx_available(void) { return 0; }
int64_t bf_amx_rows(const bf_matmul_job *job, int q4, int64_t row_begin, int64_t row_end) {
  (void)job; (void)q4; (void)row_end;
  return row_begin;
}
int64_t bf_amx_rows_k(const bf_matmul_job *job, int high, int64_t row_begin, int64_t row_end) {
  (void)job; (void)high; (void)row_end;
  return row_begin;
}

#endif
