/*
 * N-API glue (plain C, NAPI_VERSION 8). Exports:
 *   createPool(threads, spinUs) → handle        destroyPool(handle)
 *   matmul(handle, out, wBytes, type, rows, cols, x, nTok, scalar, noAmx, x16)
 *   x16Repack(wBytes, type, rows, cols) → boolean (rearranged in place into native/x16.c's layout, or untouched)
 *   attention(handle, out, q, nTok, nPos, cacheOf, keys[], values[], nHeads, nKvHeads, headDim, scalar)
 *   swiglu(handle, gate, up, n, scalar)        exp(out, x, scalar)
 *   rmsNorm(out, x, weight, nRows, dim, eps, scalar)     add(a, b, n, scalar)     addBias(a, bias, rows, n, scalar)
 *   rope(x, nTok, nHeads, headDim, ropeDims, positions, cos, sin, neox, scalar)
 *   mapFileRange(path, offset, length) → Uint8Array (read-only mmap; unmapped when collected)
 *   allocAligned(bytes) → Uint8Array | null (64-byte aligned, zeroed; null if external buffers are refused)
 *   simdLevel() → "avx512" | "avx2" | "scalar"
 * Every argument is checked here, so a wrong call throws instead of reading out of bounds.
 */
#define _GNU_SOURCE
#ifndef NAPI_VERSION
#define NAPI_VERSION 8
#endif
#include <node_api.h>

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "attention.h"
#include "butterfly.h"
#include "matmul.h"
#include "x16.h"
#include "ops.h"
#include "pool.h"

/* Below this many weight bytes × tokens, one thread finishes before helpers would have started paying off. */
#define BF_PARALLEL_MIN_BYTES (64 * 1024)
#define BF_HUGE_PAGE_BYTES (2 * 1024 * 1024)
#define BF_HUGE_MIN_BYTES (4 * BF_HUGE_PAGE_BYTES)

typedef struct {
  bf_pool *pool;
  void *scratch;
  size_t scratch_bytes;
  void *attn_scratch; /* per-thread attention scratch, grown as needed */
  size_t attn_scratch_bytes;
  napi_env env;
  int hook_registered;
} bf_handle;

#define CHECK(env, call)                                            \
  do {                                                              \
    if ((call) != napi_ok) {                                        \
      const napi_extended_error_info *info_ = NULL;                 \
      napi_get_last_error_info((env), &info_);                      \
      bool pending_ = false;                                        \
      napi_is_exception_pending((env), &pending_);                  \
      if (!pending_)                                                \
        napi_throw_error((env), NULL,                               \
                         info_ && info_->error_message ? info_->error_message : "N-API call failed"); \
      return NULL;                                                  \
    }                                                               \
  } while (0)

#define THROW_RANGE(env, msg) do { napi_throw_range_error((env), NULL, (msg)); return NULL; } while (0)
#define THROW_TYPE(env, msg) do { napi_throw_type_error((env), NULL, (msg)); return NULL; } while (0)

static void handle_release(bf_handle *h) {
  if (h->pool) { bf_pool_destroy(h->pool); h->pool = NULL; }
  free(h->scratch);
  h->scratch = NULL;
  h->scratch_bytes = 0;
  free(h->attn_scratch);
  h->attn_scratch = NULL;
  h->attn_scratch_bytes = 0;
}

/* The environment is going away (process exit or worker termination): stop the helper threads. */
static void handle_cleanup_hook(void *arg) {
  bf_handle *h = arg;
  h->hook_registered = 0;
  handle_release(h);
}

static void handle_finalize(napi_env env, void *data, void *hint) {
  (void)hint;
  bf_handle *h = data;
  if (h->hook_registered) napi_remove_env_cleanup_hook(env, handle_cleanup_hook, h);
  handle_release(h);
  free(h);
}

static napi_value get_args(napi_env env, napi_callback_info info, size_t want, napi_value *argv) {
  size_t argc = want;
  CHECK(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < want) THROW_TYPE(env, "too few arguments");
  napi_value undef;
  CHECK(env, napi_get_undefined(env, &undef));
  return undef;
}

static int get_int64(napi_env env, napi_value v, int64_t *out) {
  double d;
  if (napi_get_value_double(env, v, &d) != napi_ok || d != d || d < 0 || d > 9007199254740991.0 || d != (double)(int64_t)d) {
    napi_throw_range_error(env, NULL, "expected a non-negative integer");
    return -1;
  }
  *out = (int64_t)d;
  return 0;
}

static bf_handle *get_handle(napi_env env, napi_value v) {
  void *data = NULL;
  if (napi_get_value_external(env, v, &data) != napi_ok || !data) {
    napi_throw_type_error(env, NULL, "expected a kernel pool handle");
    return NULL;
  }
  return data;
}

