import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ByteSink, encodeEntry } from '../src/engine/gguf/encode.js';
import {
  GGMLType,
  GgufError,
  GgufValueType,
  TYPE_TRAITS,
  meta,
  openGguf,
  writeGguf,
  type GgufFile,
  type GgufMetaEntry,
  type GgufTensorToWrite,
} from '../src/engine/gguf/index.js';

let dir: string;
beforeAll(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'butterfly-gguf-'));
});
afterAll(() => {
  fs.rmSync(dir, { recursive: true, force: true });
});

let fileNo = 0;
function tmpFile(stem = 'm'): string {
  return path.join(dir, `${stem}-${fileNo++}.gguf`);
}

/** Deterministic pseudo-random bytes (xorshift32), so failures reproduce. */
function randomBytes(n: number, seed: number): Uint8Array {
  const out = new Uint8Array(n);
  let s = seed >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    s ^= s << 13; s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5; s >>>= 0;
    out[i] = s & 0xff;
  }
  return out;
}

function tensor(name: string, type: GGMLType, dims: number[], seed: number): GgufTensorToWrite {
  const tr = TYPE_TRAITS[type]!;
  const elements = dims.reduce((a, b) => a * b, 1);
  return { name, type, dims, data: randomBytes((elements / tr.blockSize) * tr.bytesPerBlock, seed) };
}

function withFile<T>(p: string, f: (g: GgufFile) => T): T {
  const g = openGguf(p);
  try {
    return f(g);
  } finally {
    g.close();
  }
}

/** Opens and reads every tensor; returns the error thrown, if any. */
function openAndReadAll(p: string): unknown {
  try {
    withFile(p, (g) => {
      for (const t of g.tensors) g.readTensorBytes(t.name);
    });
    return undefined;
  } catch (e) {
    return e;
  }
}

function expectGgufError(f: () => unknown, ...fragments: string[]): GgufError {
  let caught: unknown;
  try {
    f();
  } catch (e) {
    caught = e;
  }
  expect(caught).toBeInstanceOf(GgufError);
  const err = caught as GgufError;
  for (const frag of fragments) expect(err.message).toContain(frag);
  return err;
}

const ALL_VALUE_METADATA: Array<readonly [string, GgufMetaEntry]> = [
  ['general.architecture', meta.str('llama')],
  ['t.u8', meta.u8(255)],
  ['t.i8', meta.i8(-128)],
  ['t.u16', meta.u16(65535)],
  ['t.i16', meta.i16(-32768)],
  ['t.u32', meta.u32(4294967295)],
  ['t.i32', meta.i32(-2147483648)],
  ['t.f32', meta.f32(0.1)],
  ['t.f64', meta.f64(Math.PI)],
  ['t.bool.true', meta.bool(true)],
  ['t.bool.false', meta.bool(false)],
  ['t.str.empty', meta.str('')],
  ['t.str.unicode', meta.str('héllo ▁wörld 🦋')],
  ['t.u64', meta.u64((1n << 64n) - 1n)],
  ['t.u64.small', meta.u64(12345n)],
  ['t.i64', meta.i64(-(1n << 63n))],
  ['t.arr.str', meta.strArr(['<s>', '</s>', '', '▁the', '🦋'])],
  ['t.arr.f32', meta.f32Arr([1.5, -2.25, 0, 3e-8])],
  ['t.arr.f64', meta.f64Arr([Math.E, -1e300])],
  ['t.arr.i32', meta.i32Arr([1, -2, 2147483647])],
  ['t.arr.u32', meta.u32Arr([0, 4294967295])],
  ['t.arr.u8', meta.u8Arr([0, 1, 255])],
  ['t.arr.i8', meta.i8Arr([-128, 0, 127])],
  ['t.arr.bool', meta.boolArr([true, false, true])],
  ['t.arr.u16', meta.arr(GgufValueType.UINT16, [0, 65535])],
  ['t.arr.i16', meta.arr(GgufValueType.INT16, [-32768, 7])],
  ['t.arr.u64', meta.arr(GgufValueType.UINT64, [0n, (1n << 64n) - 1n])],
  ['t.arr.i64', meta.arr(GgufValueType.INT64, [-5n, 1n << 62n])],
  ['t.arr.empty', meta.arr(GgufValueType.INT32, new Int32Array(0))],
  [
    't.arr.nested',
    meta.nested([
      { itemType: GgufValueType.STRING, value: ['a', 'bc'] },
      { itemType: GgufValueType.INT32, value: new Int32Array([7, 8]) },
      { itemType: GgufValueType.ARRAY, value: [{ itemType: GgufValueType.BOOL, value: [false] }] },
    ]),
  ],
];

