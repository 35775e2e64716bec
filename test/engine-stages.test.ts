import { afterAll, describe, expect, it } from 'vitest';
import { createKernels } from '../src/engine/kernels/index.js';
import type { Kernels } from '../src/engine/kernels/types.js';
import { evenSplit, loadStage, openModel, wholeModel } from '../src/engine/model/load.js';
import { LocalPipeline } from '../src/engine/model/pipeline.js';
import type { StageBatch } from '../src/engine/model/stage.js';
import { generate } from '../src/engine/generate.js';
import type { SynthTypeName } from '../src/engine/synth.js';
import { ModelDir, SHAPES } from './helpers/models.js';

const models = new ModelDir();
afterAll(() => models.cleanup());

const bits = (a: Float32Array): Uint32Array => new Uint32Array(a.buffer, a.byteOffset, a.length);

function pipeline(path: string, nStages: number, kernels: Kernels): LocalPipeline {
  const m = openModel(path);
  const ranges = nStages === 1 ? [wholeModel(m.cfg)] : evenSplit(m.cfg, nStages);
  return new LocalPipeline(ranges.map((r) => loadStage(m, r, kernels)));
}

const prompt = [1, 17, 250, 31, 99, 5, 300, 44, 12, 87, 150, 201];

/** Prefill the prompt then feed 6 greedy steps; returns every logits row produced. */
async function trace(p: LocalPipeline, seqId = 0): Promise<Float32Array[]> {
  const rows: Float32Array[] = [];
  const n = prompt.length;
  let logits = await p.logits({
    nTokens: n, seqIds: new Int32Array(n).fill(seqId), positions: Int32Array.from({ length: n }, (_, i) => i),
    tokens: Int32Array.from(prompt),
  });
  rows.push(logits);
  let pos = n;
  for (let step = 0; step < 6; step++) {
    const last = logits.subarray(logits.length - p.vocabSize);
    let best = 0;
    for (let i = 1; i < last.length; i++) if (last[i]! > last[best]!) best = i;
    logits = await p.logits({ nTokens: 1, seqIds: Int32Array.of(seqId), positions: Int32Array.of(pos++), tokens: Int32Array.of(best) });
    rows.push(logits);
  }
  return rows;
}

const TYPES: SynthTypeName[] = ['f32', 'f16', 'q8_0', 'q4_0', 'q4_k', 'q6_k'];

