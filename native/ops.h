#ifndef BUTTERFLY_OPS_H
#define BUTTERFLY_OPS_H

#include <stdint.h>

/*
 * The per-token operations of the forward pass (RMSNorm, residual and bias adds, RoPE). Each produces exactly the
 * bits of its TypeScript reference in src/engine/model/ops.ts (docs/kernels.md "RMSNorm, RoPE and adds"); the SIMD
 * paths only run independent elements (or independent rows) side by side. `scalar` selects the portable C path.
 */

/* out row r = rmsNorm(x row r) · weight for r < n_rows (rows of dim floats, contiguous); out may equal x. */
void bf_rmsnorm_rows(float *out, const float *x, const float *weight, int64_t n_rows, int dim, double eps, int scalar);
/* a[i] = f32(a[i] + b[i]) for i < n. */
void bf_add(float *a, const float *b, int64_t n, int scalar);
/* a[r·n + i] = f32(a[r·n + i] + bias[i]) for r < rows, i < n. */
void bf_add_bias(float *a, const float *bias, int64_t rows, int64_t n, int scalar);
/*
 * RoPE in place on n_tok rows of n_heads·head_dim floats; row t uses the table row of positions[t]
 * (cos/sin: half = rope_dims/2 floats per position). neox pairs (i, i + half), otherwise (2i, 2i + 1).
 */
void bf_rope_rows(float *x, int64_t n_tok, int n_heads, int head_dim, int rope_dims, const int32_t *positions,
                  const float *cos_table, const float *sin_table, int neox, int scalar);

#endif
