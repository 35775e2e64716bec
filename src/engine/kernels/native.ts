/**
 * The native (N-API, C) kernels: build/Release/butterfly_native.node, built from binding.gyp by `npm install`.
 * Everything here degrades to null / plain memory when the addon is missing or BUTTERFLY_KERNELS=ts, so callers
 * can always fall back to the TypeScript kernels.
 */
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { WeightTensor } from '../tensor.js';
import { isReadOnly, isX16, markReadOnly, markX16 } from './layout.js';
import { createTsKernels } from './ts.js';
import type { AttentionBatch, Kernels, RopeBatch } from './types.js';

declare const poolBrand: unique symbol;
/** Opaque handle of a native thread pool (plus its activation scratch). */
export type NativePoolHandle = { readonly [poolBrand]: true };

/** What the C addon exports (native/addon.c). Every call validates its arguments and throws on misuse. */
export interface NativeAddon {
  /** threads = total threads including the caller; idle helpers spin for spinMicros, then park. */
  createPool(threads: number, spinMicros: number): NativePoolHandle;
  /** Stops the pool's helper threads now (otherwise they stop when the handle is collected or at exit). */
  destroyPool(pool: NativePoolHandle): void;
  /** out[t·rows + r] = dot(row r of w, x[t·cols ..]) for t < nTok; `scalar` forces the portable C path, `noAmx` the
   * AVX-512 paths where AMX would be taken; `x16`: w is in the layout x16Repack made. */
  matmul(
    pool: NativePoolHandle, out: Float32Array, w: Uint8Array, type: number, rows: number, cols: number,
    x: Float32Array, nTok: number, scalar: boolean, noAmx: boolean, x16: boolean,
  ): void;
  /** Rearranges the weights in place into native/x16.c's layout; false (bytes untouched) where there is none. */
  x16Repack(w: Uint8Array, type: number, rows: number, cols: number): boolean;
  /** Kernels.attention (docs/kernels.md "Attention"), parallel over (token, KV head) on the pool. */
  attention(
    pool: NativePoolHandle, out: Float32Array, q: Float32Array, nTok: number, nPos: Int32Array, cacheOf: Int32Array,
    keys: readonly Float32Array[], values: readonly Float32Array[], nHeads: number, nKvHeads: number, headDim: number,
    scalar: boolean,
  ): void;
  /** Kernels.swiglu, split over the pool for large n. */
  swiglu(pool: NativePoolHandle, gate: Float32Array, up: Float32Array, n: number, scalar: boolean): void;
  /** Kernels.rmsNorm (the bits of ops.ts rmsNorm), on the calling thread. */
  rmsNorm(out: Float32Array, x: Float32Array, weight: Float32Array, nRows: number, dim: number, eps: number, scalar: boolean): void;
  /** Kernels.add: a[i] = f32(a[i] + b[i]). */
  add(a: Float32Array, b: Float32Array, n: number, scalar: boolean): void;
  /** Kernels.addBias: a[r·n + i] = f32(a[r·n + i] + bias[i]). */
  addBias(a: Float32Array, bias: Float32Array, rows: number, n: number, scalar: boolean): void;
  /** Kernels.rope (ops.ts applyRopeRows). */
  rope(
    x: Float32Array, nTok: number, nHeads: number, headDim: number, ropeDims: number, positions: Int32Array,
    cos: Float32Array, sin: Float32Array, neox: boolean, scalar: boolean,
  ): void;
  /** out[i] = bfExp(x[i]) for every element of x (tests: the vector path, or the scalar one with `scalar`). */
  exp(out: Float32Array, x: Float32Array, scalar: boolean): void;
  /** Read-only private mapping of exactly [offset, offset+length); writing to it crashes the process. */
  mapFileRange(path: string, offsetBytes: number, lengthBytes: number): Uint8Array;
  /** 64-byte-aligned zeroed memory, or null if this runtime refuses external buffers. */
  allocAligned(bytes: number): Uint8Array | null;
  /** The SIMD level the addon was compiled for. */
  simdLevel(): 'avx512' | 'avx2' | 'scalar';
}

const ADDON_FILE = join('build', 'Release', 'butterfly_native.node');
/** Levels to climb from this file to the package root: src/engine/kernels → 3, dist/src/engine/kernels → 4. */
const MAX_LEVELS_UP = 6;
/** How long idle helpers spin before parking: a decode step's ~85 calls come far closer together than this. */
const DEFAULT_SPIN_MICROS = 1500;

let cached: NativeAddon | null | undefined;
let loadError: string | null = null;

function findAddonPath(): string | null {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i <= MAX_LEVELS_UP; i++) {
    const candidate = join(dir, ADDON_FILE);
    if (existsSync(candidate)) return candidate;
    if (existsSync(join(dir, 'package.json'))) return null; // reached the package root without finding it
    const up = dirname(dir);
    if (up === dir) return null;
    dir = up;
  }
  return null;
}