describe('stages', () => {
  const kernels = createKernels({ threads: 2 });
  afterAll(() => kernels.dispose());

  for (const type of TYPES) {
    it(`any split of stages gives bit-identical logits (${type})`, async () => {
      const path = models.model('tiny', SHAPES.tiny, type);
      const whole = await trace(pipeline(path, 1, kernels));
      for (const n of [2, 3]) {
        const split = await trace(pipeline(path, n, kernels));
        expect(split.length).toBe(whole.length);
        for (let i = 0; i < whole.length; i++) expect(bits(split[i]!)).toEqual(bits(whole[i]!));
      }
    });
  }

  it('a single-layer stage chain (one stage per layer) matches too, odd shapes, tied head', async () => {
    const path = models.model('odd', SHAPES.odd, 'f32', { tied: true });
    const whole = await trace(pipeline(path, 1, kernels));
    const split = await trace(pipeline(path, SHAPES.odd.nLayers, kernels));
    for (let i = 0; i < whole.length; i++) expect(bits(split[i]!)).toEqual(bits(whole[i]!));
  });

  // Native stages rearrange their quantized matrices (row-interleaved, Kernels.prepareWeight): end to end, the bits
  // must still be the TypeScript kernels' on the file's layout.
  for (const type of ['q4_k', 'q4_0', 'q8_0', 'q5_k', 'q6_k'] as const) {
    it(`thread count and kernel implementation do not change the bits (${type})`, async () => {
      const path = models.model('tiny', SHAPES.tiny, type);
      const ref = await trace(pipeline(path, 1, createKernels({ threads: 1, prefer: 'ts' })));
      for (const threads of [1, 2, 3]) {
        const k = createKernels({ threads });
        const got = await trace(pipeline(path, 1, k));
        k.dispose();
        for (let i = 0; i < ref.length; i++) expect(bits(got[i]!)).toEqual(bits(ref[i]!));
      }
    });
  }

  it('a sequence batched with others gives the same bits as alone', async () => {
    const path = models.model('tiny', SHAPES.tiny, 'q8_0');
    const alone = await trace(pipeline(path, 1, kernels), 0);
    const p = pipeline(path, 2, kernels);
    // Interleave two other sequences in the same forward calls.
    const others = [[3, 4, 5, 6, 7], [9, 8, 7]];
    const n = prompt.length;
    const seqIds: number[] = [];
    const positions: number[] = [];
    const tokens: number[] = [];
    others[0]!.forEach((t, i) => { seqIds.push(5); positions.push(i); tokens.push(t); });
    prompt.forEach((t, i) => { seqIds.push(0); positions.push(i); tokens.push(t); });
    others[1]!.forEach((t, i) => { seqIds.push(6); positions.push(i); tokens.push(t); });
    const batch: StageBatch = {
      nTokens: seqIds.length, seqIds: Int32Array.from(seqIds), positions: Int32Array.from(positions), tokens: Int32Array.from(tokens),
      logitRows: Int32Array.of(others[0]!.length + n - 1),
    };
    const got = await p.logits(batch);
    expect(bits(got)).toEqual(bits(alone[0]!.subarray(alone[0]!.length - p.vocabSize)));
  });

  it('logits written into a lent buffer have the same bits and live in that buffer', async () => {
    const path = models.model('tiny', SHAPES.tiny, 'q8_0');
    const p = pipeline(path, 2, kernels);
    const n = prompt.length;
    const batch = (seq: number): StageBatch => ({
      nTokens: n, seqIds: new Int32Array(n).fill(seq), positions: Int32Array.from({ length: n }, (_, i) => i),
      tokens: Int32Array.from(prompt), logitRows: Int32Array.of(n - 1, 0),
    });
    const fresh = p.logitsSync(batch(1));
    const lent = new Float32Array(3 * p.vocabSize).fill(Number.NaN);
    const got = p.logitsSync({ ...batch(2), logitsOut: lent });
    expect(got.buffer).toBe(lent.buffer);
    expect(bits(got)).toEqual(bits(fresh));
    // too small: refused before the last stage changes its caches (a new request restarts at position 0 anyway)
    expect(() => p.logitsSync({ ...batch(3), logitsOut: new Float32Array(2 * p.vocabSize - 1) })).toThrow(RangeError);
    expect(bits(p.logitsSync(batch(3)))).toEqual(bits(fresh));
    expect(() => p.logitsSync({ ...batch(4), logitRows: Int32Array.of(0, n) })).toThrow(/logit row/);
  });

  it('truncating the cache and re-feeding reproduces the same logits', async () => {
    const path = models.model('tiny', SHAPES.tiny, 'f32');
    const p = pipeline(path, 2, kernels);
    const first = await trace(p, 3);
    await p.truncate(3, 0);
    const again = await trace(p, 3);
    for (let i = 0; i < first.length; i++) expect(bits(again[i]!)).toEqual(bits(first[i]!));
  });

  it("a new sequence that reuses a dropped sequence's cache gives the bits of a fresh stage", async () => {
    const path = models.model('tiny', SHAPES.tiny, 'q8_0');
    const fresh = await trace(pipeline(path, 2, kernels), 9);
    const p = pipeline(path, 2, kernels);
    // A longer sequence first, so the reused cache holds stale keys/values past the new sequence's positions.
    const long = Array.from({ length: 40 }, (_, i) => 1 + ((i * 37) % 300));
    await p.logits({ nTokens: long.length, seqIds: new Int32Array(long.length).fill(4), positions: Int32Array.from({ length: long.length }, (_, i) => i), tokens: Int32Array.from(long) });
    await p.dropSequence(4);
    const reused = await trace(p, 9);
    expect(reused.length).toBe(fresh.length);
    for (let i = 0; i < fresh.length; i++) expect(bits(reused[i]!)).toEqual(bits(fresh[i]!));
  });

  it('rejects out-of-order positions and unknown token ids with clear errors', async () => {
    const path = models.model('tiny', SHAPES.tiny, 'f32');
    const p = pipeline(path, 1, kernels);
    await expect(p.logits({ nTokens: 1, seqIds: Int32Array.of(0), positions: Int32Array.of(4), tokens: Int32Array.of(1) })).rejects.toThrow(/position 4/);
    await expect(p.logits({ nTokens: 1, seqIds: Int32Array.of(0), positions: Int32Array.of(0), tokens: Int32Array.of(99999) })).rejects.toThrow(/outside the vocabulary/);
  });

  it('greedy decoding of a synthetic model does not collapse into one repeated token', async () => {
    for (const tied of [false, true]) {
      const path = models.model('tiny', SHAPES.tiny, 'f32', { tied });
      const m = openModel(path);
      const p = new LocalPipeline([loadStage(m, wholeModel(m.cfg), kernels)]);
      const r = await generate(p, {
        promptIds: [1, 20, 30], maxTokens: 40, contextLength: m.cfg.contextLength,
        sampler: { temperature: 0, topK: 0, topP: 1, minP: 0, repeatPenalty: 1, repeatLastN: 64, seed: 0 },
      });
      expect(new Set(r.tokens).size).toBeGreaterThan(5);
    }
  });
});
