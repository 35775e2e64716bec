import { describe, expect, it } from 'vitest';
import { computeProof, generateSecret, resolveSecret, verifyProof, type HandshakeTranscript } from '../src/transport/auth.js';
import { ProtocolError } from '../src/transport/errors.js';
import { FrameDecoder, encodeFrame } from '../src/transport/frame.js';
import { MessageType, decodeMessage, encodeMessage, isMessage, messageTypeName, type ForwardPayload } from '../src/transport/messages.js';
import { bytesOf, viewTensor } from '../src/transport/tensor-bytes.js';

function roundTrip(frame: ReturnType<typeof encodeMessage>): ReturnType<typeof decodeMessage> {
  const [decoded] = new FrameDecoder().push(encodeFrame(frame));
  return decodeMessage(decoded!);
}

describe('messages', () => {
  it('round-trips a FORWARD with hidden states as raw f32 bytes', () => {
    const hidden = Float32Array.from({ length: 2 * 8 }, (_, i) => Math.fround(i / 3 - 2));
    const payload: ForwardPayload = {
      batchId: 42,
      seqIds: [0, 3],
      positions: [17, 4],
      input: { kind: 'hidden', dtype: 'f32', shape: [2, 8] },
      logitRows: [1],
      sampling: [{ sampler: [0.7, 40, 0.95, 0.05, 1.1, 64, 7, 123456789], recent: [5, 6, 7], topLogprobs: 2 }],
    };
    const m = roundTrip(encodeMessage(MessageType.FORWARD, payload, { binary: bytesOf(hidden), streamId: 9 }));
    expect(isMessage(m, MessageType.FORWARD)).toBe(true);
    if (!isMessage(m, MessageType.FORWARD)) return;
    expect(m.payload).toEqual(payload);
    expect(m.streamId).toBe(9);
    const view = viewTensor(m.binary, m.payload.input);
    expect(view).toBeInstanceOf(Float32Array);
    expect(Array.from(view as Float32Array)).toEqual(Array.from(hidden));
  });

  it('reads an older peer\'s FORWARD without sampling specs as raw-logits mode, and rejects a spec count mismatch', () => {
    const base = { batchId: 1, seqIds: [0, 0], positions: [0, 1], input: { kind: 'tokens', dtype: 'i32', shape: [2] }, logitRows: [1] };
    const tokens = bytesOf(Int32Array.from([1, 2]));
    const [f] = new FrameDecoder().push(encodeFrame({ type: MessageType.FORWARD, json: base, binary: tokens }));
    const m = decodeMessage(f!);
    expect(isMessage(m, MessageType.FORWARD) && m.payload.sampling).toBe(null);
    const spec = { sampler: [0, 0, 1, 0, 1, 64, 0, 0], recent: [], topLogprobs: 0 };
    const [g] = new FrameDecoder().push(encodeFrame({ type: MessageType.FORWARD, json: { ...base, sampling: [spec, spec] }, binary: tokens }));
    expect(() => decodeMessage(g!)).toThrow(/2 sampling specs for 1 logit rows/);
  });

  it('round-trips tokens as i32', () => {
    const tokens = Int32Array.from([1, 15043, 3186, 31999]);
    const m = roundTrip(
      encodeMessage(
        MessageType.FORWARD,
        { batchId: 1, seqIds: [0, 0, 0, 0], positions: [0, 1, 2, 3], input: { kind: 'tokens', dtype: 'i32', shape: [4] }, logitRows: [3] },
        { binary: bytesOf(tokens) },
      ),
    );
    if (!isMessage(m, MessageType.FORWARD)) throw new Error('wrong type');
    expect(Array.from(viewTensor(m.binary, { dtype: 'i32', shape: [4] }))).toEqual([1, 15043, 3186, 31999]);
  });

  it('drops unknown fields (forward compatible) but keeps known ones', () => {
    const frame = { type: MessageType.TRUNCATE, json: { seqId: 2, fromPosition: 10, futureField: 'x' } };
    const [f] = new FrameDecoder().push(encodeFrame(frame));
    expect(decodeMessage(f!).payload).toEqual({ seqId: 2, fromPosition: 10 });
  });

  it('names the offending field of a bad payload', () => {
    const [f] = new FrameDecoder().push(encodeFrame({ type: MessageType.JOIN, json: { memoryBytes: -5 } }));
    expect(() => decodeMessage(f!)).toThrow(/JOIN\.memoryBytes must be a non-negative integer, got -5/);
  });

  it('rejects an unknown message type', () => {
    const [f] = new FrameDecoder().push(encodeFrame({ type: 0x7777, json: {} }));
    expect(() => decodeMessage(f!)).toThrow(ProtocolError);
    expect(() => decodeMessage(f!)).toThrow(/unknown message type 0x7777/);
  });

  it('rejects a tensor whose byte count disagrees with its shape', () => {
    const payload = { batchId: 1, output: { kind: 'logits', dtype: 'f32', shape: [1, 10] }, computeMs: 1 };
    const [f] = new FrameDecoder().push(encodeFrame({ type: MessageType.RESULT, json: payload, binary: Buffer.alloc(36) }));
    expect(() => decodeMessage(f!)).toThrow(/needs 40 bytes, frame carries 36/);
  });

  it('rejects FORWARD whose rows disagree with seqIds', () => {
    expect(() =>
      encodeMessage(
        MessageType.FORWARD,
        { batchId: 1, seqIds: [0], positions: [0, 1], input: { kind: 'tokens', dtype: 'i32', shape: [2] }, logitRows: [] },
        { binary: Buffer.alloc(8) },
      ),
    ).toThrow(/2 input rows but 1 seqIds and 2 positions/);
  });

  it('rejects a tensor chunk running past its tensor', () => {
    expect(() => encodeMessage(MessageType.TENSOR_CHUNK, { name: 'w', offset: 90, totalBytes: 100 }, { binary: Buffer.alloc(20) })).toThrow(/runs past/);
  });

  it('rejects binary bytes on a message that carries none', () => {
    expect(() => encodeMessage(MessageType.HEARTBEAT, { seq: 1, sentAtMs: 0 }, { binary: Buffer.alloc(4) })).toThrow(/unexpected binary/);
  });

  it('names types for log lines', () => {
    expect(messageTypeName(MessageType.TENSOR_CHUNK)).toBe('TENSOR_CHUNK');
    expect(messageTypeName(0xbeef)).toBe('type 0xbeef');
  });

  it('viewTensor copies misaligned bytes instead of throwing', () => {
    const src = Buffer.alloc(13);
    src.writeFloatLE(2.5, 1);
    src.writeFloatLE(-1, 5);
    src.writeFloatLE(7, 9);
    expect(Array.from(viewTensor(src.subarray(1), { dtype: 'f32', shape: [3] }))).toEqual([2.5, -1, 7]);
  });
});

