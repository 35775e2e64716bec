import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { GGMLType, rowBytes } from '../src/engine/gguf/types.js';
import {
  bf16BitsToF32, f16BitsToF32, f32Bits, f32FromBits, f32ToBf16Bits, f32ToF16Bits,
} from '../src/engine/quant/half.js';
import { dequantizeRow, dequantizeTensor, quantizeRow, quantizeTensor } from '../src/engine/quant/rows.js';
import { Q8Blocks, Q8KBlocks, quantizeQ8_0Activation, quantizeQ8_KActivation } from '../src/engine/quant/activations.js';
import { packScaleMinK4, unpackScaleMinK4 } from '../src/engine/quant/kscales.js';
import { randomFloats, randomWeights } from '../src/engine/quant/random.js';
import { roundHalfEven } from '../src/engine/quant/rounding.js';

interface Golden {
  dequant: Record<string, { cols: number; bytes: string; f32bits: number[] }>;
  q8kActivation: { x: number[]; blocks: string };
  q80Activation: { x: number[]; blocks: string };
  halfConversions: { rows: [number, number, number][] };
}
const golden = JSON.parse(readFileSync(new URL('./fixtures/ggml-golden.json', import.meta.url), 'utf8')) as Golden;

const hexBytes = (hex: string): Uint8Array => Uint8Array.from(hex.match(/../g)!.map((h) => parseInt(h, 16)));
const floatsFromBits = (bits: number[]): Float32Array => new Float32Array(new Uint32Array(bits).buffer);
const bitsOf = (xs: Float32Array): number[] => Array.from(new Uint32Array(xs.buffer, xs.byteOffset, xs.length));
const f16Bytes = (x: number): [number, number] => {
  const h = f32ToF16Bits(x);
  return [h & 0xff, h >> 8];
};

describe('half precision', () => {
  it('rounds to nearest-even F16 at known points', () => {
    expect(f32ToF16Bits(1)).toBe(0x3c00);
    expect(f32ToF16Bits(-2)).toBe(0xc000);
    expect(f32ToF16Bits(65504)).toBe(0x7bff);
    expect(f32ToF16Bits(65519)).toBe(0x7bff);
    expect(f32ToF16Bits(65520)).toBe(0x7c00); // tie between 65504 and 65536: even mantissa is the infinity pattern
    expect(f32ToF16Bits(1 + 2 ** -11)).toBe(0x3c00); // tie, even stays
    expect(f32ToF16Bits(1 + 3 * 2 ** -11)).toBe(0x3c02); // tie, odd rounds up
    expect(f32ToF16Bits(2 ** -24)).toBe(0x0001);
    expect(f32ToF16Bits(2 ** -25)).toBe(0x0000); // tie with zero
    expect(f32ToF16Bits(1.5 * 2 ** -25)).toBe(0x0001);
    expect(f32ToF16Bits(3 * 2 ** -25)).toBe(0x0002); // subnormal tie 1.5 ulp → even 2
    expect(f32ToF16Bits(2 ** -14 - 2 ** -26)).toBe(0x0400); // rounds up into the smallest normal
    expect(f32ToF16Bits(-0)).toBe(0x8000);
    expect(f32ToF16Bits(Infinity)).toBe(0x7c00);
    expect(f32ToF16Bits(NaN) & 0x7e00).toBe(0x7e00);
  });

  it('round-trips every finite half exactly', () => {
    for (let h = 0; h < 65536; h++) {
      if ((h & 0x7c00) === 0x7c00) continue;
      expect(f32ToF16Bits(f16BitsToF32(h))).toBe(h);
    }
  });

  it('picks the nearest half, ties to even, for arbitrary floats', () => {
    fc.assert(fc.property(fc.float({ noNaN: true, min: -65000, max: 65000 }), (x) => {
      const xf = Math.fround(x);
      const h = f32ToF16Bits(xf);
      const v = f16BitsToF32(h);
      const mag = h & 0x7fff;
      for (const n of [mag - 1, mag + 1]) {
        if (n < 0 || n >= 0x7c00) continue;
        const other = f16BitsToF32((h & 0x8000) | n);
        const dv = Math.abs(v - xf);
        const dn = Math.abs(other - xf);
        expect(dv <= dn).toBe(true);
        if (dv === dn) expect(mag & 1).toBe(0);
      }
    }), { numRuns: 2000 });
  });

  it('rounds BF16 like ggml (nearest-even, quiet NaN)', () => {
    expect(f32ToBf16Bits(1)).toBe(0x3f80);
    expect(f32ToBf16Bits(f32FromBits(0x3f808000))).toBe(0x3f80); // tie, even
    expect(f32ToBf16Bits(f32FromBits(0x3f818000))).toBe(0x3f82); // tie, odd rounds up
    expect(f32ToBf16Bits(f32FromBits(0x3f808001))).toBe(0x3f81);
    expect(f32ToBf16Bits(f32FromBits(0x7f800001))).toBe(0x7fc0); // signalling NaN is quieted
    expect(bf16BitsToF32(0xc040)).toBe(-3);
  });

  it('matches ggml FP32_TO_FP16 / FP32_TO_BF16 on golden values', () => {
    let checked = 0;
    for (const [u, h, b] of golden.halfConversions.rows) {
      const x = f32FromBits(u);
      expect(f32ToBf16Bits(x)).toBe(b);
      if (Number.isNaN(x)) continue; // ggml's portable NaN pattern differs from F16C's; x86 uses F16C
      expect(f32ToF16Bits(x)).toBe(h);
      checked++;
    }
    expect(checked).toBeGreaterThan(1000);
  });
});

