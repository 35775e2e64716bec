/**
 * What a model costs in memory beyond its weights (issue 3): large metadata arrays are decoded only when read, a
 * layer's activations share one block, and a sequence's KV cache grows in place. Asserted on behaviour (what is
 * decoded, what is allocated, which arrays are kept), never on resident memory, and with the bits unchanged.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { GgufError, GgufValueType, meta, openGguf, writeGguf, type GgufMetaEntry } from '../src/engine/gguf/index.js';
import { LAZY_ARRAY_MIN_BYTES } from '../src/engine/gguf/parse-header.js';
import { createKernels } from '../src/engine/kernels/index.js';
import type { Kernels } from '../src/engine/kernels/types.js';
import type { LlamaConfig } from '../src/engine/model/config.js';
import { SequenceKvCache } from '../src/engine/model/kv-cache.js';
import { fileTensorSource, loadStage, openModel, wholeModel } from '../src/engine/model/load.js';
import { RopeTable } from '../src/engine/model/ops.js';
import type { StageWeights } from '../src/engine/model/weights.js';
import { loadStageWeights, stageTensorNames } from '../src/engine/model/weights.js';
import { synthesizeModel, type SynthShape, type SynthTypeName } from '../src/engine/synth.js';
import { metadataSource, tokenizerFromGguf } from '../src/engine/tokenizer/index.js';
import { ModelDir, SHAPES } from './helpers/models.js';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'butterfly-memory-'));
const models = new ModelDir();
afterAll(() => {
  fs.rmSync(dir, { recursive: true, force: true });
  models.cleanup();
});
let fileNo = 0;
const tmpFile = (stem: string): string => path.join(dir, `${stem}-${fileNo++}.gguf`);

const bits = (a: Float32Array): Uint32Array => new Uint32Array(a.buffer, a.byteOffset, a.length);

/** Small layers, a vocabulary large enough that its arrays are deferred. */
const BIG_VOCAB: SynthShape = { dim: 64, nLayers: 2, nHeads: 4, nKvHeads: 2, ffDim: 96, vocabSize: 6000, contextLength: 128 };
const TOKENIZER_KEYS = ['tokenizer.ggml.tokens', 'tokenizer.ggml.scores', 'tokenizer.ggml.token_type', 'tokenizer.ggml.merges'];

