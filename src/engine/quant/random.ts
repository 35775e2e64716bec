/** Seeded synthetic weights for tests and synthetic models. */
import { rowBytes, type GGMLType } from '../gguf/types.js';
import { SplitMix32 } from '../prng.js';
import { quantizeTensor } from './rows.js';

/** rows × cols values, uniform in [−scale, scale), fully determined by `seed`. */
export function randomFloats(count: number, seed: number, scale = 1): Float32Array {
  const rng = new SplitMix32(seed);
  const out = new Float32Array(count);
  for (let i = 0; i < count; i++) out[i] = (rng.nextFloat() * 2 - 1) * scale;
  return out;
}

/**
 * A rows × cols weight matrix in `type`'s on-disk layout: seeded uniform values in [−scale, scale) quantized with
 * quantizeRow. Returns rows · rowBytes(type, cols) bytes.
 */
export function randomWeights(type: GGMLType, rows: number, cols: number, seed: number, scale = 1): Uint8Array {
  rowBytes(type, cols); // validates cols against the block size before doing any work
  return quantizeTensor(type, randomFloats(rows * cols, seed, scale), rows, cols);
}
