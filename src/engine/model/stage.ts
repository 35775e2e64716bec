import type { Kernels } from '../kernels/types.js';
import type { LlamaConfig } from './config.js';
import { SequenceKvCache } from './kv-cache.js';
import { addBias, addInPlace, applyRope, rmsNorm, RopeTable } from './ops.js';
import type { StageRange, StageWeights } from './weights.js';

/**
 * A batch of tokens flowing through a stage: several sequences, several positions each. Within one sequence,
 * tokens must come in position order and continue the sequence (position == tokens already cached).
 */
export interface StageBatch {
  readonly nTokens: number;
  readonly seqIds: Int32Array;
  readonly positions: Int32Array;
  /** Token ids; required by the first stage (the one holding the embedding). */
  readonly tokens?: Int32Array;
  /** Hidden states nTokens × dim; required by every other stage. */
  readonly hidden?: Float32Array;
  /** Which batch rows the last stage turns into logits (default: every row). */
  readonly logitRows?: Int32Array;
}

export interface StageResult {
  /** nTokens × dim hidden states (stages without the head). */
  readonly hidden: Float32Array | null;
  /** logitRows.length × vocabSize logits (the stage with the head). */
  readonly logits: Float32Array | null;
}

/** Grow-only scratch buffers, so a steady decode loop allocates nothing per token. */
class Scratch {
  private readonly buffers = new Map<string, Float32Array>();
  get(name: string, size: number): Float32Array {
    let b = this.buffers.get(name);
    if (!b || b.length < size) {
      b = new Float32Array(size);
      this.buffers.set(name, b);
    }
    return b.length === size ? b : b.subarray(0, size);
  }
}

/** Per batch: which cache each token reads and how many positions (the same for every layer). */
interface AttentionPlan {
  readonly nPos: Int32Array;
  readonly cacheOf: Int32Array;
  /** The batch's distinct caches; a layer passes their keys[l] / values[l]. */
  readonly caches: SequenceKvCache[];
}

function attentionPlan(batch: StageBatch, slots: SequenceKvCache[]): AttentionPlan {
  const n = batch.nTokens;
  const nPos = new Int32Array(n);
  const cacheOf = new Int32Array(n);
  const caches: SequenceKvCache[] = [];
  for (let t = 0; t < n; t++) {
    nPos[t] = batch.positions[t]! + 1; // causal: the token itself and everything before it
    let c = caches.indexOf(slots[t]!);
    if (c < 0) c = caches.push(slots[t]!) - 1;
    cacheOf[t] = c;
  }
  return { nPos, cacheOf, caches };
}

/**
 * A contiguous range of transformer layers (plus the embedding if first, plus the head if last) with its own KV
 * caches. Chaining stages that cover the model gives bit-identical results to one stage covering it all, because
 * each stage runs exactly the operations of its layers in the same order.
 */
export class Stage {
  private readonly caches = new Map<number, SequenceKvCache>();
  private readonly scratch = new Scratch();
  private readonly rope: RopeTable;

  constructor(
    readonly cfg: LlamaConfig,
    readonly range: StageRange,
    private readonly weights: StageWeights,
    private readonly kernels: Kernels,
  ) {
    this.rope = new RopeTable(cfg.ropeDims, cfg.ropeFreqBase, weights.ropeFreqFactors);
  }

  get nLayers(): number {
    return this.range.lastLayer - this.range.firstLayer;
  }

  /** Positions cached for a sequence (0 if unknown). */
  sequenceLength(seqId: number): number {
    return this.caches.get(seqId)?.length ?? 0;
  }

  /** Rewind a sequence to `positions` cached positions. */
  truncate(seqId: number, positions: number): void {
    const c = this.caches.get(seqId);
    if (!c) {
      if (positions === 0) return;
      throw new RangeError(`unknown sequence ${seqId}`);
    }
    c.truncate(positions);
  }

  dropSequence(seqId: number): void {
    this.caches.delete(seqId);
  }

  /** Bytes currently held by KV caches. */
  get kvBytes(): number {
    let b = 0;
    for (const c of this.caches.values()) b += c.bytes;
    return b;
  }

  forward(batch: StageBatch): StageResult {
    const { cfg } = this;
    const n = batch.nTokens;
    const dim = cfg.dim;
    const x = this.scratch.get('x', n * dim);
    this.input(batch, x);
    const slots = this.claimSlots(batch);
    const attn = attentionPlan(batch, slots);
    for (let l = 0; l < this.weights.layers.length; l++) this.layer(l, batch, slots, attn, x);
    this.commitPositions(batch, slots);
    if (!this.range.hasHead) return { hidden: x.slice(), logits: null };
    return { hidden: null, logits: this.head(batch, x) };
  }

  private input(batch: StageBatch, x: Float32Array): void {
    const { dim, vocabSize } = this.cfg;
    const n = batch.nTokens;
    if (this.range.hasEmbedding) {
      if (!batch.tokens || batch.tokens.length < n) throw new Error('the first stage needs token ids');
      const emb = this.weights.embedding!;
      const row = this.scratch.get('row', dim);
      for (let t = 0; t < n; t++) {
        const id = batch.tokens[t]!;
        if (!Number.isInteger(id) || id < 0 || id >= vocabSize) throw new RangeError(`token id ${id} is outside the vocabulary (0..${vocabSize - 1})`);
        this.kernels.getRow(row, emb, id);
        x.set(row, t * dim);
      }
    } else {
      if (!batch.hidden || batch.hidden.length < n * dim) throw new Error(`stage at layer ${this.range.firstLayer} needs ${n}×${dim} hidden states`);
      x.set(batch.hidden.subarray(0, n * dim));
    }
  }

