import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { Sampler, SAMPLER_STATE_BYTES, topLogprobs, type SamplerParams } from '../src/engine/sampler.js';
import { SplitMix32 } from '../src/engine/prng.js';
import { bfExp } from '../src/engine/kernels/exp.js';

const base: SamplerParams = { temperature: 0.9, topK: 40, topP: 0.95, minP: 0.05, repeatPenalty: 1.1, repeatLastN: 64, seed: 7 };

function randomLogits(seed: number, n: number): Float32Array {
  const rng = new SplitMix32(seed);
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) a[i] = rng.nextGaussian() * 3;
  return a;
}


/**
 * The sampling rule written the plain way (every candidate sorted by value desc, id asc), as the fast sampler must
 * reproduce it token for token: softmax (bfExp of the float32 (v − max)/T) over the top k summed best first, or over the whole vocabulary summed in id
 * order; min-p and top-p on the sorted prefix; the draw walks the prefix best first — or, with no cut at all, the
 * vocabulary in id order.
 */
function referenceSample(logits: Float32Array, p: SamplerParams, rng: SplitMix32, recent: readonly number[]): number {
  const n = logits.length;
  const vals = Float64Array.from(logits);
  if (p.repeatPenalty !== 1 && recent.length > 0) {
    for (const id of new Set(p.repeatLastN > 0 ? recent.slice(-p.repeatLastN) : [])) {
      if (id < 0 || id >= n) continue;
      vals[id] = vals[id]! > 0 ? vals[id]! / p.repeatPenalty : vals[id]! * p.repeatPenalty;
    }
  }
  if (p.temperature <= 0) {
    let best = 0;
    for (let i = 1; i < n; i++) if (vals[i]! > vals[best]!) best = i;
    return best;
  }
  const sorted = Array.from({ length: n }, (_, i) => i).sort((a, b) => vals[b]! - vals[a]! || a - b);
  const k = p.topK > 0 ? Math.min(p.topK, n) : n;
  const maxV = vals[sorted[0]!]!;
  const e = (id: number): number => bfExp((vals[id]! - maxV) / p.temperature);
  let sum = 0;
  if (k < n) for (let i = 0; i < k; i++) sum += e(sorted[i]!);
  else for (let i = 0; i < n; i++) sum += e(i);
  const prob = (i: number): number => e(sorted[i]!) / sum;
  let count = k;
  if (p.minP > 0) {
    const floor = prob(0) * p.minP;
    let keep = 1;
    while (keep < count && prob(keep) >= floor) keep++;
    count = keep;
  }
  if (p.topP < 1) {
    let mass = 0;
    let keep = 0;
    while (keep < count) {
      mass += prob(keep);
      keep++;
      if (mass >= p.topP) break;
    }
    count = keep;
  }
  if (count === n && k === n) {
    let total = 0;
    for (let i = 0; i < n; i++) total += e(i) / sum;
    const r = rng.nextFloat() * total;
    let acc = 0;
    for (let i = 0; i < n; i++) {
      acc += e(i) / sum;
      if (r < acc) return i;
    }
    return n - 1;
  }
  let total = 0;
  for (let i = 0; i < count; i++) total += prob(i);
  const r = rng.nextFloat() * total;
  let acc = 0;
  for (let i = 0; i < count; i++) {
    acc += prob(i);
    if (r < acc) return sorted[i]!;
  }
  return sorted[count - 1]!;
}

