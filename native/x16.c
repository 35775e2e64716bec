/*
 * Row-interleaved ("x16") weights: the layout a matrix is rearranged into at load (bf_x16_repack), in place and the
 * same size, so that decode needs no per-row unpacking, transposes or horizontal sums. The repack, row restore and
 * dispatch for every type are here, with the Q4_0 / Q8_0 kernels; the K-quant kernels are in x16_k.c. Repacking adds
 * ~0.4 ms per MB to a load (`medium` Q4_K: 190 → 225 ms).
 *
 * Rows go in groups of 16. Group g holds, for each block b, 16 × (block bytes): the 16 rows' F16 scales (32
 * bytes), then 64-byte vectors P_0..P_{n-1} (Q4_0: 4, Q8_0: 8) where the 4 bytes of lane r of P_j are quant bytes
 * 4j..4j+3 of row r. Q4_0: the low nibbles of P_j are elements 4j..4j+3 of each row and the high nibbles elements
 * 16+4j..16+4j+3. Q8_0: elements 4j..4j+3, stored + 128 (XOR 0x80) so they are unsigned. Either way each vector is
 * what VPDPBUSD multiplies against one broadcast dword of a token's activations, 16 rows per instruction, lane = row.
 * Q4_0 / Q8_0 groups hold their blocks lane class by lane class (blocks 0, 8, 16, …, then 1, 9, 17, …: x16_slot), the
 * order the kernels accumulate them in, so that a group is read front to back (`medium` Q4_0 decode step, 1 thread,
 * median of 6 alternating runs: matmul 2.87 → 2.75 ms at B=4, 2.36 → 2.30 ms at B=1); the K-quant groups keep b order.
 *
 * The order of float operations is that of docs/kernels.md "Block accumulation", lane = row: v_b = f32(f32(d_w·d_x)·
 * f32(isum_b)), acc[b % 8] += v_b with the blocks of one lane class in increasing order, then the 4/2/1 fold. The
 * integer sum isum_b = Σ u·x − bias·Σx (u = nibble, bias 8; u = q + 128, bias 128) is exact in any order. So every
 * output has the bits of the type's scalar kernel.
 *
 * Measured (2026-11-25, 1 thread, Q4_0 32000×768 from RAM): 1 token 0.48 ms vs 0.65 ms for the row-major kernels;
 * 4 tokens 0.53 ms vs 1.03 ms (docs/kernel-decision.md "Row-interleaved weights").
 */
#include "x16.h"

#include <stdlib.h>
#include <string.h>
#include "amx.h"
#include "pool.h"
#include "quant_blocks.h"

/*
 * Where each part of a row's block goes in a group's block: `words` words of `word_bytes` bytes from byte `src` of the
 * row's block to byte `dst` of the group's block, word w of row r at dst + 16·word_bytes·w + word_bytes·r. So 2-byte
 * scales become 16-lane F16 vectors and 4-byte words 64-byte vectors with one row per int32 lane.
 */
typedef struct {
  uint16_t src, dst, words, word_bytes;
} x16_field;

typedef struct {
  int blk_bytes, block_elems, n_fields;
  uint32_t flip; /* XORed into every 4-byte word of the last field (Q8_0: quants stored + 128) */
  x16_field f[5];
  int class_order; /* 1: blocks stored lane class by lane class (x16_slot) */
} x16_format;

static const x16_format *x16_format_of(int type) {
  static const x16_format q4_0 = {Q4_0_BYTES, BF_QK, 2, 0, {{0, 0, 1, 2}, {2, 32, 4, 4}}, 1};
  static const x16_format q8_0 = {Q8_0_BYTES, BF_QK, 2, 0x80808080u, {{0, 0, 1, 2}, {2, 32, 8, 4}}, 1};
  static const x16_format q4_k = {Q4_K_BYTES, BF_QK_K, 4, 0, {{0, 0, 1, 2}, {2, 32, 1, 2}, {4, 64, 3, 4}, {16, 256, 32, 4}}, 0};
  static const x16_format q5_k = {Q5_K_BYTES, BF_QK_K, 5, 0,
                                  {{0, 0, 1, 2}, {2, 32, 1, 2}, {4, 64, 3, 4}, {16, 256, 8, 4}, {48, 768, 32, 4}}, 0};
  static const x16_format q6_k = {Q6_K_BYTES, BF_QK_K, 4, 0, {{208, 0, 1, 2}, {192, 32, 4, 4}, {0, 288, 32, 4}, {128, 2336, 16, 4}}, 0};
  switch (type) {
    case BF_Q4_0: return &q4_0;
    case BF_Q8_0: return &q8_0;
    case BF_Q4_K: return &q4_k;
    case BF_Q5_K: return &q5_k;
    case BF_Q6_K: return &q6_k;
    default: return NULL;
  }
}