describe('auth', () => {
  const t: HandshakeTranscript = {
    protocolVersion: 1,
    clientId: 'w1',
    clientRole: 'worker',
    serverId: 'coord',
    serverRole: 'coordinator',
    clientNonce: 'aa'.repeat(32),
    serverNonce: 'bb'.repeat(32),
  };

  it('accepts the right secret and rejects a wrong one', () => {
    const secret = generateSecret();
    const proof = computeProof(secret, 'client', t);
    expect(proof).toMatch(/^[0-9a-f]{64}$/);
    expect(verifyProof(secret, 'client', t, proof)).toBe(true);
    expect(verifyProof(generateSecret(), 'client', t, proof)).toBe(false);
  });

  it('a client proof cannot be reflected as a server proof', () => {
    const secret = 's3cret';
    expect(verifyProof(secret, 'server', t, computeProof(secret, 'client', t))).toBe(false);
  });

  it('binds every transcript field', () => {
    const secret = 's3cret';
    const proof = computeProof(secret, 'client', t);
    for (const change of [{ clientId: 'w2' }, { serverId: 'x' }, { clientNonce: 'ab'.repeat(32) }, { serverNonce: 'ba'.repeat(32) }, { protocolVersion: 2 }, { clientRole: 'client' }]) {
      expect(verifyProof(secret, 'client', { ...t, ...change }, proof)).toBe(false);
    }
  });

  it('treats malformed proofs as wrong, not as errors', () => {
    expect(verifyProof('k', 'client', t, 'zz')).toBe(false);
    expect(verifyProof('k', 'client', t, '')).toBe(false);
    expect(verifyProof('k', 'client', t, 'ab')).toBe(false);
  });

  it('generates distinct 256-bit secrets', () => {
    const a = generateSecret();
    expect(Buffer.from(a, 'base64url')).toHaveLength(32);
    expect(generateSecret()).not.toBe(a);
  });

  it('prefers --secret over BUTTERFLY_SECRET', () => {
    expect(resolveSecret('flag', { BUTTERFLY_SECRET: 'env' })).toBe('flag');
    expect(resolveSecret(undefined, { BUTTERFLY_SECRET: 'env' })).toBe('env');
    expect(resolveSecret(undefined, {})).toBeUndefined();
  });
});
