/** What bench/engine.ts measures; shared with the per-process runner. */
export const PREFILL_TOKENS = 128;
export const DECODE_TOKENS = 64;
export const BATCH_SIZES = [4, 16];
export const BATCH_STEPS = 16;

export interface RunResult {
  prefillTokPerS: number;
  decodeTokPerS: number;
  batched: Record<string, number>;
  rssBytes: number;
}