int bf_x16_supported(int type) { return x16_format_of(type) != NULL; }

/* Q4_0 / Q8_0: the slot in its group of a row's block b (of nb): lane class by lane class (b % 8, then b / 8) */
static int x16_class_slot(int b, int nb) {
  int slot = b / 8;
  for (int c = 0; c < b % 8; c++) slot += (nb - c + 7) / 8; /* the blocks of lane class c: c, c + 8, … < nb */
  return slot;
}

/* Where block b of a row sits in its group */
static int x16_slot(const x16_format *fm, int b, int nb) { return fm->class_order ? x16_class_slot(b, nb) : b; }

/* Row r's block (blk) ↔ its lanes in the group's block (o); to_group picks the direction */
static void x16_move_block(const x16_format *fm, uint8_t *o, uint8_t *blk, int r, int to_group) {
  for (int i = 0; i < fm->n_fields; i++) {
    const x16_field *f = &fm->f[i];
    const uint32_t flip = i == fm->n_fields - 1 ? fm->flip : 0;
    for (int w = 0; w < f->words; w++) {
      uint8_t *lane = o + f->dst + 16 * f->word_bytes * w + f->word_bytes * r, *word = blk + f->src + f->word_bytes * w;
      if (f->word_bytes == 2) {
        memcpy(to_group ? lane : word, to_group ? word : lane, 2);
      } else {
        uint32_t v;
        memcpy(&v, to_group ? word : lane, 4);
        v ^= flip;
        memcpy(to_group ? lane : word, &v, 4);
      }
    }
  }
}

int bf_x16_repack(int type, uint8_t *w, int64_t rows, int64_t cols) {
  const x16_format *fm = x16_format_of(type);
  if (!fm || rows % 16 || cols <= 0 || !bf_row_bytes(type, cols)) return -1;
  const int nb = (int)(cols / fm->block_elems);
  const size_t rb = (size_t)nb * fm->blk_bytes, group_bytes = 16 * rb;
  uint8_t *tmp = malloc(group_bytes);
  if (!tmp) return -1;
  for (int64_t g = 0; g < rows / 16; g++) {
    uint8_t *grp = w + (size_t)g * group_bytes;
    memcpy(tmp, grp, group_bytes);
    for (int b = 0; b < nb; b++)
      for (int r = 0; r < 16; r++)
        x16_move_block(fm, grp + (size_t)x16_slot(fm, b, nb) * 16 * fm->blk_bytes, tmp + (size_t)r * rb + (size_t)b * fm->blk_bytes, r, 1);
  }
  free(tmp);
  return 0;
}

void bf_x16_row(int type, const uint8_t *w, int64_t row, int64_t cols, uint8_t *dst) {
  const x16_format *fm = x16_format_of(type);
  const int nb = (int)(cols / fm->block_elems);
  uint8_t *grp = (uint8_t *)w + (size_t)(row / 16) * 16 * (size_t)nb * fm->blk_bytes; /* only read */
  for (int b = 0; b < nb; b++)
    x16_move_block(fm, grp + (size_t)x16_slot(fm, b, nb) * 16 * fm->blk_bytes, dst + (size_t)b * fm->blk_bytes, (int)(row % 16), 0);
}

/* Portable path (scalar kernels, builds without AVX-512): each row is put back into its GGUF layout and goes to the
 * type's usual dot product, token by token. */
static void x16_rows_portable(const bf_matmul_job *job, int64_t row_begin, int64_t row_end) {
  uint8_t *row = malloc(job->row_bytes);
  if (!row) abort(); /* a few KB; nothing sensible to return from here */
  for (int64_t r = row_begin; r < row_end; r++) {
    bf_x16_row(job->type, job->w, r, job->cols, row);
    for (int64_t t = 0; t < job->n_tok; t++) {
      const bf_act_row a = bf_act_row_at(job->acts, t);
      job->out[t * job->rows + r] = job->dot(row, &a, (int)job->cols);
    }
  }
  free(row);
}

#ifdef BF_AVX512_QUANT
#include <immintrin.h>

#define AI static inline __attribute__((always_inline))
/* lines prefetched into L2 this far ahead of the group being read, a few per block (a burst per group measured
 * slower: it fills the miss buffers); 8 KB was the best of 4/8/16/32 KB for 4 tokens */