static napi_value create_pool(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  if (!get_args(env, info, 2, argv)) return NULL;
  int64_t threads, spin_us;
  if (get_int64(env, argv[0], &threads) || get_int64(env, argv[1], &spin_us)) return NULL;
  if (threads < 1 || threads > 256) THROW_RANGE(env, "threads must be between 1 and 256");
  bf_handle *h = calloc(1, sizeof *h);
  if (!h) THROW_RANGE(env, "out of memory");
  h->env = env;
  h->pool = bf_pool_create((int)threads, spin_us);
  if (!h->pool) { free(h); napi_throw_error(env, NULL, "could not start kernel threads"); return NULL; }
  if (napi_add_env_cleanup_hook(env, handle_cleanup_hook, h) == napi_ok) h->hook_registered = 1;
  napi_value ext;
  if (napi_create_external(env, h, handle_finalize, NULL, &ext) != napi_ok) {
    if (h->hook_registered) napi_remove_env_cleanup_hook(env, handle_cleanup_hook, h);
    handle_release(h);
    free(h);
    napi_throw_error(env, NULL, "could not create the pool handle");
    return NULL;
  }
  return ext;
}

static napi_value destroy_pool(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  napi_value undef = get_args(env, info, 1, argv);
  if (!undef) return NULL;
  bf_handle *h = get_handle(env, argv[0]);
  if (!h) return NULL;
  handle_release(h); /* the struct itself is freed by the finalizer */
  return undef;
}

static int get_typed(napi_env env, napi_value v, napi_typedarray_type want, void **data, size_t *length) {
  bool is_typed = false;
  napi_typedarray_type type;
  napi_value ab;
  size_t offset;
  if (napi_is_typedarray(env, v, &is_typed) != napi_ok || !is_typed ||
      napi_get_typedarray_info(env, v, &type, length, data, &ab, &offset) != napi_ok || type != want) {
    napi_throw_type_error(env, NULL, want == napi_float32_array ? "expected a Float32Array"
                                     : want == napi_int32_array ? "expected an Int32Array" : "expected a Uint8Array");
    return -1;
  }
  return 0;
}

/* From this many tokens a matmul's activations are quantized by every thread, a share of the tokens each (a
 * 128-token prefill quantized ~2,800 blocks per token on the calling thread alone: ~7% of the prefill, while the
 * helpers waited) */
#define BF_PARALLEL_ACTS_MIN_TOK 8

typedef struct {
  int type;
  const float *x;
  int64_t cols, n_tok;
  const bf_acts *acts;
} acts_task;

static void acts_part(void *ctx, int part, int n_parts) {
  const acts_task *a = ctx;
  bf_acts_fill(a->type, a->x, a->cols, a->n_tok * part / n_parts, a->n_tok * (part + 1) / n_parts, a->acts);
}

static void matmul_part(void *ctx, int part, int n_parts) {
  const bf_matmul_job *job = ctx;
  const int64_t unit = job->x16 ? 16 : 1; /* x16 rows go in whole groups */
  const int64_t units = job->rows / unit;
  const int64_t begin = unit * (units * part / n_parts), end = unit * (units * (part + 1) / n_parts);
  bf_matmul_rows(job, begin, end);
}

static int ranges_overlap(const void *a, size_t a_len, const void *b, size_t b_len) {
  const char *pa = a, *pb = b;
  return a_len && b_len && pa < pb + b_len && pb < pa + a_len;
}