  /** Validate positions and reserve cache room; returns each token's cache for this batch. */
  private claimSlots(batch: StageBatch): SequenceKvCache[] {
    const kvDim = this.cfg.nKvHeads * this.cfg.headDim;
    const next = new Map<number, number>();
    const slots: SequenceKvCache[] = [];
    for (let t = 0; t < batch.nTokens; t++) {
      const seq = batch.seqIds[t]!;
      let cache = this.caches.get(seq);
      if (!cache) {
        cache = new SequenceKvCache(this.nLayers, kvDim, this.cfg.contextLength);
        this.caches.set(seq, cache);
      }
      const pos = batch.positions[t]!;
      // A sequence that starts again at position 0 is a new request reusing the slot: forget the old cache.
      if (pos === 0 && !next.has(seq)) cache.truncate(0);
      const expected = next.get(seq) ?? cache.length;
      if (pos !== expected) throw new RangeError(`sequence ${seq}: position ${pos} given, but the cache continues at ${expected}`);
      next.set(seq, pos + 1);
      slots.push(cache);
    }
    for (const [seq, end] of next) this.caches.get(seq)!.reserve(end);
    return slots;
  }

  private layer(l: number, batch: StageBatch, slots: SequenceKvCache[], attn: AttentionPlan, x: Float32Array): void {
    const { cfg, kernels, scratch } = this;
    const w = this.weights.layers[l]!;
    const n = batch.nTokens;
    const { dim, headDim, nHeads, nKvHeads, ffDim } = cfg;
    const qDim = nHeads * headDim;
    const kvDim = nKvHeads * headDim;
    const neox = cfg.ropeStyle === 'neox';

    // Attention block.
    const xb = scratch.get('xb', n * dim);
    for (let t = 0; t < n; t++) rmsNorm(xb, t * dim, x, t * dim, w.attnNorm, dim, cfg.rmsEps);
    const q = scratch.get('q', n * qDim);
    const k = scratch.get('k', n * kvDim);
    const v = scratch.get('v', n * kvDim);
    kernels.matmul(q, w.wq, xb, n);
    kernels.matmul(k, w.wk, xb, n);
    kernels.matmul(v, w.wv, xb, n);
    if (w.bq) addBias(q, w.bq, n, qDim);
    if (w.bk) addBias(k, w.bk, n, kvDim);
    if (w.bv) addBias(v, w.bv, n, kvDim);
    for (let t = 0; t < n; t++) {
      const pos = batch.positions[t]!;
      this.rope.at(pos);
      applyRope(q, t * qDim, nHeads, headDim, this.rope, neox);
      applyRope(k, t * kvDim, nKvHeads, headDim, this.rope, neox);
      const cache = slots[t]!;
      cache.keys[l]!.set(k.subarray(t * kvDim, (t + 1) * kvDim), pos * kvDim);
      cache.values[l]!.set(v.subarray(t * kvDim, (t + 1) * kvDim), pos * kvDim);
    }
    const att = scratch.get('att', n * qDim);
    // One call for the whole batch (the native kernels split it over threads); each token reads its own sequence.
    kernels.attention(att, {
      nTok: n, nHeads, nKvHeads, headDim, q, nPos: attn.nPos, cacheOf: attn.cacheOf,
      keys: attn.caches.map((c) => c.keys[l]!), values: attn.caches.map((c) => c.values[l]!),
    });
    const o = scratch.get('o', n * dim);
    kernels.matmul(o, w.wo, att, n);
    addInPlace(x, o, n * dim);

    // Feed-forward block (SwiGLU).
    for (let t = 0; t < n; t++) rmsNorm(xb, t * dim, x, t * dim, w.ffnNorm, dim, cfg.rmsEps);
    const gate = scratch.get('gate', n * ffDim);
    const up = scratch.get('up', n * ffDim);
    kernels.matmul(gate, w.wGate, xb, n);
    kernels.matmul(up, w.wUp, xb, n);
    kernels.swiglu(gate, up, n * ffDim);
    kernels.matmul(o, w.wDown, gate, n);
    addInPlace(x, o, n * dim);
  }

  /** Positions count as cached only after every layer of the stage wrote them. */
  private commitPositions(batch: StageBatch, slots: SequenceKvCache[]): void {
    for (let t = 0; t < batch.nTokens; t++) {
      const c = slots[t]!;
      const end = batch.positions[t]! + 1;
      if (end > c.length) c.length = end;
    }
  }

  private head(batch: StageBatch, x: Float32Array): Float32Array {
    const { dim, vocabSize } = this.cfg;
    const rows = batch.logitRows ?? Int32Array.from({ length: batch.nTokens }, (_, i) => i);
    const xn = this.scratch.get('xn', rows.length * dim);
    for (let i = 0; i < rows.length; i++) rmsNorm(xn, i * dim, x, rows[i]! * dim, this.weights.outputNorm!, dim, this.cfg.rmsEps);
    const logits = new Float32Array(rows.length * vocabSize);
    this.kernels.matmul(logits, this.weights.output!, xn, rows.length);
    return logits;
  }
}
