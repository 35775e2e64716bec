import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { crc32c } from '../src/transport/crc32c.js';
import { ProtocolError } from '../src/transport/errors.js';
import { BINARY_ALIGN_BYTES, FrameDecoder, HEADER_BYTES, encodeFrame, type Frame, type FrameToEncode } from '../src/transport/frame.js';

function expectProtocolError(fn: () => unknown, code: ProtocolError['code'], text?: RegExp): ProtocolError {
  let caught: unknown;
  try {
    fn();
  } catch (err) {
    caught = err;
  }
  expect(caught).toBeInstanceOf(ProtocolError);
  const pe = caught as ProtocolError;
  expect(pe.code).toBe(code);
  if (text) expect(pe.message).toMatch(text);
  return pe;
}

/** Split `buf` at the given cut points (sorted, deduplicated, within bounds). */
function splitAt(buf: Buffer, cuts: number[]): Buffer[] {
  const points = [...new Set(cuts.map((c) => c % (buf.length + 1)))].sort((a, b) => a - b);
  const out: Buffer[] = [];
  let prev = 0;
  for (const p of points) {
    out.push(buf.subarray(prev, p));
    prev = p;
  }
  out.push(buf.subarray(prev));
  return out;
}

/** JSON values as they survive JSON (so -0 reads back as 0). */
const jsonValue = fc.oneof(
  fc.constant(undefined),
  fc.oneof(
    fc.jsonValue({ maxDepth: 3 }),
    fc.record({ name: fc.string(), n: fc.integer(), list: fc.array(fc.double({ noNaN: true, noDefaultInfinity: true }), { maxLength: 5 }) }),
  ).map((v) => JSON.parse(JSON.stringify(v)) as unknown),
);

const frameArb: fc.Arbitrary<FrameToEncode> = fc.record({
  type: fc.integer({ min: 0, max: 0xffff }),
  flags: fc.integer({ min: 0, max: 0xffff }),
  streamId: fc.oneof(fc.integer({ min: 0, max: 0xffffffff }), fc.maxSafeInteger().map((n) => Math.abs(n))),
  json: jsonValue,
  binary: fc.uint8Array({ maxLength: 3000 }),
});

function sameFrame(got: Frame, want: FrameToEncode): void {
  expect(got.type).toBe(want.type);
  expect(got.flags).toBe(want.flags ?? 0);
  expect(got.streamId).toBe(want.streamId ?? 0);
  expect(got.json).toEqual(want.json);
  expect(Buffer.compare(got.binary, Buffer.from(want.binary ?? new Uint8Array(0)))).toBe(0);
  expect(got.binary.byteOffset % BINARY_ALIGN_BYTES).toBe(0);
}

describe('crc32c', () => {
  it('matches the published check value and known vectors', () => {
    expect(crc32c(Buffer.from('123456789'))).toBe(0xe3069283);
    expect(crc32c(new Uint8Array(0))).toBe(0);
    expect(crc32c(new Uint8Array(32))).toBe(0x8a9136aa); // RFC 3720 B.4: 32 bytes of zeros
    expect(crc32c(new Uint8Array(32).fill(0xff))).toBe(0x62a8ab43); // RFC 3720 B.4: 32 bytes of 0xff
  });

  it('gives the same answer whole, in pieces, and at any alignment', () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 0, maxLength: 600 }), fc.nat(), fc.nat({ max: 7 }), (bytes, cut, shift) => {
        const whole = crc32c(bytes);
        const at = cut % (bytes.length + 1);
        expect(crc32c(bytes.subarray(at), crc32c(bytes.subarray(0, at)))).toBe(whole);
        const shifted = new Uint8Array(bytes.length + shift);
        shifted.set(bytes, shift);
        expect(crc32c(shifted.subarray(shift))).toBe(whole);
        expect(whole).toBe(bitwiseCrc32c(bytes));
      }),
    );
  });
});

/** Reference: one bit at a time, straight from the definition. */
function bitwiseCrc32c(bytes: Uint8Array): number {
  let c = 0xffffffff;
  for (const b of bytes) {
    c ^= b;
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ 0x82f63b78 : c >>> 1;
  }
  return ~c >>> 0;
}

