import type { Kernels } from '../kernels/types.js';
import type { LlamaConfig } from './config.js';
import { SequenceKvCache } from './kv-cache.js';
import { RopeTable } from './ops.js';
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
  /**
   * Where the last stage writes the logits (at least rows × vocabSize floats; the result is a view of it) instead of
   * a new array. For callers that are done with one result before the next forward: a new array costs a page fault
   * per 4 KiB (2 MB at 16 rows of a 32000-token vocabulary).
   */
  readonly logitsOut?: Float32Array;
}

export interface StageResult {
  /** nTokens × dim hidden states (stages without the head). */
  readonly hidden: Float32Array | null;
  /** logitRows.length × vocabSize logits (the stage with the head). */
  readonly logits: Float32Array | null;
}

/** Dropped sequences' caches a stage keeps for reuse (the batch sizes a stage serves are of this order). */
const MAX_SPARE_CACHES = 16;

/**
 * Grow-only scratch buffers, so a steady decode loop allocates nothing per token. The view of the last size asked
 * for is kept too: after a prefill grew the buffers, each decode step would otherwise make new subarrays.
 */
class Scratch {
  private readonly buffers = new Map<string, { full: Float32Array; view: Float32Array }>();
  get(name: string, size: number): Float32Array {
    let b = this.buffers.get(name);
    if (!b || b.full.length < size) {
      const full = new Float32Array(size);
      b = { full, view: full };
      this.buffers.set(name, b);
    }
    if (b.view.length !== size) b.view = b.full.length === size ? b.full : b.full.subarray(0, size);
    return b.view;
  }

  get bytes(): number {
    let n = 0;
    for (const b of this.buffers.values()) n += b.full.byteLength;
    return n;
  }
}

/** Region starts are rounded to 16 floats, so every view starts on a 64-byte boundary of the block. */
const ALIGN_FLOATS = 16;
const alignFloats = (n: number): number => Math.ceil(n / ALIGN_FLOATS) * ALIGN_FLOATS;

/**
 * A layer's activations for a batch of n tokens, in one grow-only block where buffers that are never live at the
 * same time share memory: the attention block's input norm and its output (xb, att), q and the output projection
 * (q, o), and the feed-forward block's gate and up over the attention's buffers. The feed-forward block decides the
 * size: n × (dim + 2 × ffDim) floats instead of n × (4 × dim + 2 × kvDim + 2 × ffDim) with a buffer each (1.4 MiB
 * less at 128 tokens of the 768-dim `medium` model). No kernel reads the buffer it writes, and each value is computed exactly
 * as before, so results keep their bits. The views of the last batch size are kept (a decode loop allocates nothing).
 */
class LayerActivations {
  private block = new Float32Array(0);
  private nTok = -1;
  /** Attention block: norm input (then reused by the feed-forward norm), projections, attention output. */
  xb: Float32Array = this.block;
  q: Float32Array = this.block;
  k: Float32Array = this.block;
  v: Float32Array = this.block;
  att: Float32Array = this.block;
  /** Output of the attention's output projection. */
  o: Float32Array = this.block;
  /** Feed-forward block. */
  gate: Float32Array = this.block;
  up: Float32Array = this.block;
  /** Output of ffn_down. */
  down: Float32Array = this.block;

  get bytes(): number {
    return this.block.byteLength;
  }

  forTokens(n: number, cfg: LlamaConfig): this {
    if (n === this.nTok) return this;
    const { dim, ffDim } = cfg;
    const qDim = cfg.nHeads * cfg.headDim;
    const kvDim = cfg.nKvHeads * cfg.headDim;
    // Attention: [xb | att] [q | o] [k] [v]. xb is dead once q, k, v are computed; q once attention has run.
    const a = 0;
    const qo = a + alignFloats(n * Math.max(dim, qDim));
    const k = qo + alignFloats(n * Math.max(qDim, dim));
    const v = k + alignFloats(n * kvDim);
    const attnEnd = v + alignFloats(n * kvDim);
    // Feed-forward: [xb | down] [gate] [up] over the attention's buffers, all dead by then (k and v are cached,
    // o added into x). xb is dead once gate and up are computed.
    const gate = a + alignFloats(n * dim);
    const up = gate + alignFloats(n * ffDim);
    const ffnEnd = up + alignFloats(n * ffDim);
    const floats = Math.max(attnEnd, ffnEnd);
    if (this.block.length < floats) this.block = new Float32Array(floats);
    const view = (at: number, len: number): Float32Array => this.block.subarray(at, at + len);
    this.xb = view(a, n * dim);
    this.att = view(a, n * qDim);
    this.q = view(qo, n * qDim);
    this.o = view(qo, n * dim);
    this.k = view(k, n * kvDim);
    this.v = view(v, n * kvDim);
    this.gate = view(gate, n * ffDim);
    this.up = view(up, n * ffDim);
    this.down = view(a, n * dim);
    this.nTok = n;
    return this;
  }
}