static napi_value matmul(napi_env env, napi_callback_info info) {
  napi_value argv[11];
  napi_value undef = get_args(env, info, 11, argv);
  if (!undef) return NULL;
  bf_handle *h = get_handle(env, argv[0]);
  if (!h) return NULL;
  if (!h->pool) THROW_RANGE(env, "the kernel pool was disposed");
  float *out, *x;
  uint8_t *w;
  size_t out_len, w_len, x_len;
  int64_t type, rows, cols, n_tok;
  bool scalar = false, no_amx = false;
  if (get_typed(env, argv[1], napi_float32_array, (void **)&out, &out_len) ||
      get_typed(env, argv[2], napi_uint8_array, (void **)&w, &w_len) || get_int64(env, argv[3], &type) ||
      get_int64(env, argv[4], &rows) || get_int64(env, argv[5], &cols) ||
      get_typed(env, argv[6], napi_float32_array, (void **)&x, &x_len) || get_int64(env, argv[7], &n_tok))
    return NULL;
  CHECK(env, napi_get_value_bool(env, argv[8], &scalar));
  CHECK(env, napi_get_value_bool(env, argv[9], &no_amx));
  bool x16 = false;
  CHECK(env, napi_get_value_bool(env, argv[10], &x16));
  if (x16 && (!bf_x16_supported((int)type) || rows % 16)) THROW_RANGE(env, "no x16 layout for this weight type or row count");

  bf_dot_fn dot;
  bf_dot4_fn dot4;
  if (bf_dot_for_type((int)type, scalar, &dot, &dot4) != 0) THROW_RANGE(env, "unsupported weight type");
  const size_t row_bytes = bf_row_bytes((int)type, cols);
  if (!row_bytes) THROW_RANGE(env, "row length does not fit the weight type's block size");
  if (cols > 0x7fffffff) THROW_RANGE(env, "row too long");
  if (rows == 0 || n_tok == 0) return undef;
  if ((uint64_t)rows > w_len / row_bytes) THROW_RANGE(env, "weight buffer is smaller than rows × row bytes");
  if ((uint64_t)n_tok > x_len / (uint64_t)cols) THROW_RANGE(env, "x is shorter than nTok × cols");
  if ((uint64_t)n_tok > out_len / (uint64_t)rows) THROW_RANGE(env, "out is shorter than nTok × rows");
  if (ranges_overlap(out, (size_t)(n_tok * rows) * 4, x, (size_t)(n_tok * cols) * 4))
    THROW_RANGE(env, "out and x must not overlap");

  const size_t need = bf_act_scratch_bytes((int)type, cols, n_tok);
  if (need > h->scratch_bytes) {
    void *mem = NULL;
    if (posix_memalign(&mem, 64, need) != 0) THROW_RANGE(env, "out of memory for activations");
    free(h->scratch);
    h->scratch = mem;
    h->scratch_bytes = need;
  }
  bf_acts acts;
  bf_acts_layout((int)type, x, cols, n_tok, h->scratch, &acts);
  if (n_tok >= BF_PARALLEL_ACTS_MIN_TOK && bf_pool_threads(h->pool) > 1) {
    acts_task at = {(int)type, x, cols, n_tok, &acts};
    if (bf_pool_run(h->pool, acts_part, &at, bf_pool_threads(h->pool)) != 0)
      THROW_RANGE(env, "the kernel pool is already running a matmul (one caller at a time)");
  } else {
    bf_acts_fill((int)type, x, cols, 0, n_tok, &acts);
  }
  bf_matmul_job job = {dot, dot4, w, row_bytes, rows, cols, n_tok, &acts, out, no_amx ? 1 : 0, x16 ? 1 : 0, (int)type};
  const uint64_t work_bytes = (uint64_t)rows * row_bytes * (uint64_t)n_tok;
  int parts = work_bytes < BF_PARALLEL_MIN_BYTES ? 1 : bf_pool_threads(h->pool);
  if (parts > rows / (x16 ? 16 : 1)) parts = (int)(rows / (x16 ? 16 : 1));
  if (bf_pool_run(h->pool, matmul_part, &job, parts) != 0)
    THROW_RANGE(env, "the kernel pool is already running a matmul (one caller at a time)");
  return undef;
}

/* x16Repack(wBytes, type, rows, cols): true if the weights were rearranged in place into the x16 layout; false (and
 * untouched) where the type, the shape or this build has none (only AVX-512 builds have the kernels that gain). */
static napi_value x16_repack(napi_env env, napi_callback_info info) {
  napi_value argv[4];
  if (!get_args(env, info, 4, argv)) return NULL;
  uint8_t *w;
  size_t w_len;
  int64_t type, rows, cols;
  if (get_typed(env, argv[0], napi_uint8_array, (void **)&w, &w_len) || get_int64(env, argv[1], &type) ||
      get_int64(env, argv[2], &rows) || get_int64(env, argv[3], &cols))
    return NULL;
  int ok = 0;
#ifdef BF_AVX512_QUANT
  const size_t row_bytes = bf_row_bytes((int)type, cols);
  if (bf_x16_supported((int)type) && row_bytes && rows > 0 && rows % 16 == 0 && (uint64_t)rows <= w_len / row_bytes)
    ok = bf_x16_repack((int)type, w, rows, cols) == 0;
#endif
  napi_value result;
  CHECK(env, napi_get_boolean(env, ok, &result));
  return result;
}

/* Below this many multiply-adds (Σ nPos · nHeads · headDim, for q·k), attention runs on the calling thread. */
#define BF_ATTN_PARALLEL_MIN (32 * 1024)
/* Below this many elements, SwiGLU runs on the calling thread. */
#define BF_SWIGLU_PARALLEL_MIN (16 * 1024)

typedef struct {
  const bf_attention_job *job;
} attn_task;

static void attention_part(void *ctx, int part, int n_parts) {
  const bf_attention_job *job = ((const attn_task *)ctx)->job;
  bf_attention_items(job, job->bounds[part], job->bounds[part + 1], job->scratch + (size_t)part * job->scratch_per_part);
}

