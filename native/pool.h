#ifndef BUTTERFLY_POOL_H
#define BUTTERFLY_POOL_H

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

#endif