/**
 * Per batch: which cache each token reads and how many positions (the same for every layer). One plan per stage,
 * refilled by each forward, so a decode step allocates nothing here.
 */
class AttentionPlan {
  nPos = new Int32Array(0);
  cacheOf = new Int32Array(0);
  /** The batch's distinct caches. */
  readonly caches: SequenceKvCache[] = [];
  /** keys[l] / values[l] of those caches for the layer being computed (refilled per layer). */
  readonly keys: Float32Array[] = [];
  readonly values: Float32Array[] = [];

  fill(batch: StageBatch, slots: SequenceKvCache[]): this {
    const n = batch.nTokens;
    if (this.nPos.length < n) {
      this.nPos = new Int32Array(n);
      this.cacheOf = new Int32Array(n);
    }
    this.caches.length = 0;
    for (let t = 0; t < n; t++) {
      this.nPos[t] = batch.positions[t]! + 1; // causal: the token itself and everything before it
      let c = this.caches.indexOf(slots[t]!);
      if (c < 0) c = this.caches.push(slots[t]!) - 1;
      this.cacheOf[t] = c;
    }
    return this;
  }

  layer(l: number): void {
    const n = this.caches.length;
    for (let i = 0; i < n; i++) {
      this.keys[i] = this.caches[i]!.keys[l]!;
      this.values[i] = this.caches[i]!.values[l]!;
    }
    if (this.keys.length !== n) {
      this.keys.length = n;
      this.values.length = n;
    }
  }
}

/**
 * A contiguous range of transformer layers (plus the embedding if first, plus the head if last) with its own KV
 * caches. Chaining stages that cover the model gives bit-identical results to one stage covering it all, because
 * each stage runs exactly the operations of its layers in the same order.
 */
export class Stage {
  private readonly caches = new Map<number, SequenceKvCache>();
  /** Caches of dropped sequences, reused by new ones (dropSequence). */
  private readonly spareCaches: SequenceKvCache[] = [];
  private readonly scratch = new Scratch();
  private readonly acts = new LayerActivations();
  private readonly rope: RopeTable;
  private readonly plan = new AttentionPlan();
  private allRows = new Int32Array(0);

  constructor(
    readonly cfg: LlamaConfig,
    readonly range: StageRange,
    private readonly weights: StageWeights,
    private readonly kernels: Kernels,
  ) {
    this.rope = new RopeTable(cfg.ropeDims, cfg.ropeFreqBase, weights.ropeFreqFactors);
    // The stage owns its weights: let the kernels lay the matrices out as they compute fastest (Kernels.prepareWeight).
    if (kernels.prepareWeight) {
      for (const l of weights.layers) for (const w of [l.wq, l.wk, l.wv, l.wo, l.wGate, l.wUp, l.wDown]) kernels.prepareWeight(w);
      if (weights.output) kernels.prepareWeight(weights.output);
    }
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
    const c = this.caches.get(seqId);
    if (!c) return;
    this.caches.delete(seqId);
    // Kept for the next new sequence: its arrays are already paged in (a fresh 128-position cache of a 125M model
    // is ~750 page faults), and a server's resident memory stays at its peak instead of growing with garbage.
    if (this.spareCaches.length < MAX_SPARE_CACHES) {
      c.truncate(0);
      this.spareCaches.push(c);
    }
  }

  /** Bytes currently held by KV caches (in use and kept for reuse). */
  get kvBytes(): number {
    let b = 0;
    for (const c of this.caches.values()) b += c.bytes;
    for (const c of this.spareCaches) b += c.bytes;
    return b;
  }

  /** Bytes held by activation buffers (sized for the largest batch seen; the logits are not counted). */
  get activationBytes(): number {
    return this.scratch.bytes + this.acts.bytes;
  }

