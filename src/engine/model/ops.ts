/**
 * The per-token operations of the forward pass. Each runs in a fixed sequential order and mirrors ggml's float32
 * arithmetic (Math.fround at the points where ggml rounds), so results do not depend on batching or threads and
 * stay within ~1e-6 of llama.cpp. Attention and SwiGLU are kernels (src/engine/kernels, docs/kernels.md).
 */
const fr = Math.fround;

/** out = x / rms(x) * weight, over one row of n at the given offsets (ggml: sum of squares in double). */
export function rmsNorm(out: Float32Array, outOff: number, x: Float32Array, xOff: number, weight: Float32Array, n: number, eps: number): void {
  let sumSq = 0;
  for (let i = 0; i < n; i++) {
    const v = x[xOff + i]!;
    sumSq += fr(v * v);
  }
  const mean = fr(sumSq / n);
  const scale = fr(1 / fr(Math.sqrt(fr(mean + eps))));
  for (let i = 0; i < n; i++) out[outOff + i] = fr(fr(x[xOff + i]! * scale) * weight[i]!);
}

/** Precomputed rotary angles for one position: cos/sin per rotated pair, computed as ggml does (theta *= scale). */
export class RopeTable {
  readonly cos: Float32Array;
  readonly sin: Float32Array;
  private readonly thetaScale: number;

  constructor(readonly ropeDims: number, freqBase: number, private readonly freqFactors: Float32Array | null) {
    this.cos = new Float32Array(ropeDims / 2);
    this.sin = new Float32Array(ropeDims / 2);
    this.thetaScale = fr(Math.pow(freqBase, fr(-2 / ropeDims)));
  }

  /** Fill cos/sin for position `pos`. */
  at(pos: number): this {
    let theta = fr(pos);
    for (let i = 0; i < this.ropeDims / 2; i++) {
      const t = this.freqFactors ? fr(theta / this.freqFactors[i]!) : theta;
      this.cos[i] = fr(Math.cos(t));
      this.sin[i] = fr(Math.sin(t));
      theta = fr(theta * this.thetaScale);
    }
    return this;
  }
}

/** Rotate every head of a row in place. `neox` pairs (i, i + ropeDims/2); llama's `norm` pairs (2i, 2i+1). */
export function applyRope(x: Float32Array, off: number, nHeads: number, headDim: number, table: RopeTable, neox: boolean): void {
  const half = table.ropeDims / 2;
  for (let h = 0; h < nHeads; h++) {
    const base = off + h * headDim;
    for (let i = 0; i < half; i++) {
      const a = neox ? base + i : base + 2 * i;
      const b = neox ? base + i + half : a + 1;
      const x0 = x[a]!;
      const x1 = x[b]!;
      const c = table.cos[i]!;
      const s = table.sin[i]!;
      x[a] = fr(fr(x0 * c) - fr(x1 * s));
      x[b] = fr(fr(x0 * s) + fr(x1 * c));
    }
  }
}

/** a[i] += b[i] */
export function addInPlace(a: Float32Array, b: Float32Array, n: number): void {
  for (let i = 0; i < n; i++) a[i] = fr(a[i]! + b[i]!);
}

/** a[row*n + i] += bias[i] for each of `rows` rows. */
export function addBias(a: Float32Array, bias: Float32Array, rows: number, n: number): void {
  for (let r = 0; r < rows; r++) {
    const o = r * n;
    for (let i = 0; i < n; i++) a[o + i] = fr(a[o + i]! + bias[i]!);
  }
}
