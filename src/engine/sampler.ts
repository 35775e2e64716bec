import { SplitMix32 } from './prng.js';

/** How to pick the next token from logits. temperature 0 means greedy. */
export interface SamplerParams {
  readonly temperature: number;
  readonly topK: number;          // 0 = off
  readonly topP: number;          // 1 = off
  readonly minP: number;          // 0 = off
  readonly repeatPenalty: number; // 1 = off
  readonly repeatLastN: number;   // how many recent tokens the penalty looks at
  readonly seed: number;
}

export const DEFAULT_SAMPLER: SamplerParams = {
  temperature: 0.8, topK: 40, topP: 0.95, minP: 0.05, repeatPenalty: 1.0, repeatLastN: 64, seed: 0,
};

export interface TokenLogprob {
  readonly id: number;
  readonly logprob: number;
}

/** Serialized sampler: params + PRNG state, 8 float64 slots (exact for every parameter). */
export const SAMPLER_STATE_BYTES = 64;

/**
 * Candidate buffers shared by every sampler: sampling is synchronous, and a sampler is rebuilt per token on the last
 * stage (Sampler.fromWire), so per-instance vocab-sized buffers would be allocated on the hot path.
 */
const scratch = { ids: new Int32Array(0), vals: new Float64Array(0) };

/**
 * Deterministic sampler. Its whole state is the parameters and one PRNG word, so a checkpoint stores 32 bytes and
 * a restored sampler draws the same future tokens. The recent-token window for the repetition penalty is passed in
 * by the caller (it is the sequence's own history, which checkpoints keep anyway).
 */
export class Sampler {
  private readonly rng: SplitMix32;

  constructor(readonly params: SamplerParams, rngState?: number) {
    this.rng = new SplitMix32(rngState ?? params.seed);
  }

  get rngState(): number {
    return this.rng.state;
  }

  /** Pick the next token. `logits` is one row of vocabSize; it is not modified. */
  sample(logits: Float32Array, recentTokens: readonly number[] = []): number {
    const p = this.params;
    const n = logits.length;
    if (scratch.ids.length < n) {
      scratch.ids = new Int32Array(n);
      scratch.vals = new Float64Array(n);
    }
    const vals = scratch.vals;
    for (let i = 0; i < n; i++) vals[i] = logits[i]!;
    if (p.repeatPenalty !== 1 && recentTokens.length > 0) {
      const seen = new Set(p.repeatLastN > 0 ? recentTokens.slice(-p.repeatLastN) : []);
      for (const id of seen) {
        if (id < 0 || id >= n) continue;
        const v = vals[id]!;
        vals[id] = v > 0 ? v / p.repeatPenalty : v * p.repeatPenalty;
      }
    }
    if (p.temperature <= 0) return argmax(vals, n);

    // Candidates sorted by value (desc), ties by id (asc): a total order, so the result is deterministic.
    const ids = scratch.ids;
    let count = n;
    for (let i = 0; i < n; i++) ids[i] = i;
    const k = p.topK > 0 ? Math.min(p.topK, n) : n;
    const sorted = Array.from(ids.subarray(0, count)).sort((a, b) => vals[b]! - vals[a]! || a - b);
    count = k;
    // Softmax over the top-k with temperature.
    const maxV = vals[sorted[0]!]!;
    const probs = new Float64Array(count);
    let sum = 0;
    for (let i = 0; i < count; i++) {
      const e = Math.exp((vals[sorted[i]!]! - maxV) / p.temperature);
      probs[i] = e;
      sum += e;
    }
    for (let i = 0; i < count; i++) probs[i]! /= sum;
    // min-p: drop candidates below minP × the best probability.
    if (p.minP > 0) {
      const floor = probs[0]! * p.minP;
      let keep = 1;
      while (keep < count && probs[keep]! >= floor) keep++;
      count = keep;
    }
    // top-p: smallest prefix whose mass reaches topP.
    if (p.topP < 1) {
      let mass = 0;
      let keep = 0;
      while (keep < count) {
        mass += probs[keep]!;
        keep++;
        if (mass >= p.topP) break;
      }
      count = keep;
    }
    let total = 0;
    for (let i = 0; i < count; i++) total += probs[i]!;
    const r = this.rng.nextFloat() * total;
    let acc = 0;
    for (let i = 0; i < count; i++) {
      acc += probs[i]!;
      if (r < acc) return sorted[i]!;
    }
    return sorted[count - 1]!;
  }

  /** The same 8 values as serialize(), as plain numbers (JSON carries float64 exactly). */
  toWire(): number[] {
    return Array.from(new Float64Array(this.serialize().buffer));
  }

  static fromWire(v: readonly number[]): Sampler {
    if (v.length !== SAMPLER_STATE_BYTES / 8 || v.some((x) => typeof x !== 'number' || !Number.isFinite(x))) {
      throw new Error(`sampler state must be ${SAMPLER_STATE_BYTES / 8} finite numbers`);
    }
    return Sampler.restore(new Uint8Array(Float64Array.from(v).buffer));
  }

  serialize(): Uint8Array {
    const buf = new ArrayBuffer(SAMPLER_STATE_BYTES);
    const f = new Float64Array(buf);
    const p = this.params;
    f[0] = p.temperature; f[1] = p.topK; f[2] = p.topP; f[3] = p.minP;
    f[4] = p.repeatPenalty; f[5] = p.repeatLastN; f[6] = p.seed >>> 0; f[7] = this.rng.state;
    return new Uint8Array(buf);
  }

  static restore(bytes: Uint8Array): Sampler {
    if (bytes.length !== SAMPLER_STATE_BYTES) throw new Error(`sampler state must be ${SAMPLER_STATE_BYTES} bytes, got ${bytes.length}`);
    const buf = bytes.slice().buffer;
    const f = new Float64Array(buf);
    return new Sampler(
      { temperature: f[0]!, topK: f[1]!, topP: f[2]!, minP: f[3]!, repeatPenalty: f[4]!, repeatLastN: f[5]!, seed: f[6]! },
      f[7]!,
    );
  }
}

function argmax(vals: Float64Array, n: number): number {
  let best = 0;
  for (let i = 1; i < n; i++) if (vals[i]! > vals[best]!) best = i;
  return best;
}

/** log-softmax of raw logits, top `k` entries (ties by id). */
export function topLogprobs(logits: Float32Array, k: number): TokenLogprob[] {
  const n = logits.length;
  let max = -Infinity;
  for (let i = 0; i < n; i++) if (logits[i]! > max) max = logits[i]!;
  let sum = 0;
  for (let i = 0; i < n; i++) sum += Math.exp(logits[i]! - max);
  const lse = max + Math.log(sum);
  // Partial selection: keep the k best in a small sorted list.
  const best: number[] = [];
  for (let i = 0; i < n; i++) {
    const v = logits[i]!;
    if (best.length === k && v <= logits[best[k - 1]!]!) continue;
    let j = best.length;
    while (j > 0 && logits[best[j - 1]!]! < v) j--;
    best.splice(j, 0, i);
    if (best.length > k) best.pop();
  }
  return best.map((id) => ({ id, logprob: logits[id]! - lse }));
}