function toPlain(v: unknown): unknown {
  if (ArrayBuffer.isView(v)) return Array.from(v as unknown as ArrayLike<number>);
  if (Array.isArray(v)) return v.map(toPlain);
  if (v && typeof v === 'object') return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, toPlain(x)]));
  return v;
}

describe('GGUF round trip', () => {
  it('keeps every metadata value type, in order, with typed arrays for numeric arrays', () => {
    const p = tmpFile();
    writeGguf(p, { metadata: ALL_VALUE_METADATA, tensors: [] });
    withFile(p, (g) => {
      expect(g.version).toBe(3);
      expect(g.alignment).toBe(32);
      expect([...g.metadata.keys()]).toEqual(ALL_VALUE_METADATA.map(([k]) => k));
      for (const [key, entry] of ALL_VALUE_METADATA) {
        const got = g.metadata.get(key)!;
        expect(got.type, key).toBe(entry.type);
        if (entry.type === GgufValueType.ARRAY && got.type === GgufValueType.ARRAY) expect(got.itemType, key).toBe(entry.itemType);
        expect(toPlain(got.value), key).toEqual(toPlain(entry.value));
      }
      expect(g.getArray('t.arr.f32')).toBeInstanceOf(Float32Array);
      expect(g.getArray('t.arr.i32')).toBeInstanceOf(Int32Array);
      expect(g.getArray('t.arr.u32')).toBeInstanceOf(Uint32Array);
      expect(g.getArray('t.arr.u8')).toBeInstanceOf(Uint8Array);
      expect(g.getArray('t.arr.i8')).toBeInstanceOf(Int8Array);
      expect(g.getArray('t.arr.f64')).toBeInstanceOf(Float64Array);
      expect(g.getFloat32Array('t.arr.f32')[1]).toBe(-2.25);
      expect(g.getStringArray('t.arr.str')[3]).toBe('▁the');
      expect(g.getInt32Array('t.arr.i32')[2]).toBe(2147483647);
    });
  });

  it('getters convert numbers, apply fallbacks and name the key on errors', () => {
    const p = tmpFile('getters');
    writeGguf(p, { metadata: ALL_VALUE_METADATA, tensors: [] });
    withFile(p, (g) => {
      expect(g.getString('general.architecture')).toBe('llama');
      expect(g.getNumber('t.u8')).toBe(255);
      expect(g.getNumber('t.f32')).toBe(Math.fround(0.1));
      expect(g.getNumber('t.u64.small')).toBe(12345);
      expect(g.getBool('t.bool.true')).toBe(true);
      expect(g.has('t.u8')).toBe(true);
      expect(g.has('nope')).toBe(false);
      expect(g.getNumber('nope', 7)).toBe(7);
      expect(g.getString('nope', 'x')).toBe('x');
      expect(g.getBool('nope', false)).toBe(false);
      const e = expectGgufError(() => g.getNumber('nope'), p, "key 'nope'", 'missing');
      expect(e.key).toBe('nope');
      expectGgufError(() => g.getString('t.u32'), "key 't.u32'", 'UINT32');
      expectGgufError(() => g.getString('t.u32', 'fallback'), "key 't.u32'");
      expectGgufError(() => g.getNumber('t.u64'), "key 't.u64'", 'too large');
      expectGgufError(() => g.getNumber('t.str.empty'), "key 't.str.empty'");
      expectGgufError(() => g.getArray('t.u8'), "key 't.u8'");
      expectGgufError(() => g.getFloat32Array('t.arr.i32'), "key 't.arr.i32'", 'FLOAT32');
    });
  });

  const TENSORS: GgufTensorToWrite[] = [
    tensor('token_embd.weight', GGMLType.Q8_0, [64, 5], 1),
    tensor('output_norm.weight', GGMLType.F32, [7], 2),
    tensor('blk.0.attn_q.weight', GGMLType.F16, [3, 4], 3),
    tensor('blk.0.attn_k.weight', GGMLType.BF16, [16, 2, 1], 4),
    tensor('blk.0.ffn_up.weight', GGMLType.Q4_0, [32, 3], 5),
    tensor('blk.0.ffn_down.weight', GGMLType.Q4_K, [256, 2], 6),
    tensor('blk.0.ffn_gate.weight', GGMLType.Q5_K, [512, 1], 7),
    tensor('blk.0.attn_v.weight', GGMLType.Q6_K, [256, 3], 8),
  ];

  for (const version of [2, 3] as const) {
    for (const alignment of [32, 64, 8]) {
      it(`writes and reads tensors of several types (v${version}, alignment ${alignment})`, () => {
        const p = tmpFile(`v${version}a${alignment}`);
        writeGguf(p, { metadata: [['general.architecture', meta.str('llama')]], tensors: TENSORS, version, alignment });
        withFile(p, (g) => {
          expect(g.version).toBe(version);
          expect(g.alignment).toBe(alignment);
          expect(g.has('general.alignment')).toBe(alignment !== 32);
          if (alignment !== 32) expect(g.getNumber('general.alignment')).toBe(alignment);
          expect(g.dataOffset % alignment).toBe(0);
          expect(g.tensors.map((t) => t.name)).toEqual(TENSORS.map((t) => t.name));
          let prevEnd = g.dataOffset;
          for (const w of TENSORS) {
            const info = g.requireTensor(w.name);
            expect(info.offset % alignment).toBe(0);
            expect(info.offset).toBeGreaterThanOrEqual(prevEnd);
            prevEnd = info.offset + info.byteLength;
            expect(info.type).toBe(w.type);
            expect(info.dims).toEqual(w.dims);
            expect(info.byteLength).toBe(w.data.length);
            expect(info.elements).toBe(w.dims.reduce((a, b) => a * b, 1));
            const wt = g.readTensor(w.name);
            expect(wt.type).toBe(w.type);
            expect(wt.cols).toBe(w.dims[0]);
            expect(wt.rows).toBe(w.dims[1] ?? 1);
            expect(Buffer.from(wt.data).equals(Buffer.from(w.data))).toBe(true);
          }
          expect(g.fileBytes).toBe(fs.statSync(p).size);
          expect(g.tensorInfo('missing')).toBeUndefined();
          const e = expectGgufError(() => g.readTensor('missing'), "tensor 'missing'");
          expect(e.tensor).toBe('missing');
        });
      });
    }
  }

  it('reads a 100k-token vocabulary (several chunks of header) quickly and exactly', () => {
    const n = 100_000;
    const tokens = Array.from({ length: n }, (_, i) => `tok${i}▁${'x'.repeat(i % 13)}`);
    const scores = Float32Array.from({ length: n }, (_, i) => -i / 7);
    const types = Int32Array.from({ length: n }, (_, i) => (i % 5) + 1);
    const p = tmpFile('vocab');
    writeGguf(p, {
      metadata: [
        ['tokenizer.ggml.tokens', meta.strArr(tokens)],
        ['tokenizer.ggml.scores', meta.f32Arr(scores)],
        ['tokenizer.ggml.token_type', meta.i32Arr(types)],
      ],
      tensors: [tensor('a', GGMLType.F32, [4], 9)],
    });
    expect(fs.statSync(p).size).toBeGreaterThan(2 << 20); // larger than the reader's 1 MiB chunk
    withFile(p, (g) => {
      expect(g.getStringArray('tokenizer.ggml.tokens')).toEqual(tokens);
      expect(g.getFloat32Array('tokenizer.ggml.scores')).toEqual(scores);
      expect(g.getInt32Array('tokenizer.ggml.token_type')).toEqual(types);
      expect(g.readTensor('a').data.length).toBe(16);
    });
  });

  it('is read the same way by an independent reader (node-llama-cpp)', async () => {
    const { readGgufFileInfo } = await import('node-llama-cpp');
    const p = tmpFile('interop');
    writeGguf(p, {
      metadata: [
        ['general.architecture', meta.str('llama')],
        ['llama.block_count', meta.u32(2)],
        ['tokenizer.ggml.tokens', meta.strArr(['a', 'b'])],
      ],
      tensors: TENSORS,
      alignment: 64,
    });
    const info = await readGgufFileInfo(p, { logWarnings: false });
    const m = info.metadata as unknown as { llama: { block_count: number }; general: { alignment: number }; tokenizer: { ggml: { tokens: string[] } } };
    expect(m.llama.block_count).toBe(2);
    expect(m.general.alignment).toBe(64);
    expect(m.tokenizer.ggml.tokens).toEqual(['a', 'b']);
    withFile(p, (g) => {
      expect(info.infoEndOffset).toBe(g.dataOffset);
      const theirs = info.tensorInfo!;
      expect(theirs.map((t) => t.name)).toEqual(g.tensors.map((t) => t.name));
      theirs.forEach((t, i) => {
        const ours = g.tensors[i]!;
        expect(Number(t.offset) + g.dataOffset).toBe(ours.offset);
        expect(t.dimensions.map(Number)).toEqual(ours.dims);
        expect(Number(t.ggmlType)).toBe(ours.type);
      });
    });
  });
});