  forward(batch: StageBatch): StageResult {
    const { cfg } = this;
    const n = batch.nTokens;
    const dim = cfg.dim;
    if (this.range.hasHead) this.checkLogitRequest(batch); // before any cache changes
    const x = this.scratch.get('x', n * dim);
    this.input(batch, x);
    const slots = this.claimSlots(batch);
    const attn = this.plan.fill(batch, slots);
    let maxPos = -1;
    for (let t = 0; t < n; t++) maxPos = Math.max(maxPos, batch.positions[t]!);
    const rope = this.rope.upTo(maxPos + 1); // every layer rotates with the same rows
    for (let l = 0; l < this.weights.layers.length; l++) this.layer(l, batch, slots, attn, rope, x);
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
        cache = this.spareCaches.pop() ?? new SequenceKvCache(this.nLayers, kvDim, this.cfg.contextLength);
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

  private layer(
    l: number, batch: StageBatch, slots: SequenceKvCache[], attn: AttentionPlan,
    rope: { readonly cos: Float32Array; readonly sin: Float32Array }, x: Float32Array,
  ): void {
    const { cfg, kernels } = this;
    const w = this.weights.layers[l]!;
    const n = batch.nTokens;
    const { dim, headDim, nHeads, nKvHeads, ffDim } = cfg;
    const qDim = nHeads * headDim;
    const kvDim = nKvHeads * headDim;
    const neox = cfg.ropeStyle === 'neox';
    const { xb, q, k, v, att, o, gate, up, down } = this.acts.forTokens(n, cfg);

    // Attention block.
    kernels.rmsNorm(xb, x, w.attnNorm, n, dim, cfg.rmsEps);
    kernels.matmul(q, w.wq, xb, n);
    kernels.matmul(k, w.wk, xb, n);
    kernels.matmul(v, w.wv, xb, n);
    if (w.bq) kernels.addBias(q, w.bq, n, qDim);
    if (w.bk) kernels.addBias(k, w.bk, n, kvDim);
    if (w.bv) kernels.addBias(v, w.bv, n, kvDim);
    const { ropeDims } = this.rope;
    const { positions } = batch;
    kernels.rope(q, { nTok: n, nHeads, headDim, ropeDims, neox, positions, cos: rope.cos, sin: rope.sin });
    kernels.rope(k, { nTok: n, nHeads: nKvHeads, headDim, ropeDims, neox, positions, cos: rope.cos, sin: rope.sin });
    for (let t = 0; t < n; t++) {
      const pos = positions[t]!;
      const cache = slots[t]!;
      cache.keys[l]!.set(k.subarray(t * kvDim, (t + 1) * kvDim), pos * kvDim);
      cache.values[l]!.set(v.subarray(t * kvDim, (t + 1) * kvDim), pos * kvDim);
    }
    // One call for the whole batch (the native kernels split it over threads); each token reads its own sequence.
    attn.layer(l);
    kernels.attention(att, {
      nTok: n, nHeads, nKvHeads, headDim, q, nPos: attn.nPos, cacheOf: attn.cacheOf, keys: attn.keys, values: attn.values,
    });
    kernels.matmul(o, w.wo, att, n);
    kernels.add(x, o, n * dim);

    // Feed-forward block (SwiGLU).
    kernels.rmsNorm(xb, x, w.ffnNorm, n, dim, cfg.rmsEps);
    kernels.matmul(gate, w.wGate, xb, n);
    kernels.matmul(up, w.wUp, xb, n);
    kernels.swiglu(gate, up, n * ffDim);
    kernels.matmul(down, w.wDown, gate, n);
    kernels.add(x, down, n * dim);
  }

  private checkLogitRequest(batch: StageBatch): void {
    const n = batch.nTokens;
    for (const r of batch.logitRows ?? []) {
      if (!(r >= 0 && r < n)) throw new RangeError(`logit row ${r} is outside the batch's ${n} rows`);
    }
    const floats = (batch.logitRows?.length ?? n) * this.cfg.vocabSize;
    if (batch.logitsOut && batch.logitsOut.length < floats) {
      throw new RangeError(`logitsOut holds ${batch.logitsOut.length} floats, need ${floats}`);
    }
  }

  /** 0, 1, …, n − 1 (shared; read-only). */
  private everyRow(n: number): Int32Array {
    if (this.allRows.length < n) this.allRows = Int32Array.from({ length: Math.max(n, 2 * this.allRows.length) }, (_, i) => i);
    return this.allRows.subarray(0, n);
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
    const rows = batch.logitRows ?? this.everyRow(batch.nTokens);
    const xn = this.scratch.get('xn', rows.length * dim);
    // Normalize the rows that need logits in one call: straight from x when they are its first rows, else gathered.
    let identity = rows.length <= batch.nTokens;
    for (let i = 0; i < rows.length && identity; i++) identity = rows[i] === i;
    if (!identity) for (let i = 0; i < rows.length; i++) xn.set(x.subarray(rows[i]! * dim, (rows[i]! + 1) * dim), i * dim);
    this.kernels.rmsNorm(xn, identity ? x : xn, this.weights.outputNorm!, rows.length, dim, this.cfg.rmsEps);
    // A fresh array unless the caller lends one: callers may keep the logits (the cluster sends them asynchronously).
    const size = rows.length * vocabSize;
    let logits: Float32Array;
    if (batch.logitsOut) logits = batch.logitsOut.length === size ? batch.logitsOut : batch.logitsOut.subarray(0, size);
    else logits = new Float32Array(size);
    this.kernels.matmul(logits, this.weights.output!, xn, rows.length);
    return logits;
  }
}
