/** What bench/engine.ts measures; shared with the per-process runner. */
export const PREFILL_TOKENS = 128;
/** Prefills timed; the median is reported. */
export const PREFILL_RUNS = 3;
export const DECODE_TOKENS = 64;
export const BATCH_SIZES = [4, 16];
export const BATCH_STEPS = 24;
/** Butterfly only: a batch large enough that aggregate decode throughput has stopped growing (the compute bound). */
export const PLATEAU_BATCH = 64;

export interface RunResult {
  prefillTokPerS: number;
  decodeTokPerS: number;
  batched: Record<string, number>;
  /** Aggregate tok/s at PLATEAU_BATCH sequences (Butterfly only). */
  plateauTokPerS?: number;
  /** Resident memory of the runtime with the engine's code loaded, before the model is opened. */
  baselineRssBytes: number;
  /**
   * Resident memory after the single-stream decode (one sequence of 80 positions, its cache grown to 128 by the
   * prefills): what serving one stream costs.
   */
  decodeRssBytes: number;
  /** Largest resident memory seen, after the batched runs (B sequences' KV caches). */
  rssBytes: number;
}
