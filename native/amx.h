/*
 * Intel AMX (TDPBSSD) for batched Q8_0 / Q4_0 / Q4_K / Q5_K / Q6_K products: many tokens at once (prefill, large
 * batches). K-quants: one tile multiply per sub-block (32 wide, Q6_K 16 wide) gives exact int32 sub-block sums.
 * Same bits as the other kernels (docs/kernels.md "Integer blocks"): one tile multiply per 32-element block gives
 * the exact int32 block sums of 16 rows × 16 tokens, and the float steps run per block, lane and row in the order
 * of the reference.
 */
#ifndef BUTTERFLY_AMX_H
#define BUTTERFLY_AMX_H

#include "matmul.h"

/* Batches of at least this many tokens take the AMX path with tiles of 16 tokens (2048×768 Q8_0, one thread: 2.5×
 * the AVX-512 path at 8 tokens). Fewer tokens take bf_dotn, which beat AMX tiles as narrow as the batch in the model
 * (docs/kernel-decision.md). */
#define BF_AMX_MIN_TOK 8

/* 1 if the CPU has AMX-INT8, the kernel granted tile data to this process and the build has the kernel; 0
 * otherwise (or when the environment variable BUTTERFLY_AMX=0). Checked once per process. */
int bf_amx_available(void);

/* Computes rows [row_begin, row_begin + 16·k) of a Q8_0 (q4 = 0) or Q4_0 (q4 = 1) job (any nTok ≥ 1) for every token, for the
 * largest k that fits before row_end, and returns the first row it did not compute: row_begin when AMX is not
 * available or scratch memory could not be had, so the caller computes the rest as usual. */
int64_t bf_amx_rows(const bf_matmul_job *job, int q4, int64_t row_begin, int64_t row_end);

/* The same for x16-layout Q4_0 / Q8_0 weights (native/x16.c; rows and row_begin multiples of 16), weights as the B
 * operand (native/amx_x16.c). */
int64_t bf_amx_rows_x16(const bf_matmul_job *job, int64_t row_begin, int64_t row_end);

/* The same for Q4_K (high = 0), Q5_K (high = 1) or Q6_K (high = 2) weights against Q8_K activations. */
int64_t bf_amx_rows_k(const bf_matmul_job *job, int high, int64_t row_begin, int64_t row_end);

#endif
