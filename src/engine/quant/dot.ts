/**
 * Dot products in the exact float32 operation order of docs/kernels.md. Every step is rounded with Math.fround
 * (a double sum/product of two floats rounded once to float equals the float operation), which is what makes the
 * native kernels' bits equal these.
 */
import { Q4_0_BLOCK_BYTES } from './q4_0.js';
import { QK, QK_K } from './rounding.js';

const fr = Math.fround;

/** Float lanes: 16 running sums, pairwise fold, then the tail in order. w/x values must already be float32. */
export function dotF32Lanes(w: Float32Array, wOffset: number, x: Float32Array, xOffset: number, n: number): number {
  let a0 = 0, a1 = 0, a2 = 0, a3 = 0, a4 = 0, a5 = 0, a6 = 0, a7 = 0;
  let a8 = 0, a9 = 0, a10 = 0, a11 = 0, a12 = 0, a13 = 0, a14 = 0, a15 = 0;
  const m = n - (n % 16);
  for (let i = 0; i < m; i += 16) {
    const wi = wOffset + i;
    const xi = xOffset + i;
    a0 = fr(a0 + fr(w[wi + 0]! * x[xi + 0]!));
    a1 = fr(a1 + fr(w[wi + 1]! * x[xi + 1]!));
    a2 = fr(a2 + fr(w[wi + 2]! * x[xi + 2]!));
    a3 = fr(a3 + fr(w[wi + 3]! * x[xi + 3]!));
    a4 = fr(a4 + fr(w[wi + 4]! * x[xi + 4]!));
    a5 = fr(a5 + fr(w[wi + 5]! * x[xi + 5]!));
    a6 = fr(a6 + fr(w[wi + 6]! * x[xi + 6]!));
    a7 = fr(a7 + fr(w[wi + 7]! * x[xi + 7]!));
    a8 = fr(a8 + fr(w[wi + 8]! * x[xi + 8]!));
    a9 = fr(a9 + fr(w[wi + 9]! * x[xi + 9]!));
    a10 = fr(a10 + fr(w[wi + 10]! * x[xi + 10]!));
    a11 = fr(a11 + fr(w[wi + 11]! * x[xi + 11]!));
    a12 = fr(a12 + fr(w[wi + 12]! * x[xi + 12]!));
    a13 = fr(a13 + fr(w[wi + 13]! * x[xi + 13]!));
    a14 = fr(a14 + fr(w[wi + 14]! * x[xi + 14]!));
    a15 = fr(a15 + fr(w[wi + 15]! * x[xi + 15]!));
  }
  a0 = fr(a0 + a8); a1 = fr(a1 + a9); a2 = fr(a2 + a10); a3 = fr(a3 + a11);
  a4 = fr(a4 + a12); a5 = fr(a5 + a13); a6 = fr(a6 + a14); a7 = fr(a7 + a15);
  a0 = fr(a0 + a4); a1 = fr(a1 + a5); a2 = fr(a2 + a6); a3 = fr(a3 + a7);
  a0 = fr(a0 + a2); a1 = fr(a1 + a3);
  let s = fr(a0 + a1);
  for (let i = m; i < n; i++) s = fr(s + fr(w[wOffset + i]! * x[xOffset + i]!));
  return s;
}

/** The 8 block accumulators; a typed array so every store rounds to float32. */
const acc = new Float32Array(8);

function foldBlockAccumulators(): number {
  acc[0] = acc[0]! + acc[4]!; acc[1] = acc[1]! + acc[5]!; acc[2] = acc[2]! + acc[6]!; acc[3] = acc[3]! + acc[7]!;
  acc[0] = acc[0]! + acc[2]!; acc[1] = acc[1]! + acc[3]!;
  return fr(acc[0]! + acc[1]!);
}

/**
 * Integer blocks of 32 (Q8_0 / Q4_0 weights against Q8_0 activations). Weight quants of block b start at
 * wq[wqOffset + b·wqStride] (stride 34 reads Q8_0 blocks in place, 32 reads an unpacked row).
 */