/* Reads a JS array of Float32Arrays into data pointers and lengths (malloc'd; the caller frees *data). */
static int get_f32_arrays(napi_env env, napi_value arr, const char *what, float ***data, size_t **lengths, uint32_t *n) {
  bool is_array = false;
  char msg[96];
  if (napi_is_array(env, arr, &is_array) != napi_ok || !is_array || napi_get_array_length(env, arr, n) != napi_ok) {
    snprintf(msg, sizeof msg, "%s must be an array of Float32Array", what);
    napi_throw_type_error(env, NULL, msg);
    return -1;
  }
  *data = calloc(*n ? *n : 1, sizeof **data);
  *lengths = calloc(*n ? *n : 1, sizeof **lengths);
  if (!*data || !*lengths) {
    free(*data);
    free(*lengths);
    napi_throw_range_error(env, NULL, "out of memory");
    return -1;
  }
  for (uint32_t i = 0; i < *n; i++) {
    napi_value el;
    if (napi_get_element(env, arr, i, &el) != napi_ok ||
        get_typed(env, el, napi_float32_array, (void **)&(*data)[i], &(*lengths)[i]) != 0) {
      free(*data);
      free(*lengths);
      bool pending = false;
      napi_is_exception_pending(env, &pending);
      if (!pending) napi_throw_type_error(env, NULL, "cache arrays must be Float32Arrays");
      return -1;
    }
  }
  return 0;
}

static napi_value attention(napi_env env, napi_callback_info info) {
  napi_value argv[12];
  napi_value undef = get_args(env, info, 12, argv);
  if (!undef) return NULL;
  bf_handle *h = get_handle(env, argv[0]);
  if (!h) return NULL;
  if (!h->pool) THROW_RANGE(env, "the kernel pool was disposed");
  float *out, *q;
  int32_t *n_pos, *cache_of;
  size_t out_len, q_len, npos_len, cache_len;
  int64_t n_tok, n_heads, n_kv, head_dim;
  bool scalar = false;
  if (get_typed(env, argv[1], napi_float32_array, (void **)&out, &out_len) ||
      get_typed(env, argv[2], napi_float32_array, (void **)&q, &q_len) || get_int64(env, argv[3], &n_tok) ||
      get_typed(env, argv[4], napi_int32_array, (void **)&n_pos, &npos_len) ||
      get_typed(env, argv[5], napi_int32_array, (void **)&cache_of, &cache_len) ||
      get_int64(env, argv[8], &n_heads) || get_int64(env, argv[9], &n_kv) || get_int64(env, argv[10], &head_dim))
    return NULL;
  CHECK(env, napi_get_value_bool(env, argv[11], &scalar));
  if (n_heads < 1 || n_kv < 1 || n_heads % n_kv != 0 || n_heads > 65536)
    THROW_RANGE(env, "nHeads must be a positive multiple of nKvHeads");
  if (head_dim < 1 || head_dim > 65536) THROW_RANGE(env, "headDim must be between 1 and 65536");
  if (n_tok == 0) return undef;
  const uint64_t q_dim = (uint64_t)n_heads * (uint64_t)head_dim, kv_dim = (uint64_t)n_kv * (uint64_t)head_dim;
  if ((uint64_t)n_tok > npos_len || (uint64_t)n_tok > cache_len) THROW_RANGE(env, "nPos and cacheOf need nTok entries");
  if ((uint64_t)n_tok > q_len / q_dim) THROW_RANGE(env, "q is shorter than nTok × nHeads·headDim");
  if ((uint64_t)n_tok > out_len / q_dim) THROW_RANGE(env, "out is shorter than nTok × nHeads·headDim");
  if (ranges_overlap(out, (size_t)(n_tok * q_dim) * 4, q, (size_t)(n_tok * q_dim) * 4))
    THROW_RANGE(env, "out and q must not overlap");

  float **keys = NULL, **values = NULL;
  size_t *key_lens = NULL, *value_lens = NULL;
  uint32_t n_keys = 0, n_values = 0;
  if (get_f32_arrays(env, argv[6], "keys", &keys, &key_lens, &n_keys)) return NULL;
  if (get_f32_arrays(env, argv[7], "values", &values, &value_lens, &n_values)) {
    free(keys);
    free(key_lens);
    return NULL;
  }
  const char *err = NULL;
  const float **tok_k = NULL, **tok_v = NULL;
  int64_t *bounds = NULL;
  int max_pos = 0;
  uint64_t total = 0; /* Σ nPos: the q·k and Σ w·v work of a token's group is proportional to it */
  if (n_keys != n_values) err = "keys and values must have the same number of caches";
  if (!err) {
    tok_k = malloc((size_t)n_tok * sizeof *tok_k);
    tok_v = malloc((size_t)n_tok * sizeof *tok_v);
    if (!tok_k || !tok_v) err = "out of memory";
  }
  for (uint32_t i = 0; !err && i < n_keys; i++) {
    if (ranges_overlap(out, (size_t)(n_tok * q_dim) * 4, keys[i], key_lens[i] * 4) ||
        ranges_overlap(out, (size_t)(n_tok * q_dim) * 4, values[i], value_lens[i] * 4))
      err = "out must not overlap the caches";
  }
  for (int64_t t = 0; !err && t < n_tok; t++) {
    const int32_t c = cache_of[t], np = n_pos[t];
    if (c < 0 || (uint32_t)c >= n_keys) { err = "cacheOf names a cache that is not in keys/values"; break; }
    if (np < 0) { err = "nPos must be non-negative"; break; }
    if ((uint64_t)np > key_lens[c] / kv_dim || (uint64_t)np > value_lens[c] / kv_dim) {
      err = "a cache is shorter than nPos × nKvHeads·headDim";
      break;
    }
    tok_k[t] = keys[c];
    tok_v[t] = values[c];
    if (np > max_pos) max_pos = np;
    total += (uint64_t)np;
  }
  free(key_lens);
  free(value_lens);
  int parts = 1;
  size_t per_part = 0;
  if (!err) {
    const int64_t n_items = n_tok * n_kv;
    parts = total * (uint64_t)n_heads * (uint64_t)head_dim < BF_ATTN_PARALLEL_MIN ? 1 : bf_pool_threads(h->pool);
    if (parts > n_items) parts = (int)n_items;
    per_part = bf_attention_scratch_bytes((int)n_heads, (int)n_kv, (int)head_dim, max_pos);
    const size_t need = per_part * (size_t)parts;
    if (need > h->attn_scratch_bytes) {
      void *mem = NULL;
      if (posix_memalign(&mem, 64, need) != 0) {
        err = "out of memory for attention scratch";
      } else {
        free(h->attn_scratch);
        h->attn_scratch = mem;
        h->attn_scratch_bytes = need;
      }
    }
    bounds = malloc(((size_t)parts + 1) * sizeof *bounds);
    if (!bounds) err = "out of memory";
    if (!err) {
      /* Split items (token, KV head) into contiguous runs of about equal work; the split only decides which thread
       * computes an item, never how. Weight nPos + 1: an item costs a little even for few positions. */
      const uint64_t grand = total * (uint64_t)n_kv + (uint64_t)n_items;
      uint64_t acc = 0;
      int p = 1;
      bounds[0] = 0;
      for (int64_t i = 0; i < n_items && p < parts; i++) {
        while (p < parts && acc >= grand * (uint64_t)p / (uint64_t)parts) bounds[p++] = i;
        acc += (uint64_t)n_pos[i / n_kv] + 1;
      }
      while (p < parts) bounds[p++] = n_items;
      bounds[parts] = n_items;
    }
  }
  if (!err) {
    bf_attention_job job = {
        q, out, tok_k, tok_v, n_pos, n_tok, (int)n_heads, (int)n_kv, (int)head_dim, max_pos, scalar ? 1 : 0,
        (float)(1.0 / sqrt((double)head_dim)), bounds, h->attn_scratch, per_part,
    };
    attn_task task = {&job};
    if (bf_pool_run(h->pool, attention_part, &task, parts) != 0) err = "the kernel pool is already running (one caller at a time)";
  }
  free(keys);
  free(values);
  free(tok_k);
  free(tok_v);
  free(bounds);
  if (err) THROW_RANGE(env, err);
  return undef;
}