describe('sampler', () => {
  it('greedy picks the argmax (lowest id on ties) and ignores the seed', () => {
    const l = new Float32Array([0.1, 2.5, -1, 2.5, 0]);
    for (const seed of [0, 1, 99]) expect(new Sampler({ ...base, temperature: 0, seed }).sample(l)).toBe(1);
  });

  it('repetition penalty changes the greedy choice', () => {
    const l = new Float32Array([1.0, 0.95, -1]);
    const s = new Sampler({ ...base, temperature: 0, repeatPenalty: 1.5 });
    expect(s.sample(l, [])).toBe(0);
    expect(s.sample(l, [0])).toBe(1);
  });

  it('same seed gives the same sequence; a different seed differs', () => {
    const draw = (seed: number): number[] => {
      const s = new Sampler({ ...base, seed, topK: 0, topP: 1, minP: 0 });
      return Array.from({ length: 50 }, (_, i) => s.sample(randomLogits(i, 100)));
    };
    expect(draw(1)).toEqual(draw(1));
    expect(draw(1)).not.toEqual(draw(2));
  });

  it('top-k 1 behaves like greedy', () => {
    const s = new Sampler({ ...base, topK: 1 });
    for (let i = 0; i < 20; i++) {
      const l = randomLogits(i, 50);
      expect(s.sample(l)).toBe(new Sampler({ ...base, temperature: 0 }).sample(l));
    }
  });

  it('never samples outside top-k / below min-p', () => {
    fc.assert(fc.property(fc.integer({ min: 0, max: 1e6 }), fc.integer({ min: 1, max: 10 }), (seed, k) => {
      const l = randomLogits(seed, 64);
      const id = new Sampler({ ...base, seed, topK: k, minP: 0, topP: 1 }).sample(l);
      const rank = Array.from(l).filter((v) => v > l[id]!).length;
      return rank < k;
    }));
  });

  it('serializes to a few bytes and restores to the same future', () => {
    fc.assert(fc.property(fc.integer({ min: 0, max: 0xffffffff }), fc.integer({ min: 0, max: 30 }), (seed, skip) => {
      const a = new Sampler({ ...base, seed });
      for (let i = 0; i < skip; i++) a.sample(randomLogits(i, 80));
      const bytes = a.serialize();
      expect(bytes.length).toBe(SAMPLER_STATE_BYTES);
      const b = Sampler.restore(bytes);
      expect(b.params).toEqual(a.params);
      for (let i = 0; i < 10; i++) {
        const l = randomLogits(1000 + i, 80);
        expect(b.sample(l, [1, 2, 3])).toBe(a.sample(l, [1, 2, 3]));
      }
    }), { numRuns: 50 });
  });

  it('gives the plain rule\'s token for every cut combination, ties and penalties (selection and heap, not a sort)', () => {
    fc.assert(fc.property(
      fc.integer({ min: 0, max: 1e6 }), fc.integer({ min: 1, max: 400 }), fc.constantFrom(0, 1, 5, 40, 64, 65, 100, 399, 1000),
      fc.constantFrom(1, 0.95, 0.5, 0.1), fc.constantFrom(0, 0.05, 0.5), fc.constantFrom(0.3, 0.8, 1, 2),
      fc.boolean(), fc.constantFrom(1, 1.3),
      (seed, n, topK, topP, minP, temperature, coarse, repeatPenalty) => {
        const l = randomLogits(seed, n);
        if (coarse) for (let i = 0; i < n; i++) l[i] = Math.round(l[i]!); // many equal values: ties by id
        const params: SamplerParams = { temperature, topK, topP, minP, repeatPenalty, repeatLastN: 64, seed };
        const recent = [seed % n, (seed >> 3) % n];
        const fast = new Sampler(params);
        const rng = new SplitMix32(seed);
        for (let step = 0; step < 3; step++) expect(fast.sample(l, recent)).toBe(referenceSample(l, params, rng, recent));
      }), { numRuns: 400 });
  });

  it('rejects a state of the wrong size', () => {
    expect(() => Sampler.restore(new Uint8Array(3))).toThrow(/bytes/);
  });
});

describe('topLogprobs', () => {
  it('is the log-softmax of the raw logits, largest first', () => {
    const l = new Float32Array([1, 3, 2, 0]);
    const top = topLogprobs(l, 3);
    const lse = Math.log(Math.exp(1) + Math.exp(3) + Math.exp(2) + Math.exp(0));
    expect(top.map((t) => t.id)).toEqual([1, 2, 0]);
    expect(top[0]!.logprob).toBeCloseTo(3 - lse, 6);
    expect(top[2]!.logprob).toBeCloseTo(1 - lse, 6);
  });
});