export function dotQ8Blocks(
  wq: Int8Array, wqOffset: number, wqStride: number, wd: Float32Array,
  xq: Int8Array, xd: Float32Array, xBlock: number, nb: number,
): number {
  acc.fill(0);
  for (let b = 0; b < nb; b++) {
    const wo = wqOffset + b * wqStride;
    const xo = (xBlock + b) * QK;
    // Fully unrolled: loop overhead was a large share of the time in V8.
    const isum = 0
      + wq[wo + 0]! * xq[xo + 0]! + wq[wo + 1]! * xq[xo + 1]! + wq[wo + 2]! * xq[xo + 2]! + wq[wo + 3]! * xq[xo + 3]!
      + wq[wo + 4]! * xq[xo + 4]! + wq[wo + 5]! * xq[xo + 5]! + wq[wo + 6]! * xq[xo + 6]! + wq[wo + 7]! * xq[xo + 7]!
      + wq[wo + 8]! * xq[xo + 8]! + wq[wo + 9]! * xq[xo + 9]! + wq[wo + 10]! * xq[xo + 10]! + wq[wo + 11]! * xq[xo + 11]!
      + wq[wo + 12]! * xq[xo + 12]! + wq[wo + 13]! * xq[xo + 13]! + wq[wo + 14]! * xq[xo + 14]! + wq[wo + 15]! * xq[xo + 15]!
      + wq[wo + 16]! * xq[xo + 16]! + wq[wo + 17]! * xq[xo + 17]! + wq[wo + 18]! * xq[xo + 18]! + wq[wo + 19]! * xq[xo + 19]!
      + wq[wo + 20]! * xq[xo + 20]! + wq[wo + 21]! * xq[xo + 21]! + wq[wo + 22]! * xq[xo + 22]! + wq[wo + 23]! * xq[xo + 23]!
      + wq[wo + 24]! * xq[xo + 24]! + wq[wo + 25]! * xq[xo + 25]! + wq[wo + 26]! * xq[xo + 26]! + wq[wo + 27]! * xq[xo + 27]!
      + wq[wo + 28]! * xq[xo + 28]! + wq[wo + 29]! * xq[xo + 29]! + wq[wo + 30]! * xq[xo + 30]! + wq[wo + 31]! * xq[xo + 31]!;
    const k = b & 7;
    acc[k] = acc[k]! + fr(fr(wd[b]! * xd[xBlock + b]!) * isum); // |isum| < 2^24: exact as float
  }
  return foldBlockAccumulators();
}

/**
 * Q4_0 weights read in place (18-byte blocks: F16 d, then 16 bytes whose low/high nibbles are elements j / j+16)
 * against Q8_0 activations. Same value as dotQ8Blocks on the unpacked row; skips the unpack pass.
 */
export function dotQ4_0Blocks(
  wb: Uint8Array, rowOffset: number, wd: Float32Array,
  xq: Int8Array, xd: Float32Array, xBlock: number, nb: number,
): number {
  acc.fill(0);
  for (let b = 0; b < nb; b++) {
    const wo = rowOffset + b * Q4_0_BLOCK_BYTES + 2;
    const xo = (xBlock + b) * QK;
    const isum = 0
      + ((wb[wo + 0]! & 15) - 8) * xq[xo + 0]! + ((wb[wo + 0]! >> 4) - 8) * xq[xo + 16]! + ((wb[wo + 1]! & 15) - 8) * xq[xo + 1]! + ((wb[wo + 1]! >> 4) - 8) * xq[xo + 17]!
      + ((wb[wo + 2]! & 15) - 8) * xq[xo + 2]! + ((wb[wo + 2]! >> 4) - 8) * xq[xo + 18]! + ((wb[wo + 3]! & 15) - 8) * xq[xo + 3]! + ((wb[wo + 3]! >> 4) - 8) * xq[xo + 19]!
      + ((wb[wo + 4]! & 15) - 8) * xq[xo + 4]! + ((wb[wo + 4]! >> 4) - 8) * xq[xo + 20]! + ((wb[wo + 5]! & 15) - 8) * xq[xo + 5]! + ((wb[wo + 5]! >> 4) - 8) * xq[xo + 21]!
      + ((wb[wo + 6]! & 15) - 8) * xq[xo + 6]! + ((wb[wo + 6]! >> 4) - 8) * xq[xo + 22]! + ((wb[wo + 7]! & 15) - 8) * xq[xo + 7]! + ((wb[wo + 7]! >> 4) - 8) * xq[xo + 23]!
      + ((wb[wo + 8]! & 15) - 8) * xq[xo + 8]! + ((wb[wo + 8]! >> 4) - 8) * xq[xo + 24]! + ((wb[wo + 9]! & 15) - 8) * xq[xo + 9]! + ((wb[wo + 9]! >> 4) - 8) * xq[xo + 25]!
      + ((wb[wo + 10]! & 15) - 8) * xq[xo + 10]! + ((wb[wo + 10]! >> 4) - 8) * xq[xo + 26]! + ((wb[wo + 11]! & 15) - 8) * xq[xo + 11]! + ((wb[wo + 11]! >> 4) - 8) * xq[xo + 27]!
      + ((wb[wo + 12]! & 15) - 8) * xq[xo + 12]! + ((wb[wo + 12]! >> 4) - 8) * xq[xo + 28]! + ((wb[wo + 13]! & 15) - 8) * xq[xo + 13]! + ((wb[wo + 13]! >> 4) - 8) * xq[xo + 29]!
      + ((wb[wo + 14]! & 15) - 8) * xq[xo + 14]! + ((wb[wo + 14]! >> 4) - 8) * xq[xo + 30]! + ((wb[wo + 15]! & 15) - 8) * xq[xo + 15]! + ((wb[wo + 15]! >> 4) - 8) * xq[xo + 31]!;
    const k = b & 7;
    acc[k] = acc[k]! + fr(fr(wd[b]! * xd[xBlock + b]!) * isum);
  }
  return foldBlockAccumulators();
}

