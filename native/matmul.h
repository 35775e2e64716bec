#ifndef BUTTERFLY_MATMUL_H
#define BUTTERFLY_MATMUL_H

#include "butterfly.h"

/* One matmul call: out[t·rows + r] = dot(row r of w, activations of token t). */
typedef struct {
  bf_dot_fn dot;
  bf_dot4_fn dot4; /* NULL: one token at a time */
  const uint8_t *w;
  size_t row_bytes;
  int64_t rows, cols, n_tok;
  const bf_acts *acts;
  float *out;
  int no_amx; /* 1: the AVX-512 paths even where AMX would be taken (tests) */
  int x16;    /* 1: w is in the row-interleaved layout of native/x16.c (rows a multiple of 16) */
  int type;   /* BF_* weight type */
} bf_matmul_job;

/* Computes rows [row_begin, row_end) for every token. */
void bf_matmul_rows(const bf_matmul_job *job, int64_t row_begin, int64_t row_end);

#endif