describe('dequantizeRow is bit-exact to ggml', () => {
  for (const [name, type] of [['Q8_0', GGMLType.Q8_0], ['Q4_0', GGMLType.Q4_0], ['Q4_K', GGMLType.Q4_K], ['Q5_K', GGMLType.Q5_K], ['Q6_K', GGMLType.Q6_K]] as const) {
    it(`${name} golden blocks`, () => {
      const g = golden.dequant[name]!;
      const bytes = hexBytes(g.bytes);
      const out = new Float32Array(g.cols);
      dequantizeRow(type, bytes, 0, out, 0, g.cols);
      expect(bitsOf(out)).toEqual(g.f32bits);
      // same bytes at an odd offset inside a bigger buffer
      const shifted = new Uint8Array(bytes.length + 3);
      shifted.set(bytes, 3);
      const out2 = new Float32Array(g.cols + 1);
      dequantizeRow(type, shifted, 3, out2, 1, g.cols);
      expect(bitsOf(out2.subarray(1))).toEqual(g.f32bits);
    });
  }
});

describe('hand-built blocks', () => {
  it('Q8_0: value = q · d', () => {
    const blk = new Uint8Array(34);
    blk.set(f16Bytes(0.5), 0);
    for (let j = 0; j < 32; j++) blk[2 + j] = (j - 16) & 0xff;
    const out = new Float32Array(32);
    dequantizeRow(GGMLType.Q8_0, blk, 0, out, 0, 32);
    for (let j = 0; j < 32; j++) expect(out[j]).toBe((j - 16) * 0.5);
  });

  it('Q4_0: low nibbles are elements 0..15, high nibbles 16..31, offset 8', () => {
    const blk = new Uint8Array(18);
    blk.set(f16Bytes(0.25), 0);
    for (let j = 0; j < 16; j++) blk[2 + j] = j | ((15 - j) << 4);
    const out = new Float32Array(32);
    dequantizeRow(GGMLType.Q4_0, blk, 0, out, 0, 32);
    for (let j = 0; j < 16; j++) {
      expect(out[j]).toBe((j - 8) * 0.25);
      expect(out[16 + j]).toBe((15 - j - 8) * 0.25);
    }
  });

  it('K scale/min packing follows get_scale_min_k4', () => {
    const sc = [1, 2, 3, 4, 60, 33, 17, 63];
    const mn = [5, 6, 7, 8, 48, 31, 62, 0];
    const bytes = new Uint8Array(12);
    packScaleMinK4(sc, mn, bytes, 0);
    // byte 0: sc0 | top 2 bits of sc4 (60 = 0b111100 → 3) at bits 6–7
    expect(bytes[0]).toBe(1 | (3 << 6));
    // byte 8: low nibble of sc4 (12), low nibble of mn4 (0) high
    expect(bytes[8]).toBe(12 | (0 << 4));
    // byte 7: mn3 | top bits of mn7 (0)
    expect(bytes[7]).toBe(8);
    const s2 = new Uint8Array(8);
    const m2 = new Uint8Array(8);
    unpackScaleMinK4(bytes, 0, s2, m2, 0);
    expect(Array.from(s2)).toEqual(sc);
    expect(Array.from(m2)).toEqual(mn);
  });

  it('Q4_K: (d·sc)·q − dmin·m per sub-block of 32, groups of 64 share bytes', () => {
    const blk = new Uint8Array(144);
    blk.set(f16Bytes(0.5), 0); // d
    blk.set(f16Bytes(0.25), 2); // dmin
    const sc = [1, 2, 3, 4, 5, 6, 7, 8];
    const mn = [0, 1, 2, 3, 4, 5, 6, 7];
    packScaleMinK4(sc, mn, blk, 4);
    for (let i = 0; i < 128; i++) blk[16 + i] = (i % 16) | (((i + 3) % 16) << 4);
    const out = new Float32Array(256);
    dequantizeRow(GGMLType.Q4_K, blk, 0, out, 0, 256);
    for (let g = 0; g < 4; g++) {
      for (let l = 0; l < 32; l++) {
        const byteIdx = 32 * g + l;
        expect(out[64 * g + l]).toBe(0.5 * sc[2 * g]! * (byteIdx % 16) - 0.25 * mn[2 * g]!);
        expect(out[64 * g + 32 + l]).toBe(0.5 * sc[2 * g + 1]! * ((byteIdx + 3) % 16) - 0.25 * mn[2 * g + 1]!);
      }
    }
  });

  it('Q5_K: fifth bit of elements 64g+l / 64g+32+l is bit 2g / 2g+1 of qh[l]', () => {
    const blk = new Uint8Array(176);
    blk.set(f16Bytes(1), 0);
    blk.set(f16Bytes(0), 2);
    packScaleMinK4([1, 1, 1, 1, 1, 1, 1, 1], [0, 0, 0, 0, 0, 0, 0, 0], blk, 4);
    // qh[l] = l·5 mod 256 gives a mix of bits; low nibbles all 0x21 (low 1, high 2)
    for (let l = 0; l < 32; l++) blk[16 + l] = (l * 5) & 0xff;
    for (let i = 0; i < 128; i++) blk[48 + i] = 0x21;
    const out = new Float32Array(256);
    dequantizeRow(GGMLType.Q5_K, blk, 0, out, 0, 256);
    for (let g = 0; g < 4; g++) {
      for (let l = 0; l < 32; l++) {
        const qh = (l * 5) & 0xff;
        expect(out[64 * g + l]).toBe(1 + ((qh >> (2 * g)) & 1) * 16);
        expect(out[64 * g + 32 + l]).toBe(2 + ((qh >> (2 * g + 1)) & 1) * 16);
      }
    }
  });

  it('Q6_K: ql/qh/scales layout, value = (d·sc)·(q − 32)', () => {
    const blk = new Uint8Array(210);
    // Give element e the 6-bit code (e % 64) by writing its nibbles and 2-bit pieces where the spec puts them.
    const code = (e: number): number => (e * 7) % 64;
    for (let n = 0; n < 2; n++) {
      for (let l = 0; l < 32; l++) {
        const [c1, c2, c3, c4] = [0, 32, 64, 96].map((k) => code(128 * n + l + k)) as [number, number, number, number];
        blk[64 * n + l] = (c1 & 15) | ((c3 & 15) << 4);
        blk[64 * n + l + 32] = (c2 & 15) | ((c4 & 15) << 4);
        blk[128 + 32 * n + l] = (c1 >> 4) | ((c2 >> 4) << 2) | ((c3 >> 4) << 4) | ((c4 >> 4) << 6);
      }
    }
    for (let j = 0; j < 16; j++) blk[192 + j] = (j % 2 === 0 ? j + 1 : -(j + 1)) & 0xff;
    blk.set(f16Bytes(0.125), 208);
    const out = new Float32Array(256);
    dequantizeRow(GGMLType.Q6_K, blk, 0, out, 0, 256);
    for (let e = 0; e < 256; e++) {
      const j = e >> 4;
      const sc = j % 2 === 0 ? j + 1 : -(j + 1);
      expect(out[e]).toBe(0.125 * sc * (code(e) - 32));
    }
  });
});

