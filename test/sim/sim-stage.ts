/**
 * A pipeline stage without weights: per sequence it keeps the tokens it has "cached" and enforces the same position
 * rules as the real Stage (src/engine/model/stage.ts claimSlots): position 0 starts the sequence over, any other
 * position must continue the cache exactly, and the context bounds it. The stage with the head turns each logit row
 * into logits from that sequence's cached history alone.
 */
import type { MicroBatch } from '../../src/cluster/scheduler.js';
import { fillLogits } from './model.js';

export interface StageSpec {
  readonly index: number;
  readonly hasHead: boolean;
  readonly vocabSize: number;
  readonly contextLength: number;
}

export type StageOutcome =
  | { readonly ok: true; readonly logits: Float32Array | null }
  | { readonly ok: false; readonly message: string };

export class SimStage {
  private readonly caches = new Map<number, number[]>();

  constructor(readonly spec: StageSpec) {}

  /** Cached positions per sequence (only sequences ever seen). */
  cacheLengths(): Map<number, number> {
    return new Map([...this.caches].map(([seq, c]) => [seq, c.length]));
  }

  /** Lose every cache (the 'forget' fault). */
  forget(): void {
    this.caches.clear();
  }

  /** Like the worker's TRUNCATE handler: rewind to min(fromPosition, cached length). */
  truncate(seqId: number, fromPosition: number): void {
    const c = this.caches.get(seqId);
    if (c) c.length = Math.min(fromPosition, c.length);
  }

  forward(b: MicroBatch): StageOutcome {
    const n = b.tokens.length;
    if (b.seqIds.length !== n || b.positions.length !== n) return { ok: false, message: 'ragged batch' };
    if (this.spec.index === 0) {
      for (const t of b.tokens) if (t < 0 || t >= this.spec.vocabSize) return { ok: false, message: `token id ${t} is outside the vocabulary` };
    }
    // Validate first, as claimSlots does (it truncates a sequence restarting at 0 before checking the rest).
    const next = new Map<number, number>();
    for (let t = 0; t < n; t++) {
      const seq = b.seqIds[t]!;
      let cache = this.caches.get(seq);
      if (!cache) this.caches.set(seq, (cache = []));
      const pos = b.positions[t]!;
      if (pos === 0 && !next.has(seq)) cache.length = 0;
      const expected = next.get(seq) ?? cache.length;
      if (pos !== expected) return { ok: false, message: `sequence ${seq}: position ${pos} given, but the cache continues at ${expected}` };
      if (pos >= this.spec.contextLength) return { ok: false, message: `sequence ${seq} needs ${pos + 1} positions but the context holds ${this.spec.contextLength}` };
      next.set(seq, pos + 1);
    }
    for (let t = 0; t < n; t++) this.caches.get(b.seqIds[t]!)![b.positions[t]!] = b.tokens[t]!;
    if (!this.spec.hasHead) return { ok: true, logits: null };
    const v = this.spec.vocabSize;
    const logits = new Float32Array(b.logitRows.length * v);
    b.logitRows.forEach((row, r) => {
      const cache = this.caches.get(b.seqIds[row]!)!;
      fillLogits(logits, r * v, v, cache, b.positions[row]! + 1);
    });
    return { ok: true, logits };
  }
}