describe('frame codec', () => {
  it('round-trips random frames through random chunk splits', () => {
    fc.assert(
      fc.property(fc.array(frameArb, { minLength: 1, maxLength: 6 }), fc.array(fc.nat(), { maxLength: 12 }), (frames, cuts) => {
        const wire = Buffer.concat(frames.map((f) => encodeFrame(f)));
        const dec = new FrameDecoder();
        const got: Frame[] = [];
        for (const piece of splitAt(wire, cuts)) got.push(...dec.push(piece));
        dec.end();
        expect(got.length).toBe(frames.length);
        got.forEach((g, i) => sameFrame(g, frames[i]!));
      }),
      { numRuns: 300 },
    );
  });

  it('decodes byte-at-a-time', () => {
    const f: FrameToEncode = { type: 0x30, flags: 3, streamId: 2 ** 40 + 7, json: { a: 'ü€' }, binary: Buffer.from('tensor bytes') };
    const dec = new FrameDecoder();
    const got: Frame[] = [];
    for (const b of encodeFrame(f)) got.push(...dec.push(Buffer.of(b)));
    expect(got).toHaveLength(1);
    sameFrame(got[0]!, f);
  });

  it('hands out zero-copy slices when a payload sits in one chunk', () => {
    const wire = encodeFrame({ type: 1, json: { x: 1 }, binary: new Uint8Array(64).fill(7) });
    const [frame] = new FrameDecoder().push(wire);
    expect(frame!.binary.buffer).toBe(wire.buffer);
  });

  it('keeps the binary part aligned so Float32Array views work', () => {
    fc.assert(
      fc.property(fc.string({ maxLength: 30 }), fc.nat({ max: 7 }), (label, shift) => {
        const values = Float32Array.from([1.5, -2.25, 3e-8]);
        const wire = encodeFrame({ type: 0x31, json: { label }, binary: new Uint8Array(values.buffer) });
        const shifted = Buffer.alloc(wire.length + shift);
        wire.copy(shifted, shift);
        const [frame] = new FrameDecoder().push(shifted.subarray(shift));
        const view = new Float32Array(frame!.binary.buffer, frame!.binary.byteOffset, 3);
        expect(Array.from(view)).toEqual(Array.from(values));
      }),
    );
  });

  it('reading one frame at a time leaves the rest queued', () => {
    const dec = new FrameDecoder();
    dec.write(Buffer.concat([encodeFrame({ type: 1, json: 1 }), encodeFrame({ type: 2, json: 2 })]));
    expect(dec.read()?.type).toBe(1);
    expect(dec.unreadBytes).toBeGreaterThan(0);
    expect(dec.read()?.type).toBe(2);
    expect(dec.read()).toBeNull();
    expect(dec.unreadBytes).toBe(0);
  });
});

