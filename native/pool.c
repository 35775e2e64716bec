/*
 * Thread pool for matmul: threads - 1 helpers plus the calling thread. A call publishes the task by bumping a
 * generation counter; helpers spin on it (a handoff to a spinning thread costs ~0.1-0.3 µs, waking a parked one
 * 6-48 µs, and a decode step makes ~85 calls back to back), and park on a condition variable after spin_us idle.
 */
#define _GNU_SOURCE
#include "pool.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <time.h>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
static inline void cpu_relax(void) { _mm_pause(); }
#else
static inline void cpu_relax(void) {}
#endif

/* ~256 pauses ≈ a few µs between yields: a yield costs ~0.3 µs when nobody else wants the core */
#define YIELD_EVERY_SPINS 256

struct bf_pool {
  int n_threads;
  int64_t spin_ns;
  pthread_t *helpers;
  struct helper_arg *args;
  int n_started;

  /* the published task; written before the generation bump (release), read after observing it (acquire) */
  bf_task_fn fn;
  void *ctx;
  int n_parts;

  _Atomic uint64_t generation;
  _Atomic int pending; /* helpers that have not finished the current generation */
  _Atomic int sleepers;
  _Atomic int stop;
  _Atomic int busy;

  pthread_mutex_t mu;
  pthread_cond_t cv;
};

struct helper_arg {
  bf_pool *pool;
  int index; /* 1 .. n_threads-1; the caller is 0 */
};

static int64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* Waits until the generation moves past `seen`; returns the new one, or `seen` if the pool is stopping. */
static uint64_t wait_for_work(bf_pool *p, uint64_t seen) {
  int64_t idle_since = now_ns();
  unsigned spins = 0;
  for (;;) {
    const uint64_t g = atomic_load_explicit(&p->generation, memory_order_acquire);
    if (g != seen) return g;
    if (atomic_load_explicit(&p->stop, memory_order_relaxed)) return seen;
    cpu_relax();
    ++spins;
    /* If this helper shares a core with the caller (other load on the machine), a pure spin would hold the core
     * until the scheduler's slice ends (~ms per call); yielding now and then hands it over within microseconds. */
    if (spins % YIELD_EVERY_SPINS == 0) sched_yield();
    if (spins % 1024 != 0 || now_ns() - idle_since < p->spin_ns) continue;
    /* Park. sleepers is raised before re-reading the generation (both seq_cst), and the caller bumps the
     * generation before reading sleepers, so one of the two always sees the other: no lost wake-up. */
    pthread_mutex_lock(&p->mu);
    atomic_fetch_add(&p->sleepers, 1);
    while (atomic_load(&p->generation) == seen && !atomic_load(&p->stop)) pthread_cond_wait(&p->cv, &p->mu);
    atomic_fetch_sub(&p->sleepers, 1);
    pthread_mutex_unlock(&p->mu);
    idle_since = now_ns();
  }
}

static void *helper_main(void *arg) {
  const struct helper_arg *h = arg;
  bf_pool *p = h->pool;
  uint64_t seen = 0;
  for (;;) {
    const uint64_t g = wait_for_work(p, seen);
    if (g == seen) return NULL; /* stopping */
    seen = g;
    if (h->index < p->n_parts) p->fn(p->ctx, h->index, p->n_parts);
    atomic_fetch_sub_explicit(&p->pending, 1, memory_order_release);
  }
}

bf_pool *bf_pool_create(int threads, int64_t spin_us) {
  if (threads < 1) threads = 1;
  bf_pool *p = calloc(1, sizeof *p);
  if (!p) return NULL;
  p->n_threads = threads;
  p->spin_ns = spin_us * 1000;
  pthread_mutex_init(&p->mu, NULL);
  pthread_cond_init(&p->cv, NULL);
  if (threads > 1) {
    p->helpers = calloc((size_t)threads - 1, sizeof *p->helpers);
    p->args = calloc((size_t)threads - 1, sizeof *p->args);
    if (!p->helpers || !p->args) { bf_pool_destroy(p); return NULL; }
    for (int i = 1; i < threads; i++) {
      p->args[i - 1].pool = p;
      p->args[i - 1].index = i;
      if (pthread_create(&p->helpers[i - 1], NULL, helper_main, &p->args[i - 1]) != 0) {
        bf_pool_destroy(p);
        return NULL;
      }
      p->n_started++;
    }
  }
  return p;
}

int bf_pool_threads(const bf_pool *p) { return p->n_threads; }

int bf_pool_run(bf_pool *p, bf_task_fn fn, void *ctx, int n_parts) {
  int expected = 0;
  if (!atomic_compare_exchange_strong(&p->busy, &expected, 1)) return -1;
  if (n_parts > p->n_threads) n_parts = p->n_threads;
  if (n_parts <= 1) {
    fn(ctx, 0, 1);
  } else {
    p->fn = fn;
    p->ctx = ctx;
    p->n_parts = n_parts;
    atomic_store_explicit(&p->pending, p->n_threads - 1, memory_order_relaxed);
    atomic_fetch_add(&p->generation, 1); /* seq_cst: publishes the task, ordered before reading sleepers */
    if (atomic_load(&p->sleepers) > 0) {
      pthread_mutex_lock(&p->mu);
      pthread_cond_broadcast(&p->cv);
      pthread_mutex_unlock(&p->mu);
    }
    fn(ctx, 0, n_parts);
    unsigned spins = 0;
    while (atomic_load_explicit(&p->pending, memory_order_acquire) > 0) {
      cpu_relax();
      /* a helper may be waiting for this core (more threads than free cores): let it run */
      if (++spins % YIELD_EVERY_SPINS == 0) sched_yield();
    }
  }
  atomic_store(&p->busy, 0);
  return 0;
}

void bf_pool_destroy(bf_pool *p) {
  if (!p) return;
  atomic_store(&p->stop, 1);
  pthread_mutex_lock(&p->mu);
  pthread_cond_broadcast(&p->cv);
  pthread_mutex_unlock(&p->mu);
  for (int i = 0; i < p->n_started; i++) pthread_join(p->helpers[i], NULL);
  pthread_mutex_destroy(&p->mu);
  pthread_cond_destroy(&p->cv);
  free(p->helpers);
  free(p->args);
  free(p);
}

typedef struct {
  void *mem;
  size_t bytes;
} thread_scratch;

static pthread_key_t scratch_key;
static pthread_once_t scratch_once = PTHREAD_ONCE_INIT;

static void scratch_free(void *p) {
  thread_scratch *s = p;
  free(s->mem);
  free(s);
}

static void scratch_key_init(void) { (void)pthread_key_create(&scratch_key, scratch_free); }

void *bf_thread_scratch(size_t bytes) {
  pthread_once(&scratch_once, scratch_key_init);
  thread_scratch *s = pthread_getspecific(scratch_key);
  if (!s) {
    s = calloc(1, sizeof *s);
    if (!s || pthread_setspecific(scratch_key, s) != 0) {
      free(s);
      return NULL;
    }
  }
  if (s->bytes < bytes) {
    const size_t want = (bytes + 4095) & ~(size_t)4095;
    void *mem = aligned_alloc(64, want);
    if (!mem) return NULL;
    free(s->mem);
    s->mem = mem;
    s->bytes = want;
  }
  return s->mem;
}
