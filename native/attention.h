#ifndef BUTTERFLY_ATTENTION_H
#define BUTTERFLY_ATTENTION_H

#include <stddef.h>
#include <stdint.h>

/*
 * One attention call: every token t of the batch attends positions [0, n_pos[t]) of its own KV cache
 * (keys[t], values[t], each laid out [position][n_kv_heads · head_dim]). The unit of work is an item
 * (token t, KV head g) = all n_heads / n_kv_heads query heads that read KV head g, so the keys converted for one
 * head are reused by the others of its group. Each output element is produced by one thread, in the order of
 * docs/kernels.md "Attention", so results do not depend on threads, batching or the SIMD path.
 */
typedef struct {
  const float *q; /* n_tok × n_heads·head_dim */
  float *out;     /* n_tok × n_heads·head_dim */
  const float *const *keys;
  const float *const *values;
  const int32_t *n_pos;
  int64_t n_tok;
  int n_heads, n_kv_heads, head_dim;
  int max_pos;     /* max of n_pos: sizes the per-thread scratch */
  int scalar;      /* 1: the portable C path */
  float scale;     /* f32(1 / sqrt(head_dim)) */
  const int64_t *bounds; /* part p computes items [bounds[p], bounds[p+1]); item = t·n_kv_heads + g */
  uint8_t *scratch;      /* n_parts × scratch_per_part bytes, 64-byte aligned */
  size_t scratch_per_part;
} bf_attention_job;

/* Bytes of per-thread scratch one part needs (a multiple of 64). */
size_t bf_attention_scratch_bytes(int n_heads, int n_kv_heads, int head_dim, int max_pos);
/* Computes items [begin, end) using `scratch` (bf_attention_scratch_bytes, 64-byte aligned). */
void bf_attention_items(const bf_attention_job *job, int64_t begin, int64_t end, uint8_t *scratch);

/* gate[i] = f32(f32(g / f32(1 + bf_expf(−g))) · up[i]) with g = gate[i], for i in [0, n). */
void bf_swiglu(float *gate, const float *up, int64_t n, int scalar);
/* out[i] = bf_expf(x[i]) (for tests: exercises the vector and the scalar exp). */
void bf_exp_array(float *out, const float *x, int64_t n, int scalar);

#endif
