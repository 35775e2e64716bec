import { GGMLType } from '../../engine/gguf/types.js';
import type { Kernels } from '../../engine/kernels/types.js';

/**
 * A worker's speed figure for the planner: bytes of weights streamed per second by a matrix-vector product over a
 * matrix larger than the last-level cache (so it measures memory bandwidth, which bounds decode speed).
 */
export function measureSpeedBytesPerSecond(kernels: Kernels, rows = 4096, cols = 2048, reps = 3): number {
  const w = new Float32Array(rows * cols);
  for (let i = 0; i < w.length; i += 64) w[i] = (i % 7) * 0.01;
  const tensor = { name: 'speed-probe', type: GGMLType.F32, rows, cols, data: new Uint8Array(w.buffer) };
  const x = new Float32Array(cols).fill(0.5);
  const out = new Float32Array(rows);
  kernels.matmul(out, tensor, x, 1);
  let best = Infinity;
  for (let r = 0; r < reps; r++) {
    const t0 = performance.now();
    kernels.matmul(out, tensor, x, 1);
    best = Math.min(best, performance.now() - t0);
  }
  return Math.round((w.byteLength * 1000) / Math.max(best, 1e-3));
}