describe('GGUF writer validation', () => {
  const cases: Array<[string, Parameters<typeof writeGguf>[1], string[]]> = [
    ['wrong data length', { metadata: [], tensors: [{ name: 'w', type: GGMLType.F32, dims: [4], data: new Uint8Array(15) }] }, ["tensor 'w'", '16 bytes']],
    ['duplicate tensor', { metadata: [], tensors: [tensor('w', GGMLType.F32, [1], 1), tensor('w', GGMLType.F32, [1], 2)] }, ["tensor 'w'", 'duplicate']],
    ['row not a block multiple', { metadata: [], tensors: [{ name: 'q', type: GGMLType.Q8_0, dims: [16], data: new Uint8Array(17) }] }, ["tensor 'q'", 'block size 32']],
    ['duplicate key', { metadata: [['k', meta.u8(1)], ['k', meta.u8(2)]], tensors: [] }, ["key 'k'", 'duplicate']],
    ['value does not fit', { metadata: [['k', { type: GgufValueType.UINT8, value: 256 }]], tensors: [] }, ["key 'k'", 'UINT8']],
    ['wrong JS type', { metadata: [['k', { type: GgufValueType.STRING, value: 3 }]], tensors: [] }, ["key 'k'", 'STRING']],
    ['bad array item', { metadata: [['k', meta.arr(GgufValueType.UINT16, [1, 70000])]], tensors: [] }, ["key 'k'", 'UINT16']],
    ['alignment not a power of two', { metadata: [], tensors: [], alignment: 48 }, ['general.alignment', '48']],
    ['alignment conflict', { metadata: [['general.alignment', meta.u32(64)]], tensors: [], alignment: 32 }, ['general.alignment']],
  ];
  for (const [what, contents, fragments] of cases) {
    it(`rejects ${what} and leaves no file behind`, () => {
      const p = tmpFile('bad');
      expectGgufError(() => writeGguf(p, contents), p, ...fragments);
      expect(fs.existsSync(p)).toBe(false);
      expect(fs.existsSync(`${p}.tmp`)).toBe(false);
    });
  }

  it('takes the alignment from a general.alignment entry', () => {
    const p = tmpFile('metaalign');
    writeGguf(p, { metadata: [['general.alignment', meta.u32(128)]], tensors: [tensor('a', GGMLType.F32, [3], 1)] });
    withFile(p, (g) => {
      expect(g.alignment).toBe(128);
      expect(g.requireTensor('a').offset % 128).toBe(0);
    });
  });

  it('replaces an existing file atomically', () => {
    const p = tmpFile('replace');
    writeGguf(p, { metadata: [['x', meta.u32(1)]], tensors: [] });
    writeGguf(p, { metadata: [['x', meta.u32(2)]], tensors: [] });
    expect(withFile(p, (g) => g.getNumber('x'))).toBe(2);
    expect(fs.existsSync(`${p}.tmp`)).toBe(false);
  });
});