typedef struct {
  float *gate;
  const float *up;
  int64_t n;
  int scalar;
} swiglu_task;

static void swiglu_part(void *ctx, int part, int n_parts) {
  const swiglu_task *s = ctx;
  /* chunk edges at multiples of 16 keep every chunk on whole vectors; any split gives the same bits */
  const int64_t blocks = (s->n + 15) / 16;
  const int64_t b0 = blocks * part / n_parts * 16, b1 = part + 1 == n_parts ? s->n : blocks * (part + 1) / n_parts * 16;
  bf_swiglu(s->gate + b0, s->up + b0, b1 - b0, s->scalar);
}

static napi_value swiglu(napi_env env, napi_callback_info info) {
  napi_value argv[5];
  napi_value undef = get_args(env, info, 5, argv);
  if (!undef) return NULL;
  bf_handle *h = get_handle(env, argv[0]);
  if (!h) return NULL;
  if (!h->pool) THROW_RANGE(env, "the kernel pool was disposed");
  float *gate, *up;
  size_t gate_len, up_len;
  int64_t n;
  bool scalar = false;
  if (get_typed(env, argv[1], napi_float32_array, (void **)&gate, &gate_len) ||
      get_typed(env, argv[2], napi_float32_array, (void **)&up, &up_len) || get_int64(env, argv[3], &n))
    return NULL;
  CHECK(env, napi_get_value_bool(env, argv[4], &scalar));
  if ((uint64_t)n > gate_len || (uint64_t)n > up_len) THROW_RANGE(env, "gate and up need n elements");
  if (n == 0) return undef;
  if (gate != up && ranges_overlap(gate, (size_t)n * 4, up, (size_t)n * 4)) THROW_RANGE(env, "gate and up must not partly overlap");
  swiglu_task task = {gate, up, n, scalar ? 1 : 0};
  int parts = n < BF_SWIGLU_PARALLEL_MIN ? 1 : bf_pool_threads(h->pool);
  if (bf_pool_run(h->pool, swiglu_part, &task, parts) != 0)
    THROW_RANGE(env, "the kernel pool is already running (one caller at a time)");
  return undef;
}