describe('GGUF metadata arrays are decoded on first use', () => {
  for (const tokenizer of ['llama', 'gpt2'] as const) {
    it(`a stage without a tokenizer never decodes the vocabulary; the tokenizer reads the same one (${tokenizer})`, () => {
      const synth = synthesizeModel({ shape: BIG_VOCAB, seed: 3, type: 'q8_0', tied: false, tokenizer });
      const p = tmpFile(`vocab-${tokenizer}`);
      writeGguf(p, synth);
      const m = openModel(p);
      const kernels = createKernels({ threads: 1 });
      try {
        const present = TOKENIZER_KEYS.filter((k) => m.file.has(k));
        expect(present.length).toBeGreaterThanOrEqual(tokenizer === 'gpt2' ? 2 : 3);
        for (const k of present) expect(m.file.isLoaded(k), k).toBe(false);
        expect(m.file.isLoaded('general.architecture')).toBe(true);

        // What a worker (or the benchmark) does: load the weights and run, no tokenizer.
        const stage = loadStage(m, wholeModel(m.cfg), kernels);
        stage.forward({ nTokens: 3, seqIds: new Int32Array(3), positions: Int32Array.of(0, 1, 2), tokens: Int32Array.of(1, 5, 9) });
        for (const k of present) expect(m.file.isLoaded(k), k).toBe(false);

        const fromFile = tokenizerFromGguf(m.file);
        expect(m.file.isLoaded('tokenizer.ggml.tokens')).toBe(true);
        const written = new Map(synth.metadata);
        expect(m.file.getStringArray('tokenizer.ggml.tokens')).toEqual(written.get('tokenizer.ggml.tokens')!.value);
        const fromEntries = tokenizerFromGguf(metadataSource(synth.metadata));
        expect(fromFile.vocabSize).toBe(BIG_VOCAB.vocabSize);
        for (const text of ['Hello world, the quick brown fox.', '  spaces\tand\nnewlines 12345 ünïcödé']) {
          expect(fromFile.encode(text)).toEqual(fromEntries.encode(text));
        }
      } finally {
        kernels.dispose();
        m.file.close();
      }
    });
  }

  it('a deferred array decodes to the written values for every numeric and string item type, also after close()', () => {
    const n = 10_000; // every array below is ≥ LAZY_ARRAY_MIN_BYTES except the small ones
    const ints = (f: (i: number) => number): number[] => Array.from({ length: n }, (_, i) => f(i));
    const metadata: Array<[string, GgufMetaEntry]> = [
      ['big.str', meta.strArr(ints((i) => i).map((i) => `t${i}▁${'é'.repeat(i % 5)}`))],
      ['big.f32', meta.f32Arr(ints((i) => -i / 7))],
      ['big.f64', meta.f64Arr(ints((i) => i / 3))],
      ['big.i32', meta.i32Arr(ints((i) => i * 40503 - 2 ** 30))],
      ['big.u32', meta.u32Arr(ints((i) => (i * 858993) >>> 0))],
      ['big.u8', meta.u8Arr(Array.from({ length: 4 * n }, (_, i) => i & 0xff))],
      ['big.i8', meta.i8Arr(Array.from({ length: 4 * n }, (_, i) => (i % 256) - 128))],
      ['big.u16', meta.arr(GgufValueType.UINT16, ints((i) => (i * 13) & 0xffff))],
      ['big.i16', meta.arr(GgufValueType.INT16, ints((i) => ((i * 13) & 0xffff) - 0x8000))],
      ['big.u64', meta.arr(GgufValueType.UINT64, ints((i) => i).map((i) => BigInt(i) * 2n ** 40n))],
      ['big.i64', meta.arr(GgufValueType.INT64, ints((i) => i).map((i) => -BigInt(i) * 2n ** 40n))],
      // Decoded at open: BOOL items are checked one by one, nested arrays are rare, small arrays are cheap.
      ['big.bool', meta.boolArr(Array.from({ length: 4 * n }, (_, i) => i % 3 === 0))],
      ['nested', meta.nested([{ itemType: GgufValueType.INT32, value: new Int32Array([1, 2]) }])],
      ['small.str', meta.strArr(['a', 'b'])],
      ['after', meta.u32(7)],
    ];
    const p = tmpFile('types');
    writeGguf(p, { metadata, tensors: [] });
    const plain = (v: unknown): unknown => (ArrayBuffer.isView(v) ? Array.from(v as unknown as ArrayLike<number>) : v);
    const g = openGguf(p);
    const deferred = metadata.map(([k]) => k).filter((k) => k.startsWith('big.') && k !== 'big.bool');
    for (const [k] of metadata) expect(g.isLoaded(k), k).toBe(!deferred.includes(k));
    expect(g.getNumber('after')).toBe(7);
    // Read half now, half after close (reopened by path: the file is unchanged).
    const [now, later] = [deferred.slice(0, 5), deferred.slice(5)];
    const written = new Map(metadata);
    for (const k of now) expect(plain(g.entry(k)!.value), k).toEqual(plain(written.get(k)!.value));
    g.close();
    for (const k of later) {
      const e = g.entry(k)!;
      expect({ ...e }.value, `${k} (spread copies the value)`).toBeDefined();
      expect(plain(e.value), k).toEqual(plain(written.get(k)!.value));
      expect(g.isLoaded(k)).toBe(true);
    }
    expect(g.getFloat32Array('big.f32')).toBeInstanceOf(Float32Array);
    expect(g.getStringArray('big.str')[4]).toBe('t4▁éééé');
    expect(LAZY_ARRAY_MIN_BYTES).toBeLessThanOrEqual(4 * n);
  });

  it('refuses to decode a deferred array from a file replaced after open', () => {
    const p = tmpFile('replaced');
    const tokens = Array.from({ length: 4000 }, (_, i) => `tok${i}`);
    writeGguf(p, { metadata: [['tokenizer.ggml.tokens', meta.strArr(tokens)]], tensors: [] });
    const g = openGguf(p);
    g.close();
    writeGguf(p, { metadata: [['tokenizer.ggml.tokens', meta.strArr(tokens.map((t) => t + 'x'))]], tensors: [] });
    expect(() => g.getStringArray('tokenizer.ggml.tokens')).toThrow(GgufError);
    expect(() => g.getStringArray('tokenizer.ggml.tokens')).toThrow(/changed since it was opened/);
  });
});