describe('quantize → dequantize round trip', () => {
  // Max / RMS error allowed per unit of data range (uniform data in [−seed, seed)). Q4_0 and Q6_K map the
  // largest magnitude to −8 / −32, so the opposite side clips by up to amax/8 / amax/32.
  const cases: [string, GGMLType, number, number][] = [
    ['F32', GGMLType.F32, 0, 0],
    ['F16', GGMLType.F16, 2 ** -11, 2 ** -12],
    ['BF16', GGMLType.BF16, 2 ** -8, 2 ** -9],
    ['Q8_0', GGMLType.Q8_0, 0.5 / 127 + 1e-3, 0.005],
    ['Q4_0', GGMLType.Q4_0, 1 / 8 + 0.01, 0.05],
    ['Q4_K', GGMLType.Q4_K, 0.12, 0.05],
    ['Q5_K', GGMLType.Q5_K, 0.06, 0.025],
    ['Q6_K', GGMLType.Q6_K, 1 / 32 + 0.004, 0.012],
  ];
  for (const [name, type, maxErr, rmsErr] of cases) {
    it(`${name} stays within its format's error`, () => {
      for (let seed = 1; seed <= 4; seed++) {
        const rows = 3;
        const cols = 512;
        const src = randomFloats(rows * cols, seed * 7919, seed);
        const back = dequantizeTensor(type, quantizeTensor(type, src, rows, cols), rows, cols);
        let worst = 0;
        let sq = 0;
        for (let i = 0; i < src.length; i++) {
          const e = Math.abs(back[i]! - src[i]!);
          worst = Math.max(worst, e);
          sq += e * e;
        }
        expect(worst).toBeLessThanOrEqual(maxErr * seed);
        expect(Math.sqrt(sq / src.length)).toBeLessThanOrEqual(rmsErr * seed);
        if (type !== GGMLType.F32) expect(worst).toBeGreaterThan(0); // the test can see a lossy format
      }
    });
  }

  it('Q4_K/Q5_K/Q6_K handle constant, zero and one-signed blocks', () => {
    for (const type of [GGMLType.Q4_K, GGMLType.Q5_K, GGMLType.Q6_K, GGMLType.Q4_0, GGMLType.Q8_0]) {
      for (const fill of [0, 0.75, -3]) {
        const src = new Float32Array(256).fill(fill);
        const back = dequantizeTensor(type, quantizeTensor(type, src, 1, 256), 1, 256);
        for (const v of back) expect(Math.abs(v - fill)).toBeLessThanOrEqual(Math.abs(fill) * 0.02);
      }
      const pos = randomFloats(256, 99).map((v) => Math.abs(v) + 2);
      const back = dequantizeTensor(type, quantizeTensor(type, pos, 1, 256), 1, 256);
      for (let i = 0; i < 256; i++) expect(Math.abs(back[i]! - pos[i]!)).toBeLessThanOrEqual(0.2);
    }
  });

  it('rejects rows that are not a multiple of the block size', () => {
    expect(() => quantizeTensor(GGMLType.Q4_K, new Float32Array(300), 1, 300)).toThrow(/multiple of 256/);
    expect(() => dequantizeRow(GGMLType.Q8_0, new Uint8Array(34), 0, new Float32Array(40), 0, 40)).toThrow(/multiple of 32/);
  });

  it('randomWeights is seeded and sized', () => {
    const a = randomWeights(GGMLType.Q6_K, 2, 256, 5);
    const b = randomWeights(GGMLType.Q6_K, 2, 256, 5);
    const c = randomWeights(GGMLType.Q6_K, 2, 256, 6);
    expect(a.length).toBe(2 * rowBytes(GGMLType.Q6_K, 256));
    expect(a).toEqual(b);
    expect(a).not.toEqual(c);
  });

  it('quantizeRow writes only its own row', () => {
    const dst = new Uint8Array(3 * 34).fill(0xab);
    quantizeRow(GGMLType.Q8_0, randomFloats(32, 1), 0, dst, 34, 32);
    expect(Array.from(dst.subarray(0, 34)).every((b) => b === 0xab)).toBe(true);
    expect(Array.from(dst.subarray(68)).every((b) => b === 0xab)).toBe(true);
  });
});