static napi_value exp_array(napi_env env, napi_callback_info info) {
  napi_value argv[3];
  napi_value undef = get_args(env, info, 3, argv);
  if (!undef) return NULL;
  float *out, *x;
  size_t out_len, x_len;
  bool scalar = false;
  if (get_typed(env, argv[0], napi_float32_array, (void **)&out, &out_len) ||
      get_typed(env, argv[1], napi_float32_array, (void **)&x, &x_len))
    return NULL;
  CHECK(env, napi_get_value_bool(env, argv[2], &scalar));
  if (out_len < x_len) THROW_RANGE(env, "out is shorter than x");
  bf_exp_array(out, x, (int64_t)x_len, scalar ? 1 : 0);
  return undef;
}

/* ---- per-token ops (ops.c): small, so they run on the calling thread; no pool handle ---- */

/* a and b are the same array or do not overlap (a partial overlap would make element order visible) */
static int same_or_apart(const void *a, size_t a_bytes, const void *b, size_t b_bytes) {
  return a == b || !ranges_overlap(a, a_bytes, b, b_bytes);
}

static napi_value rms_norm(napi_env env, napi_callback_info info) {
  napi_value argv[7];
  napi_value undef = get_args(env, info, 7, argv);
  if (!undef) return NULL;
  float *out, *x, *w;
  size_t out_len, x_len, w_len;
  int64_t n_rows, dim;
  double eps;
  bool scalar = false;
  if (get_typed(env, argv[0], napi_float32_array, (void **)&out, &out_len) ||
      get_typed(env, argv[1], napi_float32_array, (void **)&x, &x_len) ||
      get_typed(env, argv[2], napi_float32_array, (void **)&w, &w_len) || get_int64(env, argv[3], &n_rows) ||
      get_int64(env, argv[4], &dim))
    return NULL;
  CHECK(env, napi_get_value_double(env, argv[5], &eps));
  CHECK(env, napi_get_value_bool(env, argv[6], &scalar));
  if (dim < 1 || dim > 0x7fffffff) THROW_RANGE(env, "dim must be between 1 and 2^31 - 1");
  if ((uint64_t)dim > w_len) THROW_RANGE(env, "weight is shorter than dim");
  if ((uint64_t)n_rows > x_len / (uint64_t)dim || (uint64_t)n_rows > out_len / (uint64_t)dim)
    THROW_RANGE(env, "x and out need nRows × dim values");
  if (n_rows == 0) return undef;
  const size_t bytes = (size_t)(n_rows * dim) * 4;
  if (!same_or_apart(out, bytes, x, bytes)) THROW_RANGE(env, "out must be x itself or not overlap it");
  if (ranges_overlap(out, bytes, w, (size_t)dim * 4)) THROW_RANGE(env, "out must not overlap weight");
  bf_rmsnorm_rows(out, x, w, n_rows, (int)dim, eps, scalar ? 1 : 0);
  return undef;
}

static napi_value add(napi_env env, napi_callback_info info) {
  napi_value argv[4];
  napi_value undef = get_args(env, info, 4, argv);
  if (!undef) return NULL;
  float *a, *b;
  size_t a_len, b_len;
  int64_t n;
  bool scalar = false;
  if (get_typed(env, argv[0], napi_float32_array, (void **)&a, &a_len) ||
      get_typed(env, argv[1], napi_float32_array, (void **)&b, &b_len) || get_int64(env, argv[2], &n))
    return NULL;
  CHECK(env, napi_get_value_bool(env, argv[3], &scalar));
  if ((uint64_t)n > a_len || (uint64_t)n > b_len) THROW_RANGE(env, "a and b need n elements");
  if (!same_or_apart(a, (size_t)n * 4, b, (size_t)n * 4)) THROW_RANGE(env, "a and b must be the same array or not overlap");
  bf_add(a, b, n, scalar ? 1 : 0);
  return undef;
}

static napi_value add_bias(napi_env env, napi_callback_info info) {
  napi_value argv[5];
  napi_value undef = get_args(env, info, 5, argv);
  if (!undef) return NULL;
  float *a, *bias;
  size_t a_len, bias_len;
  int64_t rows, n;
  bool scalar = false;
  if (get_typed(env, argv[0], napi_float32_array, (void **)&a, &a_len) ||
      get_typed(env, argv[1], napi_float32_array, (void **)&bias, &bias_len) || get_int64(env, argv[2], &rows) ||
      get_int64(env, argv[3], &n))
    return NULL;
  CHECK(env, napi_get_value_bool(env, argv[4], &scalar));
  if ((uint64_t)n > bias_len) THROW_RANGE(env, "bias is shorter than n");
  if (n == 0 || rows == 0) return undef;
  if ((uint64_t)rows > a_len / (uint64_t)n) THROW_RANGE(env, "a needs rows × n elements");
  if (ranges_overlap(a, (size_t)(rows * n) * 4, bias, (size_t)n * 4)) THROW_RANGE(env, "a must not overlap bias");
  bf_add_bias(a, bias, rows, n, scalar ? 1 : 0);
  return undef;
}

