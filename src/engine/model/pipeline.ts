import type { Stage, StageBatch } from './stage.js';

/**
 * Something that turns a batch of tokens into logits: a chain of local stages here; the cluster provides a remote
 * pipeline with the same shape. Generation code depends only on this.
 */
export interface LogitsProvider {
  readonly vocabSize: number;
  /** Logits for batch.logitRows (or every row), row-major. */
  logits(batch: StageBatch): Promise<Float32Array>;
  truncate(seqId: number, positions: number): Promise<void>;
  dropSequence(seqId: number): Promise<void>;
}

/** Stages run one after another in this process. */
export class LocalPipeline implements LogitsProvider {
  constructor(private readonly stages: readonly Stage[]) {
    if (stages.length === 0) throw new Error('a pipeline needs at least one stage');
  }

  get vocabSize(): number {
    return this.stages[0]!.cfg.vocabSize;
  }

  logitsSync(batch: StageBatch): Float32Array {
    let b: StageBatch = batch;
    for (const s of this.stages) {
      const r = s.forward(b);
      if (r.logits) return r.logits;
      b = { ...batch, tokens: undefined, hidden: r.hidden! };
    }
    throw new Error('the last stage of the pipeline has no output head');
  }

  async logits(batch: StageBatch): Promise<Float32Array> {
    return this.logitsSync(batch);
  }

  async truncate(seqId: number, positions: number): Promise<void> {
    for (const s of this.stages) s.truncate(seqId, positions);
  }

  async dropSequence(seqId: number): Promise<void> {
    for (const s of this.stages) s.dropSequence(seqId);
  }
}
