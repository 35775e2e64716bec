/*
 * Scalar F16 / BF16 conversions, bit-exact to ggml on x86 (F16C rounding for F16, ggml's integer rule for BF16)
 * and to src/engine/quant/half.ts. Software only, so every code path shares one rounding rule.
 */
#ifndef BUTTERFLY_HALF_H
#define BUTTERFLY_HALF_H

#include <stdint.h>
#include <string.h>
#include <math.h>

static inline uint32_t bf_f32_bits(float f) { uint32_t u; memcpy(&u, &f, 4); return u; }
static inline float bf_f32_from_bits(uint32_t u) { float f; memcpy(&f, &u, 4); return f; }

static inline float bf_f16_to_f32(uint16_t h) {
  const uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
  const uint32_t exp = (h >> 10) & 0x1fu;
  const uint32_t mant = h & 0x3ffu;
  if (exp == 0) {
    /* zero or subnormal: mant · 2^-24 is exact in float */
    const float v = (float)mant * 5.9604644775390625e-8f;
    return bf_f32_from_bits(bf_f32_bits(v) | sign);
  }
  if (exp == 31) return bf_f32_from_bits(sign | 0x7f800000u | (mant << 13));
  return bf_f32_from_bits(sign | ((exp + 112u) << 23) | (mant << 13));
}

/* Round to nearest half, ties to even; NaN keeps its top payload bits and is quieted (what VCVTPS2PH does). */
static inline uint16_t bf_f32_to_f16(float f) {
  const uint32_t u = bf_f32_bits(f);
  const uint32_t sign = (u >> 16) & 0x8000u;
  const uint32_t ax = u & 0x7fffffffu;
  if (ax >= 0x7f800000u) return (uint16_t)(sign | 0x7c00u | (ax > 0x7f800000u ? 0x200u | ((ax & 0x7fffffu) >> 13) : 0));
  if (ax >= 0x477ff000u) return (uint16_t)(sign | 0x7c00u); /* ≥ 65520 rounds to infinity */
  if (ax < 0x38800000u) {
    /* below 2^-14: a subnormal half; scaling by 2^24 is exact, so one integer rounding (ties to even) remains */
    const float scaled = bf_f32_from_bits(ax) * 16777216.0f;
    return (uint16_t)(sign | (uint32_t)nearbyintf(scaled));
  }
  const uint32_t rebased = ax - 0x38000000u; /* exponent bias 127 → 15 */
  /* a carry out of the mantissa bumps the exponent, which is the right answer */
  return (uint16_t)(sign | ((rebased + 0xfffu + ((rebased >> 13) & 1u)) >> 13));
}

static inline float bf_bf16_to_f32(uint16_t h) { return bf_f32_from_bits((uint32_t)h << 16); }

static inline uint16_t bf_f32_to_bf16(float f) {
  const uint32_t u = bf_f32_bits(f);
  if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 64u); /* NaN: force quiet */
  return (uint16_t)((u + (0x7fffu + ((u >> 16) & 1u))) >> 16);
}

static inline uint16_t bf_load_u16(const uint8_t *p) { uint16_t v; memcpy(&v, p, 2); return v; } /* little-endian hosts */
/* F16C's conversion is exact like bf_f16_to_f32 (only signaling-NaN payloads could differ), and much cheaper */
#if defined(__F16C__)
#include <immintrin.h>
static inline float bf_load_f16(const uint8_t *p) { return _cvtsh_ss(bf_load_u16(p)); }
#else
static inline float bf_load_f16(const uint8_t *p) { return bf_f16_to_f32(bf_load_u16(p)); }
#endif

#endif