/** The native addon, or null if it is not built, fails to load, or BUTTERFLY_KERNELS=ts. Loaded once. */
export function loadNativeAddon(): NativeAddon | null {
  if (process.env['BUTTERFLY_KERNELS'] === 'ts') return null;
  if (cached !== undefined) return cached;
  const path = findAddonPath();
  if (!path) {
    loadError = `${ADDON_FILE} not found (run \`npx node-gyp rebuild\`)`;
    cached = null;
    return null;
  }
  try {
    cached = createRequire(import.meta.url)(path) as NativeAddon;
  } catch (err) {
    loadError = `${path}: ${err instanceof Error ? err.message : String(err)}`;
    cached = null;
  }
  return cached;
}

/** Why loadNativeAddon() returned null (null if it loaded or was not tried). */
export function nativeAddonLoadError(): string | null {
  return loadError;
}

export interface NativeKernelOptions {
  /** Use the portable C path instead of SIMD (same bits; for tests and comparisons). */
  readonly scalar?: boolean;
  /** false: never the AMX paths, also where the CPU has AMX (same bits; for tests of the AVX-512 kernels). */
  readonly amx?: boolean;
  /** Idle spin before helpers park, in microseconds. */
  readonly spinMicros?: number;
}

/**
 * Native kernels on a pool of `threads` threads (the caller plus threads − 1 helpers), or null without the addon.
 * A pool serves one caller at a time; call dispose() to stop its threads. getRow is the TypeScript one.
 */
export function createNativeKernels(threads: number, opts: NativeKernelOptions = {}): Kernels | null {
  const addon = loadNativeAddon();
  if (!addon) return null;
  if (!Number.isInteger(threads) || threads < 1) throw new RangeError(`threads must be a positive integer, got ${threads}`);
  const pool = addon.createPool(threads, opts.spinMicros ?? DEFAULT_SPIN_MICROS);
  const scalar = opts.scalar ?? false;
  const noAmx = opts.amx === false;
  let rowKernels: Kernels | null = null; // created on first getRow: embedding lookups are rare and cheap
  let disposed = false;
  return {
    name: 'native',
    threads,
    matmul(out: Float32Array, w: WeightTensor, x: Float32Array, nTok: number): void {
      addon.matmul(pool, out, w.data, w.type, w.rows, w.cols, x, nTok, scalar, noAmx, isX16(w.data));
    },
    prepareWeight(w: WeightTensor): void {
      if (scalar || isX16(w.data) || isReadOnly(w.data)) return;
      if (addon.x16Repack(w.data, w.type, w.rows, w.cols)) markX16(w.data);
    },
    attention(out: Float32Array, a: AttentionBatch): void {
      addon.attention(pool, out, a.q, a.nTok, a.nPos, a.cacheOf, a.keys, a.values, a.nHeads, a.nKvHeads, a.headDim, scalar);
    },
    swiglu(gate: Float32Array, up: Float32Array, n: number): void {
      addon.swiglu(pool, gate, up, n, scalar);
    },
    rmsNorm(out: Float32Array, x: Float32Array, weight: Float32Array, nRows: number, dim: number, eps: number): void {
      addon.rmsNorm(out, x, weight, nRows, dim, eps, scalar);
    },
    add(a: Float32Array, b: Float32Array, n: number): void {
      addon.add(a, b, n, scalar);
    },
    addBias(a: Float32Array, bias: Float32Array, rows: number, n: number): void {
      addon.addBias(a, bias, rows, n, scalar);
    },
    rope(x: Float32Array, r: RopeBatch): void {
      addon.rope(x, r.nTok, r.nHeads, r.headDim, r.ropeDims, r.positions, r.cos, r.sin, r.neox, scalar);
    },
    getRow(out: Float32Array, w: WeightTensor, row: number): void {
      rowKernels ??= createTsKernels();
      rowKernels.getRow(out, w, row);
    },
    dispose(): void {
      if (disposed) return;
      disposed = true;
      addon.destroyPool(pool);
    },
  };
}

/**
 * Maps [offsetBytes, offsetBytes + lengthBytes) of a file read-only (MAP_PRIVATE; the mapping is page-aligned
 * internally and unmapped when the array is collected). Null without the addon; throws on I/O errors.
 */
export function mapFileRange(path: string, offsetBytes: number, lengthBytes: number): Uint8Array | null {
  const addon = loadNativeAddon();
  if (!addon) return null;
  const data = addon.mapFileRange(path, offsetBytes, lengthBytes);
  markReadOnly(data);
  return data;
}

/** `bytes` zeroed bytes at a 64-byte-aligned address (a plain, 16-byte-aligned Uint8Array without the addon). */
export function allocAligned(bytes: number): Uint8Array {
  const addon = loadNativeAddon();
  return addon?.allocAligned(bytes) ?? new Uint8Array(bytes);
}