/** Hand-assembled GGUF bytes for corrupt and unusual files the writer refuses to make. */
interface RawTensor { name: string; dims: number[]; type: number; relOffset: number }
function rawGguf(opts: { magic?: string; version?: number; kv?: Array<[string, GgufMetaEntry]>; tensors?: RawTensor[]; dataBytes?: number; alignment?: number }): Uint8Array {
  const out = new ByteSink();
  out.bytes(Buffer.from(opts.magic ?? 'GGUF', 'latin1'));
  out.u32(opts.version ?? 3);
  const tensors = opts.tensors ?? [];
  const kv = opts.kv ?? [];
  out.u64(tensors.length);
  out.u64(kv.length);
  for (const [k, e] of kv) encodeEntry(out, k, e);
  for (const t of tensors) {
    out.str(t.name);
    out.u32(t.dims.length);
    for (const d of t.dims) out.u64(d);
    out.u32(t.type);
    out.u64(t.relOffset);
  }
  const alignment = opts.alignment ?? 32;
  out.zeros((alignment - (out.length % alignment)) % alignment);
  out.zeros(opts.dataBytes ?? 0);
  return out.view().slice();
}

function writeRaw(bytes: Uint8Array): string {
  const p = tmpFile('raw');
  fs.writeFileSync(p, bytes);
  return p;
}