#define X16_PREFETCH_BYTES (8 * 1024)
#define X16_MAX_TOK 7

/* A token's block as the kernel reads it: quants, −(8 or 128)·Σx, d — one 40-byte record per (token, block), so a
 * block's three reads share cache lines (2048×768, 4 tokens, L2-hot: 0.033 vs 0.035 ms with three separate arrays) */
typedef struct {
  int8_t q[BF_QK];
  int32_t bias;
  float d;
} x16_act;

/* One group of 16 rows × NT tokens → out[t·rows + 0..15]; act[t·nb + b] = token t's block b */
AI void x16_group(const uint8_t *grp, const x16_act *act, int NT, int Q8, int nb, float *out, int64_t rows) {
  const int bb = Q8 ? 16 * Q8_0_BYTES : 16 * Q4_0_BYTES;
  const __m512i m4 = _mm512_set1_epi8(0x0f);
  const char *pf = (const char *)grp + X16_PREFETCH_BYTES;
  const uint8_t *p = grp; /* blocks are stored in the order of this loop (x16_slot) */
  __m512 lane[8][X16_MAX_TOK];
  for (int c = 0; c < 8; c++) {
    __m512 f[X16_MAX_TOK];
    for (int t = 0; t < NT; t++) f[t] = _mm512_setzero_ps();
    for (int b = c; b < nb; b += 8, p += bb) {
      for (int i = 0; i < bb; i += 64) _mm_prefetch(pf + i, _MM_HINT_T1);
      pf += bb;
      const __m512 dw = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)p));
      __m512i wv[8];
      if (Q8) {
        for (int j = 0; j < 8; j++) wv[j] = _mm512_loadu_si512((const void *)(p + 32 + 64 * j));
      } else {
        for (int j = 0; j < 4; j++) {
          const __m512i v = _mm512_loadu_si512((const void *)(p + 32 + 64 * j));
          wv[j] = _mm512_and_si512(v, m4);
          wv[j + 4] = bf_hi_nibbles(v);
        }
      }
      for (int t = 0; t < NT; t++) {
        const x16_act *x = act + (size_t)t * nb + b;
        const int32_t *xq = (const int32_t *)x->q;
        /* one chain of VPDPBUSD, the activation dwords broadcast from memory ({1to16}; the compiler's separate
         * broadcasts and two chains measured ~10% slower at 4 tokens) */
        __m512i s0 = _mm512_set1_epi32(x->bias);
#define X16_DP(k) __asm__("vpdpbusd " #k "*4(%[q])%{1to16%}, %[w], %[acc]" : [acc] "+v"(s0) : [w] "v"(wv[k]), [q] "r"(xq), "m"(*(const int32_t(*)[8])xq))
        X16_DP(0); X16_DP(1); X16_DP(2); X16_DP(3); X16_DP(4); X16_DP(5); X16_DP(6); X16_DP(7);
#undef X16_DP
        const __m512 s = _mm512_mul_ps(dw, _mm512_set1_ps(x->d));
        f[t] = _mm512_add_ps(f[t], _mm512_mul_ps(s, _mm512_cvtepi32_ps(s0)));
      }
    }
    for (int t = 0; t < NT; t++) lane[c][t] = f[t];
  }
  for (int t = 0; t < NT; t++) bf_x16_fold_store(&lane[0][t], X16_MAX_TOK, out + t * rows);
}

#define X16_CASE(N)                                                                                               \
  case N:                                                                                                         \
    for (int64_t g = g0; g < g1; g++) {                                                                           \
      float *o = job->out + 16 * g + t0 * job->rows;                                                              \
      if (q8) x16_group(job->w + (size_t)g * gb, act, N, 1, nb, o, job->rows);                                   \
      else x16_group(job->w + (size_t)g * gb, act, N, 0, nb, o, job->rows);                                      \
    }                                                                                                             \
    break;

/* Token t's records, once per call (every row tile and chunk reads them) */
static void x16_prep(const bf_matmul_job *job, int64_t t, int32_t *dst) {
  const int nb = (int)(job->cols / BF_QK);
  const int32_t k = job->type == BF_Q8_0 ? -128 : -8;
  const bf_act_row a = bf_act_row_at(job->acts, t);
  x16_act *act = (x16_act *)dst;
  for (int b = 0; b < nb; b++) {
    memcpy(act[b].q, a.q + (size_t)b * BF_QK, BF_QK);
    act[b].bias = k * a.sums[b];
    act[b].d = a.d[b];
  }
}

