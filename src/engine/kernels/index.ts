/** Kernel selection: the native addon when it is built and wanted, else the TypeScript kernels (same bits). */
import { createNativeKernels } from './native.js';
import { createTsKernels } from './ts.js';
import type { Kernels } from './types.js';

export type { AttentionBatch, Kernels, RopeBatch } from './types.js';
export { bfExp } from './exp.js';
export { allocAligned, createNativeKernels, loadNativeAddon, mapFileRange } from './native.js';
export { createTsKernels } from './ts.js';

export interface KernelOptions {
  /** Threads for native matmuls (default 1; the TypeScript kernels always use 1). */
  readonly threads?: number;
  /** 'ts' forces the TypeScript kernels; 'native' (the default) falls back to them if the addon is missing. */
  readonly prefer?: 'native' | 'ts';
}

export function createKernels(opts: KernelOptions = {}): Kernels {
  if (opts.prefer !== 'ts') {
    const native = createNativeKernels(opts.threads ?? 1);
    if (native) return native;
  }
  return createTsKernels();
}
