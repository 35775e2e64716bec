import { describe, expect, it } from 'vitest';
import { sha256Hex, StageTensorStore, TensorIntegrityError } from '../src/cluster/worker/tensor-store.js';
import { GGMLType } from '../src/engine/gguf/types.js';
import type { TensorRef } from '../src/transport/messages.js';

function tensor(name: string, n: number, seed: number): { ref: TensorRef; bytes: Uint8Array } {
  const bytes = new Uint8Array(n * 4);
  for (let i = 0; i < bytes.length; i++) bytes[i] = (i * 31 + seed) & 0xff;
  return { ref: { name, ggmlType: GGMLType.F32, dims: [n], byteLength: bytes.length, sha256: sha256Hex(bytes) }, bytes };
}

describe('streamed stage tensors', () => {
  it('assembles chunks and verifies each tensor', () => {
    const a = tensor('a', 1000, 1);
    const b = tensor('b', 10, 2);
    const store = new StageTensorStore([a.ref, b.ref]);
    for (let off = 0; off < a.bytes.length; off += 1024) store.addChunk('a', off, a.bytes.length, a.bytes.subarray(off, off + 1024));
    expect(store.complete).toBe(false);
    store.addChunk('b', 0, b.bytes.length, b.bytes);
    expect(store.complete).toBe(true);
    expect(Array.from(store.source()('a').data)).toEqual(Array.from(a.bytes));
  });

  it('refuses a corrupted tensor with a clear message', () => {
    const a = tensor('blk.0.attn_q.weight', 64, 3);
    const store = new StageTensorStore([a.ref]);
    const bad = a.bytes.slice();
    bad[17]! ^= 1;
    expect(() => store.addChunk(a.ref.name, 0, bad.length, bad)).toThrow(/blk\.0\.attn_q\.weight.*checksum/);
    expect(store.complete).toBe(false);
  });

  it('a truncated stream never completes, and the tensor cannot be used', () => {
    const a = tensor('t', 256, 4);
    const store = new StageTensorStore([a.ref]);
    store.addChunk('t', 0, a.bytes.length, a.bytes.subarray(0, 500));
    expect(store.complete).toBe(false);
    expect(() => store.source()('t')).toThrow(TensorIntegrityError);
  });

  it('refuses out-of-order chunks, unknown tensors and wrong sizes', () => {
    const a = tensor('t', 256, 5);
    const store = new StageTensorStore([a.ref]);
    expect(() => store.addChunk('t', 512, a.bytes.length, a.bytes.subarray(512, 600))).toThrow(/expected 0/);
    expect(() => store.addChunk('other', 0, 4, new Uint8Array(4))).toThrow(/not assigned/);
    expect(() => store.addChunk('t', 0, 99, a.bytes.subarray(0, 4))).toThrow(/assignment says/);
  });
});
