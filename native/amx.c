/*
 * Q8_0 / Q4_0 weights × Q8_0 activations on Intel AMX tiles, for batches of BF_AMX_MIN_TOK tokens and more.
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
#define AI static inline __attribute__((always_inline))

#define Q8_0_BYTES 34
#define Q4_0_BYTES 18
#define B_TILE_BYTES 512 /* 8 rows × 64 bytes: one block of 16 tokens */

/* palette 1; tmm0, tmm1 = C (16 × 16 int32), tmm2, tmm3 = A (16 rows × 32 int8), tmm4, tmm5 = B (8 × 64 bytes) */
typedef struct {
  uint8_t palette, start_row, reserved[14];
  uint16_t colsb[16];
  uint8_t rows[16];
} __attribute__((aligned(64))) tile_config;

static AMX_FN void load_tile_config(void) {
  tile_config cfg;
  memset(&cfg, 0, sizeof cfg);
  cfg.palette = 1;
  for (int t = 0; t < 2; t++) { cfg.rows[t] = 16; cfg.colsb[t] = 64; }
  for (int t = 2; t < 4; t++) { cfg.rows[t] = 16; cfg.colsb[t] = 32; }
  for (int t = 4; t < 6; t++) { cfg.rows[t] = 8; cfg.colsb[t] = 64; }
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
  uint8_t *mem = aligned_alloc(64, bp_bytes + dx_bytes + dw_bytes + a_bytes + seq_bytes + fixed);
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
  load_tile_config();
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
  free(mem);
  return full_end;
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

#endif