static napi_value rope(napi_env env, napi_callback_info info) {
  napi_value argv[10];
  napi_value undef = get_args(env, info, 10, argv);
  if (!undef) return NULL;
  float *x, *cs, *sn;
  int32_t *pos;
  size_t x_len, pos_len, cs_len, sn_len;
  int64_t n_tok, n_heads, head_dim, rope_dims;
  bool neox = false, scalar = false;
  if (get_typed(env, argv[0], napi_float32_array, (void **)&x, &x_len) || get_int64(env, argv[1], &n_tok) ||
      get_int64(env, argv[2], &n_heads) || get_int64(env, argv[3], &head_dim) || get_int64(env, argv[4], &rope_dims) ||
      get_typed(env, argv[5], napi_int32_array, (void **)&pos, &pos_len) ||
      get_typed(env, argv[6], napi_float32_array, (void **)&cs, &cs_len) ||
      get_typed(env, argv[7], napi_float32_array, (void **)&sn, &sn_len))
    return NULL;
  CHECK(env, napi_get_value_bool(env, argv[8], &neox));
  CHECK(env, napi_get_value_bool(env, argv[9], &scalar));
  if (n_heads < 1 || n_heads > 65536 || head_dim < 1 || head_dim > 65536) THROW_RANGE(env, "nHeads and headDim must be between 1 and 65536");
  if (rope_dims < 0 || rope_dims % 2 != 0 || rope_dims > head_dim) THROW_RANGE(env, "ropeDims must be even and at most headDim");
  const uint64_t row = (uint64_t)n_heads * (uint64_t)head_dim, half = (uint64_t)rope_dims / 2;
  if ((uint64_t)n_tok > pos_len) THROW_RANGE(env, "positions needs nTok entries");
  if ((uint64_t)n_tok > x_len / row) THROW_RANGE(env, "x is shorter than nTok × nHeads·headDim");
  if (n_tok == 0 || half == 0) return undef;
  for (int64_t t = 0; t < n_tok; t++)
    if (pos[t] < 0 || ((uint64_t)pos[t] + 1) * half > cs_len || ((uint64_t)pos[t] + 1) * half > sn_len)
      THROW_RANGE(env, "a position is negative or outside the cos/sin tables");
  const size_t x_bytes = (size_t)((uint64_t)n_tok * row) * 4;
  if (ranges_overlap(x, x_bytes, cs, cs_len * 4) || ranges_overlap(x, x_bytes, sn, sn_len * 4))
    THROW_RANGE(env, "x must not overlap the cos/sin tables");
  bf_rope_rows(x, n_tok, (int)n_heads, (int)head_dim, (int)rope_dims, pos, cs, sn, neox ? 1 : 0, scalar ? 1 : 0);
  return undef;
}

typedef struct {
  void *base;
  size_t length;
} bf_mapping;

static void unmap_finalize(napi_env env, void *data, void *hint) {
  (void)env;
  (void)data;
  bf_mapping *m = hint;
  munmap(m->base, m->length);
  free(m);
}

static napi_value empty_u8(napi_env env) {
  napi_value ab, arr;
  CHECK(env, napi_create_arraybuffer(env, 0, NULL, &ab));
  CHECK(env, napi_create_typedarray(env, napi_uint8_array, 0, ab, 0, &arr));
  return arr;
}

static napi_value map_file_range(napi_env env, napi_callback_info info) {
  napi_value argv[3];
  if (!get_args(env, info, 3, argv)) return NULL;
  size_t path_len = 0;
  CHECK(env, napi_get_value_string_utf8(env, argv[0], NULL, 0, &path_len));
  int64_t offset, length;
  if (get_int64(env, argv[1], &offset) || get_int64(env, argv[2], &length)) return NULL;
  char *path = malloc(path_len + 1);
  if (!path) THROW_RANGE(env, "out of memory");
  if (napi_get_value_string_utf8(env, argv[0], path, path_len + 1, &path_len) != napi_ok) {
    free(path);
    THROW_TYPE(env, "path must be a string");
  }
  const int fd = open(path, O_RDONLY | O_CLOEXEC);
  char msg[512];
  if (fd < 0) {
    snprintf(msg, sizeof msg, "cannot open %s: %s", path, strerror(errno));
    free(path);
    napi_throw_error(env, NULL, msg);
    return NULL;
  }
  struct stat st;
  if (fstat(fd, &st) != 0 || offset + length > (int64_t)st.st_size) {
    snprintf(msg, sizeof msg, "range %lld+%lld is outside %s (%lld bytes)", (long long)offset, (long long)length, path,
             (long long)st.st_size);
    close(fd);
    free(path);
    napi_throw_range_error(env, NULL, msg);
    return NULL;
  }
  if (length == 0) { close(fd); free(path); return empty_u8(env); }
  const int64_t page = sysconf(_SC_PAGESIZE);
  const int64_t aligned = offset - offset % page; /* mmap offsets must be page multiples */
  const size_t delta = (size_t)(offset - aligned), map_len = (size_t)length + delta;
  void *base = mmap(NULL, map_len, PROT_READ, MAP_PRIVATE, fd, aligned);
  const int map_errno = errno;
  close(fd);
  if (base == MAP_FAILED) {
    snprintf(msg, sizeof msg, "cannot mmap %s: %s", path, strerror(map_errno));
    free(path);
    napi_throw_error(env, NULL, msg);
    return NULL;
  }
  free(path);
  bf_mapping *m = malloc(sizeof *m);
  if (!m) { munmap(base, map_len); THROW_RANGE(env, "out of memory"); }
  m->base = base;
  m->length = map_len;
  napi_value ab, arr;
  if (napi_create_external_arraybuffer(env, (uint8_t *)base + delta, (size_t)length, unmap_finalize, m, &ab) != napi_ok) {
    munmap(base, map_len);
    free(m);
    bool pending = false;
    napi_is_exception_pending(env, &pending);
    if (!pending) napi_throw_error(env, NULL, "external array buffers are not allowed in this runtime");
    return NULL;
  }
  CHECK(env, napi_create_typedarray(env, napi_uint8_array, (size_t)length, ab, 0, &arr));
  return arr;
}

