/*
 * One core's read bandwidth from RAM, as the bound for single-stream decode (every weight byte read once per token).
 *   gcc -O2 -march=native bench/bandwidth.c -o /tmp/bandwidth && /tmp/bandwidth [MiB]
 * Streams a buffer (default 128 MiB, larger than any cache level that matters here) with 64-byte loads, without and
 * with a software prefetch into L2 4 KiB ahead (what the decode kernels do), and prints the best of 10 passes.
 */
#include <immintrin.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double seconds(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

int main(int argc, char **argv) {
  const size_t bytes = (size_t)(argc > 1 ? atoi(argv[1]) : 128) << 20;
  char *buf = aligned_alloc(2 << 20, bytes);
  if (!buf) return 1;
  memset(buf, 1, bytes);
  for (int prefetch = 0; prefetch < 2; prefetch++) {
    double best = 1e30;
#ifdef __AVX512F__
    __m512i acc = _mm512_setzero_si512(); /* one load per cache line */
#else
    __m256i acc = _mm256_setzero_si256();
#endif
    for (int pass = 0; pass < 10; pass++) {
      const double t0 = seconds();
      for (size_t i = 0; i < bytes; i += 64) {
        if (prefetch) _mm_prefetch(buf + i + 4096, _MM_HINT_T1);
#ifdef __AVX512F__
        acc = _mm512_add_epi32(acc, _mm512_load_si512((const void *)(buf + i)));
#else
        acc = _mm256_add_epi32(acc, _mm256_load_si256((const __m256i *)(buf + i)));
        acc = _mm256_add_epi32(acc, _mm256_load_si256((const __m256i *)(buf + i + 32)));
#endif
      }
      const double t = seconds() - t0;
      if (t < best) best = t;
    }
    int sink[16];
#ifdef __AVX512F__
    _mm512_storeu_si512((void *)sink, acc);
#else
    _mm256_storeu_si256((__m256i *)sink, acc);
#endif
    printf("%s: %.1f GB/s (%d)\n", prefetch ? "with L2 prefetch 4 KiB ahead" : "plain loads", (double)bytes / best / 1e9, sink[0] & 1);
  }
  free(buf);
  return 0;
}