describe('GGUF reader rejects bad files with one GgufError naming file and culprit', () => {
  it('bad magic', () => {
    const p = writeRaw(rawGguf({ magic: 'GGML' }));
    expectGgufError(() => openGguf(p), p, 'not a GGUF file');
  });

  it('empty and tiny files', () => {
    expectGgufError(() => openGguf(writeRaw(new Uint8Array(0))), 'too short');
    expectGgufError(() => openGguf(writeRaw(Buffer.from('GGUF'))), 'too short');
  });

  it('missing file and directories', () => {
    expectGgufError(() => openGguf(path.join(dir, 'does-not-exist.gguf')), 'does-not-exist.gguf', 'cannot open');
    expectGgufError(() => openGguf(dir), dir);
  });

  it('version 1 and unknown versions', () => {
    expectGgufError(() => openGguf(writeRaw(rawGguf({ version: 1 }))), 'unsupported GGUF version 1');
    expectGgufError(() => openGguf(writeRaw(rawGguf({ version: 4 }))), 'unsupported GGUF version 4');
  });

  it('big-endian files', () => {
    const bytes = rawGguf({ version: 3 });
    Buffer.from(bytes.buffer).writeUInt32BE(3, 4);
    expectGgufError(() => openGguf(writeRaw(bytes)), 'big-endian');
  });

  it('string length larger than the file', () => {
    const bytes = rawGguf({ kv: [['general.name', meta.str('abc')]] });
    // The value's u64 length sits after magic, version, counts, key (8 + 12 bytes) and value type.
    Buffer.from(bytes.buffer).writeBigUInt64LE(1n << 40n, 24 + 8 + 12 + 4);
    expectGgufError(() => openGguf(writeRaw(bytes)), "key 'general.name'", 'length of value');
  });

  it('absurd counts', () => {
    const bytes = rawGguf({});
    Buffer.from(bytes.buffer).writeBigUInt64LE(1n << 62n, 8);
    expectGgufError(() => openGguf(writeRaw(bytes)), 'tensor count');
    const arr = rawGguf({ kv: [['a', meta.f32Arr([1])]] });
    Buffer.from(arr.buffer).writeBigUInt64LE(1n << 50n, 24 + 8 + 1 + 4 + 4);
    expectGgufError(() => openGguf(writeRaw(arr)), "key 'a'", 'array length');
  });

  it('unknown value type and invalid bool', () => {
    const bytes = rawGguf({ kv: [['k', meta.u8(1)]] });
    Buffer.from(bytes.buffer).writeUInt32LE(13, 24 + 8 + 1);
    expectGgufError(() => openGguf(writeRaw(bytes)), "key 'k'", 'unknown value type 13');
    const b = rawGguf({ kv: [['k', meta.bool(true)]] });
    b[24 + 8 + 1 + 4] = 2;
    expectGgufError(() => openGguf(writeRaw(b)), "key 'k'", 'bool');
  });

  it('arrays nested too deep', () => {
    const out = new ByteSink();
    out.bytes(Buffer.from('GGUF'));
    out.u32(3); out.u64(0); out.u64(1);
    // Encode by hand: the writer refuses depth > 8, which is the point.
    out.str('deep');
    out.u32(GgufValueType.ARRAY);
    for (let i = 0; i < 20; i++) { out.u32(GgufValueType.ARRAY); out.u64(1); }
    out.u32(GgufValueType.UINT8); out.u64(0);
    expectGgufError(() => openGguf(writeRaw(out.view().slice())), "key 'deep'", 'nested');
  });

  it('duplicate keys and tensor names, misaligned and overlapping offsets, bad alignment', () => {
    expectGgufError(() => openGguf(writeRaw(rawGguf({ kv: [['k', meta.u8(1)], ['k', meta.u8(1)]] }))), "key 'k'", 'duplicate');
    const two = (a: RawTensor, b: RawTensor) => writeRaw(rawGguf({ tensors: [a, b], dataBytes: 256 }));
    expectGgufError(() => openGguf(two({ name: 'x', dims: [4], type: 0, relOffset: 0 }, { name: 'x', dims: [4], type: 0, relOffset: 32 })), "tensor 'x'", 'duplicate');
    expectGgufError(() => openGguf(two({ name: 'x', dims: [4], type: 0, relOffset: 0 }, { name: 'y', dims: [4], type: 0, relOffset: 40 })), "tensor 'y'", 'not a multiple of the alignment 32');
    expectGgufError(() => openGguf(two({ name: 'x', dims: [16], type: 0, relOffset: 0 }, { name: 'y', dims: [4], type: 0, relOffset: 32 })), "tensor 'y'", 'overlaps');
    expectGgufError(() => openGguf(writeRaw(rawGguf({ kv: [['general.alignment', meta.u32(24)]] }))), "key 'general.alignment'", 'power of two');
    expectGgufError(() => openGguf(writeRaw(rawGguf({ kv: [['general.alignment', meta.u64(32n)]] }))), "key 'general.alignment'", 'UINT32');
    expectGgufError(() => openGguf(writeRaw(rawGguf({ tensors: [{ name: 'big', dims: [1, 2, 3, 4, 5], type: 0, relOffset: 0 }] }))), "tensor 'big'", 'dimensions');
  });

  it('tensor data past the end of the file', () => {
    const p = writeRaw(rawGguf({ tensors: [{ name: 'blk.3.attn_q.weight', dims: [64, 64], type: 0, relOffset: 0 }], dataBytes: 100 }));
    const e = expectGgufError(() => openGguf(p), p, "tensor 'blk.3.attn_q.weight'", 'data ends at byte', 'truncated');
    expect(e.tensor).toBe('blk.3.attn_q.weight');
  });

  it('opens files with unsupported tensor types; only reading them fails, naming type and tensor', () => {
    const p = writeRaw(
      rawGguf({
        tensors: [
          { name: 'ok', dims: [4], type: GGMLType.F32, relOffset: 0 },
          { name: 'q41', dims: [32, 2], type: 3, relOffset: 32 },
          { name: 'alien', dims: [8], type: 200, relOffset: 96 },
          { name: 'q8k', dims: [256], type: GGMLType.Q8_K, relOffset: 128 },
          { name: 'cube', dims: [4, 2, 2], type: GGMLType.F32, relOffset: 448 },
        ],
        dataBytes: 512,
      }),
    );
    withFile(p, (g) => {
      expect(g.readTensor('ok').data.length).toBe(16);
      expect(g.requireTensor('q41').byteLength).toBe(40);
      expect(g.requireTensor('alien').byteLength).toBe(-1);
      expectGgufError(() => g.readTensor('q41'), "tensor 'q41'", 'Q4_1', 'ggml type 3');
      expectGgufError(() => g.readTensor('alien'), "tensor 'alien'", 'ggml type 200');
      expectGgufError(() => g.readTensor('q8k'), "tensor 'q8k'", 'Q8_K');
      expectGgufError(() => g.readTensor('cube'), "tensor 'cube'", '[4, 2, 2]');
      expect(g.readTensorBytes('q41').length).toBe(40);
    });
  });

  it('refuses to read after close', () => {
    const p = tmpFile('closed');
    writeGguf(p, { metadata: [], tensors: [tensor('a', GGMLType.F32, [4], 1)] });
    const g = openGguf(p);
    g.close();
    g.close();
    expectGgufError(() => g.readTensor('a'), "tensor 'a'", 'closed');
  });
});

