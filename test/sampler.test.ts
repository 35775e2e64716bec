import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { Sampler, SAMPLER_STATE_BYTES, topLogprobs, type SamplerParams } from '../src/engine/sampler.js';
import { SplitMix32 } from '../src/engine/prng.js';

const base: SamplerParams = { temperature: 0.9, topK: 40, topP: 0.95, minP: 0.05, repeatPenalty: 1.1, repeatLastN: 64, seed: 7 };

function randomLogits(seed: number, n: number): Float32Array {
  const rng = new SplitMix32(seed);
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) a[i] = rng.nextGaussian() * 3;
  return a;
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
