import { bfExp } from './kernels/exp.js';
import { loadNativeAddon } from './kernels/native.js';
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
const scratch = {
  ids: new Int32Array(0), vals: new Float64Array(0), probs: new Float64Array(0), order: new Int32Array(0), byId: new Float64Array(0),
  xs: new Float32Array(0), es: new Float32Array(0),
};

/**
 * out[i] = bfExp(x[i]): the native vector kernel where the addon is built (~30× Math.exp's speed over a vocabulary),
 * else the TypeScript bfExp — the same bits either way (docs/kernels.md "exp"), so every node samples alike.
 */
let addon: ReturnType<typeof loadNativeAddon> | undefined; // looked up once: this runs every token
function expInto(out: Float32Array, x: Float32Array): void {
  if (addon === undefined) addon = loadNativeAddon();
  if (addon) {
    addon.exp(out, x, false);
    return;
  }
  for (let i = 0; i < x.length; i++) out[i] = bfExp(x[i]!);
}

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
    // greedy without a penalty: the argmax of the logits as they are (no copy; 0.07 → 0.02 ms at 32000 tokens)
    if (p.temperature <= 0 && (p.repeatPenalty === 1 || recentTokens.length === 0)) return argmaxF32(logits, n);
    if (scratch.ids.length < n) {
      scratch.ids = new Int32Array(n);
      scratch.vals = new Float64Array(n);
      scratch.probs = new Float64Array(n);
      scratch.order = new Int32Array(n);
      scratch.byId = new Float64Array(n);
      scratch.xs = new Float32Array(n);
      scratch.es = new Float32Array(n);
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

    // Candidates in the total order (value desc, id asc): a small top-k by one pass of insertion into a short sorted
    // list; otherwise out of a max-heap, only as many as the cuts below need. (A comparator sort of all 32000 ids
    // took ~9 ms per token: `node /tmp/samp.mjs`-style timing, V = 32000, T 0.8, top-k 40: 9.1 → ~0.2 ms; T 1 with
    // no cut: 8.7 → ~0.8 ms, the softmax's exp over the whole vocabulary.)
    const k = p.topK > 0 ? Math.min(p.topK, n) : n;
    const probs = scratch.probs;
    const order = scratch.order;
    let popped = 0;
    let sum = 0;
    let heap: CandidateHeap | null = null;
    let maxV: number;
    if (k < n) {
      // softmax over the top k, its terms summed best first
      if (k <= SELECT_MAX_K) {
        selectTop(vals, n, k, order);
      } else {
        const ids = scratch.ids;
        for (let i = 0; i < n; i++) ids[i] = i;
        const h = new CandidateHeap(ids, vals, n);
        for (let i = 0; i < k; i++) order[i] = h.pop();
      }
      popped = k;
      maxV = vals[order[0]!]!;
      for (let i = 0; i < k; i++) {
        const e = bfExp((vals[order[i]!]! - maxV) / p.temperature);
        probs[i] = e;
        sum += e;
      }
    } else {
      // softmax over the whole vocabulary, its terms summed in id order (any fixed order keeps sampling
      // deterministic; this one needs no sort), kept by id until popped. The heap is only built if a cut needs
      // candidates best first.
      if (p.minP > 0 || p.topP < 1) {
        const ids = scratch.ids;
        for (let i = 0; i < n; i++) ids[i] = i;
        heap = new CandidateHeap(ids, vals, n);
        maxV = vals[heap.peek()]!;
      } else {
        maxV = vals[argmax(vals, n)]!;
      }
      const xs = scratch.xs, es = scratch.es;
      for (let i = 0; i < n; i++) xs[i] = (vals[i]! - maxV) / p.temperature;
      expInto(es.subarray(0, n), xs.subarray(0, n));
      for (let i = 0; i < n; i++) sum += (scratch.byId[i] = es[i]!);
    }
    // The i-th best candidate's probability, popping the heap as far as needed.
    const prob = (i: number): number => {
      for (; popped <= i; popped++) {
        const id = heap!.pop();
        order[popped] = id;
        probs[popped] = scratch.byId[id]!;
      }
      return probs[i]! / sum;
    };
    let count = k;
    // min-p: drop candidates below minP × the best probability.
    if (p.minP > 0) {
      const floor = prob(0) * p.minP;
      let keep = 1;
      while (keep < count && prob(keep) >= floor) keep++;
      count = keep;
    }
    // top-p: smallest prefix whose mass reaches topP.
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
    // Draw. With no cut at all (no top-k, top-p or min-p) the whole vocabulary is walked in id order, like `sum`:
    // no candidate has to come out of the heap.
    let total = 0;
    if (count === n && k === n) {
      for (let i = 0; i < n; i++) total += scratch.byId[i]! / sum;
      const r = this.rng.nextFloat() * total;
      let acc = 0;
      for (let i = 0; i < n; i++) {
        acc += scratch.byId[i]! / sum;
        if (r < acc) return i;
      }
      return n - 1;
    }
    for (let i = 0; i < count; i++) total += prob(i);
    const r = this.rng.nextFloat() * total;
    let acc = 0;
    for (let i = 0; i < count; i++) {
      acc += prob(i);
      if (r < acc) return order[i]!;
    }
    prob(count - 1);
    return order[count - 1]!;
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

/** Up to this top-k, selection by insertion (O(n·k) at worst, one cheap pass in practice); beyond it, the heap. */
const SELECT_MAX_K = 64;

/** order[0..k) = the k best ids in the total order (value desc, id asc), by insertion into a sorted prefix. */
function selectTop(vals: Float64Array, n: number, k: number, order: Int32Array): void {
  let len = 0;
  for (let i = 0; i < n; i++) {
    const v = vals[i]!;
    // ids come in increasing order, so an equal value never goes before an earlier id
    if (len === k && !(v > vals[order[k - 1]!]!)) continue;
    let j = len < k ? len++ : k - 1;
    while (j > 0 && v > vals[order[j - 1]!]!) {
      order[j] = order[j - 1]!;
      j--;
    }
    order[j] = i;
  }
}

/**
 * A binary max-heap of token ids in the sampler's total order: higher value first, lower id first among equal values
 * (NaN values compare as neither, so they come out in some fixed order). Built in place over ids[0..n) in O(n).
 */
class CandidateHeap {
  private size: number;

  constructor(private readonly ids: Int32Array, private readonly vals: Float64Array, n: number) {
    this.size = n;
    for (let i = (n >> 1) - 1; i >= 0; i--) this.down(i);
  }

  peek(): number {
    return this.ids[0]!;
  }

  pop(): number {
    const top = this.ids[0]!;
    this.size--;
    if (this.size > 0) {
      this.ids[0] = this.ids[this.size]!;
      this.down(0);
    }
    return top;
  }

  private before(a: number, b: number): boolean {
    const va = this.vals[a]!, vb = this.vals[b]!;
    return va > vb || (va === vb && a < b);
  }

  private down(i: number): void {
    const ids = this.ids;
    for (;;) {
      const l = 2 * i + 1;
      if (l >= this.size) return;
      const r = l + 1;
      const c = r < this.size && this.before(ids[r]!, ids[l]!) ? r : l;
      if (!this.before(ids[c]!, ids[i]!)) return;
      const t = ids[i]!;
      ids[i] = ids[c]!;
      ids[c] = t;
      i = c;
    }
  }
}

/** argmax for Float32Array (kept apart from the Float64Array one so each stays monomorphic for the JIT) */
function argmaxF32(vals: Float32Array, n: number): number {
  let best = 0;
  for (let i = 1; i < n; i++) if (vals[i]! > vals[best]!) best = i;
  return best;
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
  // the exps by the vector kernel (bfExp, as in sampling): 0.44 → ~0.1 ms at 32000 tokens with Math.exp per token
  if (scratch.xs.length < n) {
    scratch.xs = new Float32Array(n);
    scratch.es = new Float32Array(n);
  }
  const xs = scratch.xs.subarray(0, n), es = scratch.es.subarray(0, n);
  for (let i = 0; i < n; i++) xs[i] = logits[i]! - max;
  expInto(es, xs);
  let sum = 0;
  for (let i = 0; i < n; i++) sum += es[i]!;
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
