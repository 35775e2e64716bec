/**
 * The simulated "model": logits are a pure function of a sequence's token history, so a sequence's output can only
 * change if the cluster fed it the wrong tokens (a corrupted KV cache, a batch mate's row, a skipped position). It
 * never sees the seqId, the batch or the stage count — exactly the independence the real engine guarantees.
 */
import { SplitMix32 } from '../../src/engine/prng.js';
import { Sampler } from '../../src/engine/sampler.js';
import type { TaskInput } from '../../src/cluster/scheduler.js';

/** FNV-1a over the token ids, then a final avalanche (so short histories still spread over the seed space). */
export function historySeed(tokens: ArrayLike<number>, length: number): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < length; i++) {
    const t = tokens[i]!;
    h = Math.imul(h ^ (t & 0xff), 0x01000193);
    h = Math.imul(h ^ (t >>> 8), 0x01000193);
  }
  h ^= h >>> 16;
  h = Math.imul(h, 0x7feb352d);
  h ^= h >>> 15;
  return h >>> 0;
}

/** Writes vocabSize logits for a history into out[offset…]. Values in (-4, 4). */
export function fillLogits(out: Float32Array, offset: number, vocabSize: number, tokens: ArrayLike<number>, length: number): void {
  const rng = new SplitMix32(historySeed(tokens, length));
  for (let v = 0; v < vocabSize; v++) out[offset + v] = rng.nextFloat() * 8 - 4;
}

export interface ModelLimits {
  readonly vocabSize: number;
  readonly contextLength: number;
  readonly eogIds: ReadonlySet<number>;
}

/**
 * What a task must produce, computed without any cluster: the scheduler's stop rules (EOG unless ignoreEos, then
 * maxTokens or the context) over the model above. An independent check on the single-worker reference run.
 */
export function directTokens(task: TaskInput, m: ModelLimits): number[] {
  const sampler = new Sampler(task.sampler);
  const history = [...task.promptIds];
  const out: number[] = [];
  const logits = new Float32Array(m.vocabSize);
  for (;;) {
    fillLogits(logits, 0, m.vocabSize, history, history.length);
    const token = sampler.sample(logits, history);
    out.push(token);
    history.push(token);
    if (!task.ignoreEos && m.eogIds.has(token)) return out;
    if (out.length >= task.maxTokens || history.length >= m.contextLength) return out;
  }
}