/**
 * Q4_K / Q5_K super-blocks (unpacked: quants 0..31, 6-bit scales sc and mins mn, 8 per super-block) against Q8_K
 * activations. sumi can pass 2^24, so it is rounded to float before use, as C's int→float conversion does.
 */
export function dotKAsym(
  wq: Int8Array, sc: Uint8Array, mn: Uint8Array, wd: Float32Array, wdmin: Float32Array,
  xq: Int8Array, xd: Float32Array, xbsums: Int16Array, xBlock: number, nb: number,
): number {
  acc.fill(0);
  for (let b = 0; b < nb; b++) {
    const e0 = b * QK_K;
    const x0 = (xBlock + b) * QK_K;
    let sumi = 0;
    let summins = 0;
    for (let j = 0; j < 8; j++) {
      const wo = e0 + 32 * j;
      const xo = x0 + 32 * j;
      const s = 0
        + wq[wo + 0]! * xq[xo + 0]! + wq[wo + 1]! * xq[xo + 1]! + wq[wo + 2]! * xq[xo + 2]! + wq[wo + 3]! * xq[xo + 3]!
        + wq[wo + 4]! * xq[xo + 4]! + wq[wo + 5]! * xq[xo + 5]! + wq[wo + 6]! * xq[xo + 6]! + wq[wo + 7]! * xq[xo + 7]!
        + wq[wo + 8]! * xq[xo + 8]! + wq[wo + 9]! * xq[xo + 9]! + wq[wo + 10]! * xq[xo + 10]! + wq[wo + 11]! * xq[xo + 11]!
        + wq[wo + 12]! * xq[xo + 12]! + wq[wo + 13]! * xq[xo + 13]! + wq[wo + 14]! * xq[xo + 14]! + wq[wo + 15]! * xq[xo + 15]!
        + wq[wo + 16]! * xq[xo + 16]! + wq[wo + 17]! * xq[xo + 17]! + wq[wo + 18]! * xq[xo + 18]! + wq[wo + 19]! * xq[xo + 19]!
        + wq[wo + 20]! * xq[xo + 20]! + wq[wo + 21]! * xq[xo + 21]! + wq[wo + 22]! * xq[xo + 22]! + wq[wo + 23]! * xq[xo + 23]!
        + wq[wo + 24]! * xq[xo + 24]! + wq[wo + 25]! * xq[xo + 25]! + wq[wo + 26]! * xq[xo + 26]! + wq[wo + 27]! * xq[xo + 27]!
        + wq[wo + 28]! * xq[xo + 28]! + wq[wo + 29]! * xq[xo + 29]! + wq[wo + 30]! * xq[xo + 30]! + wq[wo + 31]! * xq[xo + 31]!;
      sumi += sc[b * 8 + j]! * s;
      const bs = (xBlock + b) * 16 + 2 * j;
      summins += mn[b * 8 + j]! * (xbsums[bs]! + xbsums[bs + 1]!);
    }
    const dx = xd[xBlock + b]!;
    const k = b & 7;
    acc[k] = acc[k]! + fr(fr(fr(wd[b]! * dx) * fr(sumi)) - fr(fr(wdmin[b]! * dx) * fr(summins)));
  }
  return foldBlockAccumulators();
}

/** Q6_K super-blocks (unpacked: quants −32..31, 16 int8 scales per super-block) against Q8_K activations. */
export function dotQ6K(
  wq: Int8Array, sc: Int8Array, wd: Float32Array,
  xq: Int8Array, xd: Float32Array, xBlock: number, nb: number,
): number {
  acc.fill(0);
  for (let b = 0; b < nb; b++) {
    const e0 = b * QK_K;
    const x0 = (xBlock + b) * QK_K;
    let sumi = 0;
    for (let j = 0; j < 16; j++) {
      const wo = e0 + 16 * j;
      const xo = x0 + 16 * j;
      const s = 0
        + wq[wo + 0]! * xq[xo + 0]! + wq[wo + 1]! * xq[xo + 1]! + wq[wo + 2]! * xq[xo + 2]! + wq[wo + 3]! * xq[xo + 3]!
        + wq[wo + 4]! * xq[xo + 4]! + wq[wo + 5]! * xq[xo + 5]! + wq[wo + 6]! * xq[xo + 6]! + wq[wo + 7]! * xq[xo + 7]!
        + wq[wo + 8]! * xq[xo + 8]! + wq[wo + 9]! * xq[xo + 9]! + wq[wo + 10]! * xq[xo + 10]! + wq[wo + 11]! * xq[xo + 11]!
        + wq[wo + 12]! * xq[xo + 12]! + wq[wo + 13]! * xq[xo + 13]! + wq[wo + 14]! * xq[xo + 14]! + wq[wo + 15]! * xq[xo + 15]!;
      sumi += sc[b * 16 + j]! * s;
    }
    const k = b & 7;
    acc[k] = acc[k]! + fr(fr(wd[b]! * xd[xBlock + b]!) * fr(sumi));
  }
  return foldBlockAccumulators();
}