static void free_aligned_finalize(napi_env env, void *data, void *hint) {
  int64_t adjusted;
  napi_adjust_external_memory(env, -(int64_t)(size_t)hint, &adjusted);
  free(data);
}

static napi_value alloc_aligned(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  if (!get_args(env, info, 1, argv)) return NULL;
  int64_t bytes;
  if (get_int64(env, argv[0], &bytes)) return NULL;
  if (bytes == 0) return empty_u8(env);
  void *mem = NULL;
  /* Large buffers (weights) get 2 MiB alignment and transparent huge pages where the kernel allows them on
   * request: streaming ~100 MB through 4 KiB pages costs TLB misses. */
  const int huge = bytes >= BF_HUGE_MIN_BYTES;
  if (posix_memalign(&mem, huge ? BF_HUGE_PAGE_BYTES : 64, (size_t)bytes) != 0) THROW_RANGE(env, "out of memory");
#ifdef MADV_HUGEPAGE
  if (huge) madvise(mem, (size_t)bytes & ~(size_t)(BF_HUGE_PAGE_BYTES - 1), MADV_HUGEPAGE);
#endif
  memset(mem, 0, (size_t)bytes);
  napi_value ab, arr;
  if (napi_create_external_arraybuffer(env, mem, (size_t)bytes, free_aligned_finalize, (void *)(size_t)bytes, &ab) !=
      napi_ok) {
    free(mem);
    bool pending = false;
    napi_is_exception_pending(env, &pending);
    if (pending) return NULL;
    napi_value null_value;
    CHECK(env, napi_get_null(env, &null_value)); /* the caller falls back to a plain Uint8Array */
    return null_value;
  }
  int64_t adjusted;
  napi_adjust_external_memory(env, bytes, &adjusted); /* let the GC see the memory it keeps alive */
  CHECK(env, napi_create_typedarray(env, napi_uint8_array, (size_t)bytes, ab, 0, &arr));
  return arr;
}

static napi_value simd_level(napi_env env, napi_callback_info info) {
  (void)info;
  napi_value s;
  CHECK(env, napi_create_string_utf8(env, bf_simd_level(), NAPI_AUTO_LENGTH, &s));
  return s;
}

static napi_value init(napi_env env, napi_value exports) {
  const napi_property_descriptor props[] = {
      {"createPool", NULL, create_pool, NULL, NULL, NULL, napi_enumerable, NULL},
      {"destroyPool", NULL, destroy_pool, NULL, NULL, NULL, napi_enumerable, NULL},
      {"matmul", NULL, matmul, NULL, NULL, NULL, napi_enumerable, NULL},
      {"x16Repack", NULL, x16_repack, NULL, NULL, NULL, napi_enumerable, NULL},
      {"attention", NULL, attention, NULL, NULL, NULL, napi_enumerable, NULL},
      {"swiglu", NULL, swiglu, NULL, NULL, NULL, napi_enumerable, NULL},
      {"exp", NULL, exp_array, NULL, NULL, NULL, napi_enumerable, NULL},
      {"rmsNorm", NULL, rms_norm, NULL, NULL, NULL, napi_enumerable, NULL},
      {"add", NULL, add, NULL, NULL, NULL, napi_enumerable, NULL},
      {"addBias", NULL, add_bias, NULL, NULL, NULL, napi_enumerable, NULL},
      {"rope", NULL, rope, NULL, NULL, NULL, napi_enumerable, NULL},
      {"mapFileRange", NULL, map_file_range, NULL, NULL, NULL, napi_enumerable, NULL},
      {"allocAligned", NULL, alloc_aligned, NULL, NULL, NULL, napi_enumerable, NULL},
      {"simdLevel", NULL, simd_level, NULL, NULL, NULL, napi_enumerable, NULL},
  };
  CHECK(env, napi_define_properties(env, exports, sizeof props / sizeof props[0], props));
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
