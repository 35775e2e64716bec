#ifndef BUTTERFLY_POOL_H
#define BUTTERFLY_POOL_H

#include <stddef.h>
#include <stdint.h>

/* A task split into n_parts; part p runs on exactly one thread (the caller always runs part 0). */
typedef void (*bf_task_fn)(void *ctx, int part, int n_parts);

typedef struct bf_pool bf_pool;

/* threads = total threads including the caller (threads - 1 helpers are started); spin_us = how long an idle
 * helper spins before parking on a condition variable. NULL on failure. */
bf_pool *bf_pool_create(int threads, int64_t spin_us);
int bf_pool_threads(const bf_pool *p);
/* Runs fn on min(n_parts, threads) parts and returns when all are done. Returns -1 if the pool is already running
 * a task (a pool serves one caller at a time). */
int bf_pool_run(bf_pool *p, bf_task_fn fn, void *ctx, int n_parts);
/* Stops and joins the helpers. */
void bf_pool_destroy(bf_pool *p);

/* A 64-byte-aligned scratch buffer of at least `bytes` owned by the calling thread, kept (and grown as needed) for
 * the thread's lifetime instead of allocated per call: per-call buffers of a few hundred KB left freed-but-resident
 * holes in the malloc heap (~2.5 MiB after a `medium` prefill). One user at a time per thread: the buffer is only
 * valid until the thread's next call. NULL if memory could not be had. */
void *bf_thread_scratch(size_t bytes);

#endif