describe('GGUF reader on damaged files', () => {
  const source = tmpFileBytes();
  function tmpFileBytes(): { bytes: () => Uint8Array; lastDataEnd: () => number } {
    let cached: { bytes: Uint8Array; lastDataEnd: number } | undefined;
    const load = () => {
      if (!cached) {
        const p = tmpFile('src');
        writeGguf(p, {
          metadata: [
            ['general.architecture', meta.str('llama')],
            ['tokenizer.ggml.tokens', meta.strArr(['a', 'bb', 'ccc'])],
            ['tokenizer.ggml.scores', meta.f32Arr([0, -1, -2])],
            ['t.u64', meta.u64(5n)],
            ['t.nested', meta.nested([{ itemType: GgufValueType.BOOL, value: [true] }])],
          ],
          tensors: [tensor('w', GGMLType.Q8_0, [32, 2], 1), tensor('n', GGMLType.F32, [5], 2)],
        });
        const lastDataEnd = withFile(p, (g) => Math.max(...g.tensors.map((t) => t.offset + t.byteLength)));
        cached = { bytes: new Uint8Array(fs.readFileSync(p)), lastDataEnd };
      }
      return cached;
    };
    return { bytes: () => load().bytes, lastDataEnd: () => load().lastDataEnd };
  }

  it('every truncation before the end of the tensor data gives a GgufError; cutting only padding does not', () => {
    const bytes = source.bytes();
    const p = tmpFile('cut');
    let failures = 0;
    for (let cut = 0; cut < bytes.length; cut++) {
      fs.writeFileSync(p, bytes.subarray(0, cut));
      const err = openAndReadAll(p);
      if (cut < source.lastDataEnd()) {
        expect(err, `cut at ${cut}`).toBeInstanceOf(GgufError);
        expect((err as GgufError).message.startsWith(p), `cut at ${cut}`).toBe(true);
        failures++;
      } else {
        expect(err, `cut at ${cut}`).toBeUndefined();
      }
    }
    expect(failures).toBe(source.lastDataEnd());
  });

  it('random byte changes never crash with anything but a GgufError', () => {
    const bytes = source.bytes();
    const p = tmpFile('fuzz');
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.nat(bytes.length - 1), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 4 }),
        (edits) => {
          const copy = bytes.slice();
          for (const [at, v] of edits) copy[at] = v;
          fs.writeFileSync(p, copy);
          const err = openAndReadAll(p);
          if (err !== undefined && !(err instanceof GgufError)) throw err;
        },
      ),
      { numRuns: 600, seed: 42 },
    );
  });

  it('edits focused on counts and lengths (high bytes of u64 fields) never crash', () => {
    const bytes = source.bytes();
    const p = tmpFile('fuzz64');
    const headerEnd = withFile(writeRaw(bytes), (g) => g.dataOffset);
    fc.assert(
      fc.property(fc.nat(headerEnd - 1), fc.constantFrom(0x00, 0x01, 0x7f, 0x80, 0xff), (at, v) => {
        const copy = bytes.slice();
        for (let i = at; i < Math.min(at + 4, headerEnd); i++) copy[i] = v;
        fs.writeFileSync(p, copy);
        const err = openAndReadAll(p);
        if (err !== undefined && !(err instanceof GgufError)) throw err;
      }),
      { numRuns: 400, seed: 7 },
    );
  });
});