describe('malformed frames', () => {
  const good = (): Buffer => encodeFrame({ type: 0x21, json: { name: 'blk.0.attn_q.weight' }, binary: Buffer.alloc(256, 0xab) });

  it('rejects a bad magic, e.g. an HTTP client', () => {
    expectProtocolError(() => new FrameDecoder().push(Buffer.from('GET / HTTP/1.1\r\nHost: x\r\n\r\n')), 'bad-magic', /bad frame magic 0x47455420.*Butterfly node/);
  });

  it('rejects an unknown protocol version before reading further', () => {
    const wire = good();
    wire.writeUInt16LE(9, 4);
    expectProtocolError(() => new FrameDecoder().push(wire.subarray(0, 12)), 'unsupported-version', /version 9; this node speaks 1/);
  });

  it('rejects a nonsense header length', () => {
    const wire = good();
    wire.writeUInt16LE(12, 10);
    expectProtocolError(() => new FrameDecoder().push(wire), 'bad-header', /header length 12/);
  });

  it('rejects a corrupted header (length field flipped)', () => {
    const wire = good();
    wire[24]! ^= 0x10; // binary length
    expectProtocolError(() => new FrameDecoder().push(wire), 'header-checksum', /header checksum mismatch/);
  });

  it('catches every single flipped bit in the tensor bytes', () => {
    const wire = good();
    const binaryStart = wire.length - 256;
    for (let bit = 0; bit < 256 * 8; bit += 7) {
      const bad = Buffer.from(wire);
      bad[binaryStart + (bit >> 3)]! ^= 1 << (bit & 7);
      expectProtocolError(() => new FrameDecoder().push(bad), 'binary-checksum', /TENSOR_CHUNK binary part checksum mismatch over 256 bytes/);
    }
  });

  it('catches a flipped bit in the JSON part', () => {
    const wire = good();
    wire[HEADER_BYTES + 3]! ^= 0x04;
    expectProtocolError(() => new FrameDecoder().push(wire), 'json-checksum');
  });

  it('rejects JSON that does not parse even with a valid checksum', () => {
    const wire = encodeFrame({ type: 7, json: 'abc' });
    wire.write('{', HEADER_BYTES, 'latin1'); // overwrite the opening quote
    wire.writeUInt32LE(crc32c(wire.subarray(HEADER_BYTES)), 28);
    wire.writeUInt32LE(crc32c(wire.subarray(0, 36)), 36);
    expectProtocolError(() => new FrameDecoder().push(wire), 'bad-json', /does not parse/);
  });

  it('refuses an oversize frame from its header alone, before allocating', () => {
    const dec = new FrameDecoder({ maxFrameBytes: 1024 });
    const wire = encodeFrame({ type: 0x21, binary: Buffer.alloc(2000) });
    expectProtocolError(() => dec.push(wire.subarray(0, HEADER_BYTES)), 'frame-too-large', /2040 bytes exceeds the limit of 1024/);
  });

  it('refuses a header claiming ~4 GiB', () => {
    const wire = encodeFrame({ type: 0x21 });
    wire.writeUInt32LE(0xfffffff0, 24);
    wire.writeUInt32LE(crc32c(wire.subarray(0, 36)), 36);
    expectProtocolError(() => new FrameDecoder().push(wire), 'frame-too-large');
  });

  it('refuses an oversize JSON part separately from the frame limit', () => {
    const dec = new FrameDecoder({ maxJsonBytes: 64 });
    expectProtocolError(() => dec.push(encodeFrame({ type: 1, json: 'x'.repeat(100) })), 'frame-too-large', /JSON part of 104 bytes/);
  });

  it('the encoder refuses to build a frame over the limit', () => {
    expectProtocolError(() => encodeFrame({ type: 0x21, binary: Buffer.alloc(100) }, { maxFrameBytes: 64, maxJsonBytes: 64 }), 'frame-too-large');
  });

  it('reports a truncated tensor stream at end of input', () => {
    const wire = good();
    const dec = new FrameDecoder();
    expect(dec.push(wire.subarray(0, wire.length - 100))).toEqual([]);
    expectProtocolError(() => dec.end(), 'truncated', /TENSOR_CHUNK frame cut off after \d+ of \d+ payload bytes/);
  });

  it('reports a truncated header at end of input', () => {
    const dec = new FrameDecoder();
    dec.push(good().subarray(0, 17));
    expectProtocolError(() => dec.end(), 'truncated', /header cut off after 17 of 40 bytes/);
  });

  it('stays failed after an error (framing is lost)', () => {
    const dec = new FrameDecoder();
    expectProtocolError(() => dec.push(Buffer.from('nonsense-bytes!!')), 'bad-magic');
    expectProtocolError(() => dec.push(good()), 'bad-magic');
  });

  it('any single corrupted byte of a frame is detected', () => {
    fc.assert(
      fc.property(frameArb, fc.nat(), fc.integer({ min: 1, max: 255 }), (f, at, xor) => {
        const wire = encodeFrame(f);
        wire[at % wire.length]! ^= xor;
        const dec = new FrameDecoder();
        expect(() => {
          dec.push(wire);
          dec.end();
        }).toThrow(ProtocolError);
      }),
      { numRuns: 500 },
    );
  });
});