/* tokens [t0, t0 + nt) (nt ≤ X16_MAX_TOK; their records from `prep`) over groups [g0, g1) */
static void x16_groups(const bf_matmul_job *job, int64_t t0, int nt, int64_t g0, int64_t g1, const int32_t *prep) {
  const int nb = (int)(job->cols / BF_QK), q8 = job->type == BF_Q8_0;
  const size_t gb = 16 * job->row_bytes;
  const x16_act *act = (const x16_act *)prep;
  switch (nt) { X16_CASE(1) X16_CASE(2) X16_CASE(3) X16_CASE(4) X16_CASE(5) X16_CASE(6) X16_CASE(7) default: break; }
}

/* Groups kept in L2 while every token chunk passes over them, for batches of more than X16_MAX_TOK tokens */
#define X16_TILE_BYTES (96 * 1024)

/* A type's kernel for x16_chunks: prep writes ints_per_token int32 of per-token data (activation records, bias
 * sums) for one token; groups runs up to X16_MAX_TOK tokens over 16-row groups, reading the data from token t0 on. */
typedef struct {
  void (*prep)(const bf_matmul_job *job, int64_t t, int32_t *dst);
  void (*groups)(const bf_matmul_job *job, int64_t t0, int nt, int64_t g0, int64_t g1, const int32_t *prep);
  size_t ints_per_token;
} x16_kernel;

/* Groups [row_begin/16, row_end/16) for every token: per-token data prepared once, then one pass of up to
 * X16_MAX_TOK tokens, or even chunks of at most X16_MAX_TOK over row tiles kept in L2 (Q4_K `medium` decode step, 1
 * thread, B=12 / 16: 830–850 / 816–852 tok/s with chunks of 4, 932–955 / 915–929 with even chunks). */
static void x16_chunks(const bf_matmul_job *job, int64_t row_begin, int64_t row_end, const x16_kernel *kern) {
  int32_t *prep = bf_thread_scratch((size_t)job->n_tok * kern->ints_per_token * sizeof(int32_t));
  if (!prep) { /* no memory for the per-token data: row by row, same bits */
    x16_rows_portable(job, row_begin, row_end);
    return;
  }
  for (int64_t t = 0; t < job->n_tok; t++) kern->prep(job, t, prep + (size_t)t * kern->ints_per_token);
  const int64_t g_begin = row_begin / 16, g_end = row_end / 16;
  if (job->n_tok <= X16_MAX_TOK) {
    kern->groups(job, 0, (int)job->n_tok, g_begin, g_end, prep);
  } else {
    int64_t tile = (int64_t)(X16_TILE_BYTES / (16 * job->row_bytes));
    if (tile < 1) tile = 1;
    const int64_t n_chunks = (job->n_tok + X16_MAX_TOK - 1) / X16_MAX_TOK;
    for (int64_t g0 = g_begin; g0 < g_end; g0 += tile) {
      const int64_t g1 = g0 + tile < g_end ? g0 + tile : g_end;
      for (int64_t c = 0, t0 = 0; c < n_chunks; c++) {
        const int64_t t1 = job->n_tok * (c + 1) / n_chunks;
        kern->groups(job, t0, (int)(t1 - t0), g0, g1, prep + (size_t)t0 * kern->ints_per_token);
        t0 = t1;
      }
    }
  }
}

/* Q4_K: the same structure with its own group kernel (x16_k.c). amx.c's K-quant tiles, from an unpacked copy, beat
 * even chunks of it only past about 32 tokens (`medium` decode step, 1 thread, aggregate tok/s, chunks vs AMX: B=24
 * 996–1046 vs 818–850, B=32 1040–1094 vs 1010–1034). */
#define K16_AMX_MIN_TOK 40