describe('activation quantizers', () => {
  it('roundHalfEven rounds ties to even', () => {
    expect([0.5, 1.5, 2.5, -0.5, -1.5, -2.5, 2.4999, -3.5].map((v) => roundHalfEven(v) + 0)).toEqual([0, 2, 2, 0, -2, -2, 2, -4]);
  });

  it('Q8_0 matches ggml x86 quantize_row_q8_0 bit for bit', () => {
    const x = floatsFromBits(golden.q80Activation.x);
    const want = hexBytes(golden.q80Activation.blocks);
    const nb = x.length / 32;
    const q = new Q8Blocks(1);
    quantizeQ8_0Activation(x, 0, x.length, q);
    for (let b = 0; b < nb; b++) {
      const o = b * 34;
      expect(f32ToF16Bits(q.scales[b]!)).toBe(want[o]! | (want[o + 1]! << 8));
      expect(Array.from(q.qs.subarray(b * 32, b * 32 + 32))).toEqual(Array.from(new Int8Array(want.buffer, o + 2, 32)));
    }
  });

  it('Q8_0 uses id = 127/amax and rounds ties to even', () => {
    // amax 127 → id 1: x·id = 2.5 and 3.5 are exact ties.
    const x = new Float32Array(32);
    x[0] = 127; x[1] = 2.5; x[2] = 3.5; x[3] = -2.5; x[4] = -0.5;
    const q = new Q8Blocks();
    quantizeQ8_0Activation(x, 0, 32, q);
    expect(Array.from(q.qs.subarray(0, 5))).toEqual([127, 2, 4, -2, 0]);
    expect(q.scales[0]).toBe(1);
  });

  it('Q8_0 writes at a block offset and grows its buffers', () => {
    const x = randomFloats(96, 3);
    const q = new Q8Blocks(1);
    quantizeQ8_0Activation(x, 32, 64, q, 5);
    expect(q.capacityBlocks).toBeGreaterThanOrEqual(7);
    const ref = new Q8Blocks();
    quantizeQ8_0Activation(x, 32, 64, ref);
    expect(Array.from(q.qs.subarray(5 * 32, 7 * 32))).toEqual(Array.from(ref.qs.subarray(0, 64)));
    expect(Array.from(q.scales.subarray(5, 7))).toEqual(Array.from(ref.scales.subarray(0, 2)));
  });

  it('Q8_K matches ggml quantize_row_q8_K bit for bit (d, qs, bsums)', () => {
    const x = floatsFromBits(golden.q8kActivation.x);
    const want = hexBytes(golden.q8kActivation.blocks);
    const view = new DataView(want.buffer);
    const q = new Q8KBlocks();
    quantizeQ8_KActivation(x, 0, x.length, q);
    for (let b = 0; b < x.length / 256; b++) {
      const o = b * 292;
      expect(f32Bits(q.scales[b]!)).toBe(view.getUint32(o, true));
      expect(Array.from(q.qs.subarray(b * 256, b * 256 + 256))).toEqual(Array.from(new Int8Array(want.buffer, o + 4, 256)));
      for (let j = 0; j < 16; j++) expect(q.bsums[b * 16 + j]).toBe(view.getInt16(o + 260 + 2 * j, true));
    }
  });

  it('Q8_K: scale sign follows the largest-magnitude value, positive side clamps at 127', () => {
    const x = new Float32Array(256);
    x[0] = 1; x[1] = -1; x[2] = 0.5;
    const q = new Q8KBlocks();
    quantizeQ8_KActivation(x, 0, 256, q);
    expect(q.scales[0]).toBe(Math.fround(1 / Math.fround(-127)));
    expect(Array.from(q.qs.subarray(0, 3))).toEqual([-127, 127, -64]); // −63.5 ties to even −64
    expect(q.bsums[0]).toBe(-64);
    x.fill(0);
    quantizeQ8_KActivation(x, 0, 256, q);
    expect(q.scales[0]).toBe(0);
    expect(Array.from(q.bsums.subarray(0, 16)).every((v) => v === 0)).toBe(true);
  });

  it('Q8_K bsums are the sums of 16 quants and d·q approximates x', () => {
    fc.assert(fc.property(fc.integer({ min: 1, max: 1 << 30 }), (seed) => {
      const x = randomFloats(512, seed, 4);
      const q = new Q8KBlocks();
      quantizeQ8_KActivation(x, 0, 512, q);
      for (let b = 0; b < 2; b++) {
        const d = Math.abs(q.scales[b]!);
        for (let j = 0; j < 16; j++) {
          let s = 0;
          for (let k = 0; k < 16; k++) s += q.qs[b * 256 + 16 * j + k]!;
          expect(q.bsums[b * 16 + j]).toBe(s);
        }
        for (let i = 0; i < 256; i++) expect(Math.abs(q.scales[b]! * q.qs[b * 256 + i]! - x[b * 256 + i]!)).toBeLessThanOrEqual(d * 0.5001);
      }
    }), { numRuns: 30 });
  });
});