/**
 * The forward pass of Stage written out with a fresh array for every intermediate: what Stage computes with its
 * shared activation block must have these bits.
 */
function referenceLogits(cfg: LlamaConfig, w: StageWeights, kernels: Kernels, tokens: readonly number[]): Float32Array {
  const n = tokens.length;
  const { dim, headDim, nHeads, nKvHeads, ffDim, vocabSize, rmsEps } = cfg;
  const qDim = nHeads * headDim;
  const kvDim = nKvHeads * headDim;
  const x = new Float32Array(n * dim);
  const row = new Float32Array(dim);
  tokens.forEach((id, t) => {
    kernels.getRow(row, w.embedding!, id);
    x.set(row, t * dim);
  });
  const positions = Int32Array.from({ length: n }, (_, i) => i);
  const rope = new RopeTable(cfg.ropeDims, cfg.ropeFreqBase, w.ropeFreqFactors);
  const { cos, sin } = rope.upTo(n);
  const ropeArgs = { nTok: n, headDim, ropeDims: rope.ropeDims, neox: cfg.ropeStyle === 'neox', positions, cos, sin };
  for (const lw of w.layers) {
    const xb = new Float32Array(n * dim);
    kernels.rmsNorm(xb, x, lw.attnNorm, n, dim, rmsEps);
    const q = new Float32Array(n * qDim);
    const k = new Float32Array(n * kvDim);
    const v = new Float32Array(n * kvDim);
    kernels.matmul(q, lw.wq, xb, n);
    kernels.matmul(k, lw.wk, xb, n);
    kernels.matmul(v, lw.wv, xb, n);
    kernels.rope(q, { ...ropeArgs, nHeads });
    kernels.rope(k, { ...ropeArgs, nHeads: nKvHeads });
    const att = new Float32Array(n * qDim);
    kernels.attention(att, {
      nTok: n, nHeads, nKvHeads, headDim, q, nPos: Int32Array.from(positions, (p) => p + 1), cacheOf: new Int32Array(n), keys: [k], values: [v],
    });
    const o = new Float32Array(n * dim);
    kernels.matmul(o, lw.wo, att, n);
    kernels.add(x, o, n * dim);
    const xf = new Float32Array(n * dim);
    kernels.rmsNorm(xf, x, lw.ffnNorm, n, dim, rmsEps);
    const gate = new Float32Array(n * ffDim);
    const up = new Float32Array(n * ffDim);
    kernels.matmul(gate, lw.wGate, xf, n);
    kernels.matmul(up, lw.wUp, xf, n);
    kernels.swiglu(gate, up, n * ffDim);
    const down = new Float32Array(n * dim);
    kernels.matmul(down, lw.wDown, gate, n);
    kernels.add(x, down, n * dim);
  }
  const xn = new Float32Array(n * dim);
  kernels.rmsNorm(xn, x, w.outputNorm!, n, dim, rmsEps);
  const logits = new Float32Array(n * vocabSize);
  kernels.matmul(logits, w.output!, xn, n);
  return logits;
}

