import { afterAll, beforeAll } from 'vitest';
import { createNativeKernels } from '../../src/engine/kernels/native.js';
import type { Kernels } from '../../src/engine/kernels/types.js';

/**
 * The native kernel variants a suite compares with the TypeScript reference, created before its tests and disposed
 * after: SIMD with 1, 2 and 3 threads ("simd/N"), optionally the same without AMX ("noamx/N", so the AVX-512 paths
 * stay tested on AMX machines) and the portable C path with `scalarThreads` threads ("scalar/N").
 * Call inside a describe block; the map fills in beforeAll.
 */
export function useNativeVariants(opts: { scalarThreads?: number; noAmx?: boolean } = {}): Map<string, Kernels> {
  const native = new Map<string, Kernels>();
  beforeAll(() => {
    for (const threads of [1, 2, 3]) {
      native.set(`simd/${threads}`, createNativeKernels(threads)!);
      if (opts.noAmx) native.set(`noamx/${threads}`, createNativeKernels(threads, { amx: false })!);
    }
    if (opts.scalarThreads) native.set(`scalar/${opts.scalarThreads}`, createNativeKernels(opts.scalarThreads, { scalar: true })!);
  });
  afterAll(() => {
    for (const k of native.values()) k.dispose();
  });
  return native;
}
