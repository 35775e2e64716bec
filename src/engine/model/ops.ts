/**
 * The per-token operations of the forward pass. Each runs in a fixed sequential order and mirrors ggml's float32
 * arithmetic (Math.fround at the points where ggml rounds), so results do not depend on batching or threads and
 * stay within ~1e-6 of llama.cpp. They are the reference of the Kernels methods rmsNorm, add, addBias and rope (the
 * native ones must give these bits; docs/kernels.md); attention and SwiGLU are kernels too.
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
  /** Rows of every position < `filled` (row p at p · ropeDims/2), computed once and kept for batched RoPE. */
  private allCos = new Float32Array(0);
  private allSin = new Float32Array(0);
  private filled = 0;

  constructor(readonly ropeDims: number, freqBase: number, private readonly freqFactors: Float32Array | null) {
    this.cos = new Float32Array(ropeDims / 2);
    this.sin = new Float32Array(ropeDims / 2);
    this.thetaScale = fr(Math.pow(freqBase, fr(-2 / ropeDims)));
  }

  /** Fill cos/sin for position `pos`. */
  at(pos: number): this {
    this.fill(pos, this.cos, this.sin, 0);
    return this;
  }

  /**
   * cos/sin of every position < `positions` (row p at offset p · ropeDims/2), with the values at(p) gives. A row is
   * computed the first time it is needed; the tables grow by doubling, so the arrays returned may be replaced later.
   */
  upTo(positions: number): { readonly cos: Float32Array; readonly sin: Float32Array } {
    const half = this.ropeDims / 2;
    if (positions > this.filled) {
      if (positions * half > this.allCos.length) {
        const cap = Math.max(positions, 2 * (this.allCos.length / Math.max(half, 1)), 64);
        const c = new Float32Array(cap * half);
        const s = new Float32Array(cap * half);
        c.set(this.allCos.subarray(0, this.filled * half));
        s.set(this.allSin.subarray(0, this.filled * half));
        this.allCos = c;
        this.allSin = s;
      }
      for (let p = this.filled; p < positions; p++) this.fill(p, this.allCos, this.allSin, p * half);
      this.filled = positions;
    }
    return { cos: this.allCos, sin: this.allSin };
  }

  private fill(pos: number, cos: Float32Array, sin: Float32Array, off: number): void {
    let theta = fr(pos);
    for (let i = 0; i < this.ropeDims / 2; i++) {
      const t = this.freqFactors ? fr(theta / this.freqFactors[i]!) : theta;
      cos[off + i] = fr(Math.cos(t));
      sin[off + i] = fr(Math.sin(t));
      theta = fr(theta * this.thetaScale);
    }
  }
}

/** Rotate every head of a row in place. `neox` pairs (i, i + ropeDims/2); llama's `norm` pairs (2i, 2i+1). */
export function applyRope(x: Float32Array, off: number, nHeads: number, headDim: number, table: RopeTable, neox: boolean): void {
  rotateHeads(x, off, nHeads, headDim, table.ropeDims / 2, table.cos, table.sin, 0, neox);
}

/**
 * applyRope for nTok rows of nHeads · headDim values: row t rotates with the table row of positions[t]
 * (cos/sin as RopeTable.upTo returns them, ropeDims/2 values per position).
 */
export function applyRopeRows(
  x: Float32Array, nTok: number, nHeads: number, headDim: number, ropeDims: number,
  positions: Int32Array, cos: Float32Array, sin: Float32Array, neox: boolean,
): void {
  const half = ropeDims / 2;
  for (let t = 0; t < nTok; t++) rotateHeads(x, t * nHeads * headDim, nHeads, headDim, half, cos, sin, positions[t]! * half, neox);
}

function rotateHeads(
  x: Float32Array, off: number, nHeads: number, headDim: number, half: number,
  cos: Float32Array, sin: Float32Array, tableOff: number, neox: boolean,
): void {
  for (let h = 0; h < nHeads; h++) {
    const base = off + h * headDim;
    for (let i = 0; i < half; i++) {
      const a = neox ? base + i : base + 2 * i;
      const b = neox ? base + i + half : a + 1;
      const x0 = x[a]!;
      const x1 = x[b]!;
      const c = cos[tableOff + i]!;
      const s = sin[tableOff + i]!;
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