void bf_x16_rows(const bf_matmul_job *job, int64_t row_begin, int64_t row_end) {
  if (job->dot == bf_dot_q4_k_simd || job->dot == bf_dot_q5_k_simd) {
    /* Q5_K's chunks cost more (the 16s to merge): AMX from 16 tokens (`medium` decode step, 1 thread, B=16: chunks
     * 685 tok/s, AMX 742) */
    const int64_t amx_min_tok = job->type == BF_Q5_K ? 16 : K16_AMX_MIN_TOK;
    if (job->n_tok >= amx_min_tok && !job->no_amx) row_begin = bf_amx_rows_k(job, job->type == BF_Q5_K, row_begin, row_end);
    const x16_kernel k4 = {bf_x16_prep_k, bf_x16_groups_q4_k, bf_x16_prep_ints_k(job)};
    if (row_begin < row_end) x16_chunks(job, row_begin, row_end, &k4);
    return;
  }
  if (job->dot == bf_dot_q6_k_simd) { /* AMX (amx.c, unpacked from x16) from 32 tokens: `medium` decode step, 1
                                        * thread, chunks vs AMX: B=16 635 vs 576 tok/s, B=24 663 vs 590, B=32 662 vs 735 */
    if (job->n_tok >= 32 && !job->no_amx) row_begin = bf_amx_rows_k(job, 2, row_begin, row_end);
    const x16_kernel k6 = {bf_x16_prep_k, bf_x16_groups_q6_k, bf_x16_prep_ints_k(job)};
    if (row_begin < row_end) x16_chunks(job, row_begin, row_end, &k6);
    return;
  }
  if (job->dot != bf_dot_q4_0_simd && job->dot != bf_dot_q8_0_simd) {
    x16_rows_portable(job, row_begin, row_end);
    return;
  }
  /* AMX tiles (amx_x16.c) from the batch size where they beat even chunks of this kernel in a `medium` decode step,
   * 1 thread (aggregate tok/s, chunks vs AMX: Q4_0 B=12 1090–1118 vs 984–1022, B=16 1027–1093 vs 1140–1206; Q8_0
   * B=8 600–679 vs 596–641, B=12 824–901 vs 839–866, B=16 1023–1039 vs 982–1128: a tie, AMX kept from 8) */
  const int64_t amx_min_tok = job->type == BF_Q8_0 ? 8 : 16;
  if (job->n_tok >= amx_min_tok && !job->no_amx) row_begin = bf_amx_rows_x16(job, row_begin, row_end);
  const x16_kernel kq = {x16_prep, x16_groups, (size_t)(job->cols / BF_QK) * (sizeof(x16_act) / sizeof(int32_t))};
  if (row_begin < row_end) x16_chunks(job, row_begin, row_end, &kq);
}

/* lanes[k][m] = dword k of row m (k = 0..7, m = 0..15) → row m's 32 bytes at dst + m·stride: an 8 × 8 dword
 * transpose per 8 rows (data movement only) */
void bf_x16_lanes_to_rows(const int32_t lanes[8][16], int8_t *dst, size_t stride) {
  for (int h = 0; h < 2; h++) {
    __m256i r[8];
    for (int k = 0; k < 8; k++) r[k] = _mm256_loadu_si256((const __m256i *)(lanes[k] + 8 * h));
    const __m256i t0 = _mm256_unpacklo_epi32(r[0], r[1]), t1 = _mm256_unpackhi_epi32(r[0], r[1]);
    const __m256i t2 = _mm256_unpacklo_epi32(r[2], r[3]), t3 = _mm256_unpackhi_epi32(r[2], r[3]);
    const __m256i t4 = _mm256_unpacklo_epi32(r[4], r[5]), t5 = _mm256_unpackhi_epi32(r[4], r[5]);
    const __m256i t6 = _mm256_unpacklo_epi32(r[6], r[7]), t7 = _mm256_unpackhi_epi32(r[6], r[7]);
    const __m256i s0 = _mm256_unpacklo_epi64(t0, t2), s1 = _mm256_unpackhi_epi64(t0, t2);
    const __m256i s2 = _mm256_unpacklo_epi64(t1, t3), s3 = _mm256_unpackhi_epi64(t1, t3);
    const __m256i s4 = _mm256_unpacklo_epi64(t4, t6), s5 = _mm256_unpackhi_epi64(t4, t6);
    const __m256i s6 = _mm256_unpacklo_epi64(t5, t7), s7 = _mm256_unpackhi_epi64(t5, t7);
    const __m256i c[8] = {
      _mm256_permute2x128_si256(s0, s4, 0x20), _mm256_permute2x128_si256(s1, s5, 0x20),
      _mm256_permute2x128_si256(s2, s6, 0x20), _mm256_permute2x128_si256(s3, s7, 0x20),
      _mm256_permute2x128_si256(s0, s4, 0x31), _mm256_permute2x128_si256(s1, s5, 0x31),
      _mm256_permute2x128_si256(s2, s6, 0x31), _mm256_permute2x128_si256(s3, s7, 0x31),
    };
    for (int i = 0; i < 8; i++) _mm256_storeu_si256((__m256i *)(dst + (size_t)(8 * h + i) * stride), c[i]);
  }
}

#else

void bf_x16_rows(const bf_matmul_job *job, int64_t row_begin, int64_t row_end) { x16_rows_portable(job, row_begin, row_end); }

#endif