describe("a layer's activations share one block", () => {
  const prompt = [1, 17, 250, 31, 99, 5, 300, 44, 12, 87, 150, 201, 7, 64, 3, 11, 90];
  // Types without a kernel-specific weight layout, so the reference reads exactly the bytes the stage does.
  const cases: Array<[string, SynthShape, SynthTypeName]> = [['tiny', SHAPES.tiny, 'q8_0'], ['odd', SHAPES.odd, 'f32'], ['mha', SHAPES.mha, 'q8_0']];
  for (const prefer of ['native', 'ts'] as const) {
    for (const [name, shape, type] of cases) {
      it(`gives the bits of separate buffers (${name} ${type}, ${prefer} kernels)`, () => {
        const kernels = createKernels({ threads: 2, prefer });
        const m = openModel(models.model(name, shape, type));
        try {
          const range = wholeModel(m.cfg);
          const stage = loadStage(m, range, kernels);
          const n = prompt.length;
          const got = stage.forward({ nTokens: n - 1, seqIds: new Int32Array(n - 1), positions: Int32Array.from({ length: n - 1 }, (_, i) => i), tokens: Int32Array.from(prompt.slice(0, -1)) }).logits!;
          const last = stage.forward({ nTokens: 1, seqIds: Int32Array.of(0), positions: Int32Array.of(n - 1), tokens: Int32Array.of(prompt[n - 1]!) }).logits!;
          const names = stageTensorNames(m.cfg, range, m.hasRopeFreqs);
          const weights = loadStageWeights(m.cfg, range, fileTensorSource(m.file, { mode: 'read', names }), m.hasRopeFreqs);
          const want = referenceLogits(m.cfg, weights, kernels, prompt);
          const V = m.cfg.vocabSize;
          expect(bits(got)).toEqual(bits(want.subarray(0, (n - 1) * V)));
          expect(bits(last)).toEqual(bits(want.subarray((n - 1) * V)));
        } finally {
          kernels.dispose();
          m.file.close();
        }
      });
    }
  }

  it('holds n × (dim + 2 ffDim) floats per layer block for a batch of n, plus the hidden state', () => {
    const kernels = createKernels({ threads: 1 });
    const m = openModel(models.model('tiny', SHAPES.tiny, 'q8_0'));
    try {
      const stage = loadStage(m, wholeModel(m.cfg), kernels);
      const { dim, ffDim } = m.cfg;
      const n = 100;
      stage.forward({
        nTokens: n, seqIds: new Int32Array(n), positions: Int32Array.from({ length: n }, (_, i) => i),
        tokens: Int32Array.from({ length: n }, (_, i) => (i * 7) % m.cfg.vocabSize), logitRows: Int32Array.of(n - 1),
      });
      // The layer block (n × (dim + 2 ffDim), regions 64-byte aligned), the hidden state x (n × dim), one embedding
      // row and one normalized row for the logits. A buffer per intermediate held n × (5 dim + 2 kvDim + 2 ffDim).
      const floats = n * (dim + 2 * ffDim) + 3 * 16 + n * dim + 2 * dim;
      expect(stage.activationBytes).toBeLessThanOrEqual(4 * floats);
      expect(stage.activationBytes).toBeGreaterThanOrEqual(4 * (n * (2 * dim + 2 * ffDim)));
    } finally {
      kernels.dispose();
      m.file.close();
    }
  });
});

describe('a sequence KV cache grows in place', () => {
  it('keeps its arrays and contents, and commits only the granules needed', () => {
    const kvDim = 8;
    const c = new SequenceKvCache(2, kvDim, 1000);
    const keys = c.keys.slice();
    const values = c.values.slice();
    expect(keys[0]!.length).toBe(64 * kvDim);
    keys[0]!.forEach((_, i, a) => (a[i] = i + 0.5));
    values[1]!.forEach((_, i, a) => (a[i] = -i));
    c.length = 64;
    const bytesPerPosition = 2 * 2 * kvDim * 4;
    for (const [need, capacity] of [[65, 128], [129, 192], [193, 256], [300, 320], [999, 1000]] as const) {
      c.reserve(need);
      expect(c.bytes, `reserve(${need})`).toBe(capacity * bytesPerPosition);
      for (let l = 0; l < 2; l++) {
        // The same arrays, grown: nothing to copy, no old array left as garbage.
        expect(c.keys[l]).toBe(keys[l]);
        expect(c.values[l]).toBe(values[l]);
        expect(c.keys[l]!.length).toBe(capacity * kvDim);
      }
    }
    expect(Array.from(keys[0]!.subarray(0, 64 * kvDim))).toEqual(Array.from({ length: 64 * kvDim }, (_, i) => i + 0.5));
    expect(Array.from(values[1]!.subarray(0, 64 * kvDim))).toEqual(Array.from({ length: 64 * kvDim }, (_, i) => -i));
    expect(() => c.reserve(1001)).toThrow(RangeError);
  });
});
