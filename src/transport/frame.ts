/**
 * Frame codec. A frame is a fixed little-endian header, a small JSON control part and a raw binary part:
 *
 *   offset size  field
 *        0    4  magic 'BFLY' (bytes 42 46 4C 59)
 *        4    2  protocol version
 *        6    2  message type (see message-types.ts)
 *        8    2  flags
 *       10    2  header length in bytes (40 in version 1; a later version may append fields)
 *       12    8  stream / request id (u64; this implementation uses values up to 2^53-1)
 *       20    4  JSON part length (bytes, including the space padding that 8-aligns the binary part)
 *       24    4  binary part length (bytes)
 *       28    4  CRC-32C of the JSON part
 *       32    4  CRC-32C of the binary part
 *       36    4  CRC-32C of the header (bytes 0..35 and any header bytes after 40)
 *
 * The first 12 bytes keep their meaning in every version, so a peer can always say "wrong version" clearly.
 * Lengths are checked against limits before anything is allocated: a hostile length cannot make us allocate.
 */
import { crc32c } from './crc32c.js';
import { ProtocolError } from './errors.js';
import { messageTypeName } from './message-types.js';

export const FRAME_MAGIC = Buffer.from('BFLY', 'latin1');
export const PROTOCOL_VERSION = 1;
export const HEADER_BYTES = 40;
/** A later version may grow the header; beyond this it is nonsense, not growth. */
const MAX_HEADER_BYTES = 1024;
/** Binary parts start at this alignment inside a frame, so Float64/Float32/Int32 views need no copy. */
export const BINARY_ALIGN_BYTES = 8;
export const DEFAULT_MAX_FRAME_BYTES = 256 * 1024 * 1024;
export const DEFAULT_MAX_JSON_BYTES = 4 * 1024 * 1024;
const MAX_U32 = 0xffffffff;
const TWO_POW_32 = 0x1_0000_0000;

/** Flag bits. Meanings are per message type; the codec carries them opaquely. */
export const FrameFlags = {
  /** Last frame of a multi-frame stream (e.g. the last TENSOR_CHUNK of a tensor). */
  END_OF_STREAM: 1 << 0,
  /** The frame answers the request with the same stream id. */
  REPLY: 1 << 1,
} as const;

export interface Frame {
  readonly version: number;
  readonly type: number;
  readonly flags: number;
  readonly streamId: number;
  /** Parsed JSON control part; `undefined` when the frame has none. */
  readonly json: unknown;
  /** Raw binary part; `byteOffset` is a multiple of BINARY_ALIGN_BYTES. May share memory with other frames. */
  readonly binary: Buffer;
}

export interface FrameToEncode {
  readonly type: number;
  readonly flags?: number;
  readonly streamId?: number;
  readonly json?: unknown;
  readonly binary?: Uint8Array;
  readonly version?: number;
}

export interface FrameLimits {
  /** Largest whole frame (header + JSON + binary) accepted or produced. */
  readonly maxFrameBytes: number;
  /** Largest JSON part; control messages are small, so this is far below maxFrameBytes. */
  readonly maxJsonBytes: number;
}

export const DEFAULT_FRAME_LIMITS: FrameLimits = {
  maxFrameBytes: DEFAULT_MAX_FRAME_BYTES,
  maxJsonBytes: DEFAULT_MAX_JSON_BYTES,
};

function asBuffer(bytes: Uint8Array): Buffer {
  return Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

/**
 * Encode a frame as [header + JSON, binary] so the caller can write both without copying the (large) binary part.
 * Throws ProtocolError('frame-too-large') rather than producing a frame the peer would reject.
 */
export function encodeFrameParts(frame: FrameToEncode, limits: FrameLimits = DEFAULT_FRAME_LIMITS): [Buffer, Buffer] {
  const flags = frame.flags ?? 0;
  const streamId = frame.streamId ?? 0;
  const version = frame.version ?? PROTOCOL_VERSION;
  if (!Number.isInteger(frame.type) || frame.type < 0 || frame.type > 0xffff) throw new RangeError(`frame type ${frame.type} is not a u16`);
  if (!Number.isInteger(flags) || flags < 0 || flags > 0xffff) throw new RangeError(`frame flags ${flags} are not a u16`);
  if (!Number.isInteger(version) || version < 0 || version > 0xffff) throw new RangeError(`protocol version ${version} is not a u16`);
  if (!Number.isSafeInteger(streamId) || streamId < 0) throw new RangeError(`stream id ${streamId} is not a non-negative safe integer`);

  let jsonText = frame.json === undefined ? '' : JSON.stringify(frame.json);
  if (jsonText === undefined) jsonText = ''; // JSON.stringify(() => 1) and friends
  const jsonRawBytes = Buffer.byteLength(jsonText, 'utf8');
  // Space padding is valid JSON whitespace and puts the binary part on an aligned offset.
  const jsonBytes = jsonRawBytes === 0 ? 0 : roundUp(jsonRawBytes, BINARY_ALIGN_BYTES);
  const binary = frame.binary ? asBuffer(frame.binary) : Buffer.alloc(0);
  const total = HEADER_BYTES + jsonBytes + binary.length;
  if (jsonBytes > limits.maxJsonBytes) {
    throw new ProtocolError('frame-too-large', `${messageTypeName(frame.type)} JSON part is ${jsonBytes} bytes; the limit is ${limits.maxJsonBytes}`);
  }
  if (total > limits.maxFrameBytes || binary.length > MAX_U32) {
    throw new ProtocolError('frame-too-large', `${messageTypeName(frame.type)} frame is ${total} bytes; the limit is ${limits.maxFrameBytes}`);
  }

  const head = Buffer.allocUnsafe(HEADER_BYTES + jsonBytes);
  FRAME_MAGIC.copy(head, 0);
  head.writeUInt16LE(version, 4);
  head.writeUInt16LE(frame.type, 6);
  head.writeUInt16LE(flags, 8);
  head.writeUInt16LE(HEADER_BYTES, 10);
  head.writeUInt32LE(streamId % TWO_POW_32, 12);
  head.writeUInt32LE(Math.floor(streamId / TWO_POW_32), 16);
  head.writeUInt32LE(jsonBytes, 20);
  head.writeUInt32LE(binary.length, 24);
  if (jsonBytes > 0) {
    head.write(jsonText, HEADER_BYTES, 'utf8');
    head.fill(0x20, HEADER_BYTES + jsonRawBytes);
  }
  head.writeUInt32LE(crc32c(head.subarray(HEADER_BYTES)), 28);
  head.writeUInt32LE(crc32c(binary), 32);
  head.writeUInt32LE(crc32c(head.subarray(0, 36)), 36);
  return [head, binary];
}

/** One contiguous buffer; convenient for tests and small frames (copies the binary part). */
export function encodeFrame(frame: FrameToEncode, limits: FrameLimits = DEFAULT_FRAME_LIMITS): Buffer {
  const [head, binary] = encodeFrameParts(frame, limits);
  return binary.length === 0 ? head : Buffer.concat([head, binary]);
}

function roundUp(n: number, to: number): number {
  return Math.ceil(n / to) * to;
}

interface ParsedHeader {
  readonly version: number;
  readonly type: number;
  readonly flags: number;
  readonly headerBytes: number;
  readonly streamId: number;
  readonly jsonBytes: number;
  readonly binaryBytes: number;
  readonly jsonCrc: number;
  readonly binaryCrc: number;
}

export interface FrameDecoderOptions extends Partial<FrameLimits> {
  /** Protocol versions this side understands. */
  readonly supportedVersions?: readonly number[];
}

/**
 * Streaming decoder: write socket chunks of any size and split, read whole, verified frames back.
 * `push` does both at once; `write` + `read` let a caller decode one frame at a time (e.g. to change limits
 * between frames). After a ProtocolError the decoder is poisoned (framing is lost) and rethrows the same error.
 */
export class FrameDecoder {
  private limits: FrameLimits;
  private readonly supportedVersions: readonly number[];
  /** Chunks written but not yet fully consumed; `queuePos` indexes into the first. */
  private readonly queue: Buffer[] = [];
  private queuePos = 0;
  private queuedBytes = 0;
  /** Header bytes gathered so far (headers may straddle chunks). */
  private readonly headerBuf = Buffer.alloc(MAX_HEADER_BYTES);
  private headerFilled = 0;
  private header: ParsedHeader | null = null;
  /** Payload (JSON + binary) being assembled when it straddles chunks. */
  private body: Buffer | null = null;
  private bodyFilled = 0;
  private failure: ProtocolError | null = null;
  private framesDecoded = 0;

  constructor(options: FrameDecoderOptions = {}) {
    this.limits = {
      maxFrameBytes: options.maxFrameBytes ?? DEFAULT_MAX_FRAME_BYTES,
      maxJsonBytes: options.maxJsonBytes ?? DEFAULT_MAX_JSON_BYTES,
    };
    this.supportedVersions = options.supportedVersions ?? [PROTOCOL_VERSION];
  }

  /** Tighten or relax limits; applies to frames whose header has not been read yet. */
  setLimits(limits: Partial<FrameLimits>): void {
    this.limits = { ...this.limits, ...limits };
  }

  /** True when part of a frame has been consumed but not all of it. */
  get midFrame(): boolean {
    return this.headerFilled > 0 || this.header !== null;
  }

  /** Bytes written but not yet consumed by `read`. */
  get unreadBytes(): number {
    return this.queuedBytes;
  }

  /** Feed bytes and decode every frame they complete (possibly none, possibly many). */
  push(chunk: Uint8Array): Frame[] {
    this.write(chunk);
    const out: Frame[] = [];
    for (let f = this.read(); f; f = this.read()) out.push(f);
    return out;
  }

  /** Queue bytes without decoding them. The chunk is referenced, not copied: do not reuse it. */
  write(chunk: Uint8Array): void {
    if (this.failure) throw this.failure;
    if (chunk.length === 0) return;
    this.queue.push(asBuffer(chunk));
    this.queuedBytes += chunk.length;
  }

  /** The next complete frame, or null when more bytes are needed. */
  read(): Frame | null {
    if (this.failure) throw this.failure;
    try {
      while (this.queue.length > 0) {
        const chunk = this.queue[0]!;
        const before = this.queuePos;
        const frame = this.step(chunk);
        this.queuedBytes -= this.queuePos - before;
        if (this.queuePos >= chunk.length) {
          this.queue.shift();
          this.queuePos = 0;
        }
        if (frame) return frame;
      }
      return null;
    } catch (err) {
      if (err instanceof ProtocolError) this.failure = err;
      throw err;
    }
  }

  /**
   * The byte stream ended. Throws ProtocolError('truncated') if it ended inside a frame — e.g. a weight stream cut
   * off part-way — so the loss is reported rather than silently dropped. Call after reading every frame.
   */
  end(): void {
    if (this.failure) throw this.failure;
    if (!this.midFrame && this.queuedBytes === 0) return;
    let detail: string;
    if (this.header) {
      const h = this.header;
      const want = h.jsonBytes + h.binaryBytes;
      detail = `${messageTypeName(h.type)} frame cut off after ${this.bodyFilled} of ${want} payload bytes`;
    } else {
      detail = `frame header cut off after ${this.headerFilled + this.queuedBytes} of ${HEADER_BYTES} bytes`;
    }
    this.failure = new ProtocolError('truncated', `stream ended mid-frame: ${detail}`);
    throw this.failure;
  }

  /** Consume from `chunk` at queuePos until one frame completes (returned) or the chunk runs out (null). */
  private step(chunk: Buffer): Frame | null {
    if (!this.header) {
      this.queuePos = this.gatherHeader(chunk, this.queuePos);
      if (!this.header) return null;
      const h: ParsedHeader = this.header;
      if (h.jsonBytes + h.binaryBytes === 0) return this.finish(Buffer.alloc(0));
    }
    const h: ParsedHeader = this.header;
    const want = h.jsonBytes + h.binaryBytes;
    const pos = this.queuePos;
    if (this.body === null && chunk.length - pos >= want) {
      // Whole payload inside this chunk: hand out a slice, no copy.
      this.queuePos = pos + want;
      return this.finish(chunk.subarray(pos, pos + want));
    }
    if (this.body === null) {
      // Buffer.allocUnsafe hands out 8-aligned memory, which keeps the binary part aligned.
      this.body = Buffer.allocUnsafe(want);
      this.bodyFilled = 0;
    }
    const n = Math.min(want - this.bodyFilled, chunk.length - pos);
    chunk.copy(this.body, this.bodyFilled, pos, pos + n);
    this.bodyFilled += n;
    this.queuePos = pos + n;
    if (this.bodyFilled < want) return null;
    const payload = this.body;
    this.body = null;
    this.bodyFilled = 0;
    return this.finish(payload);
  }

  /** Copy header bytes until the header is complete, validating as soon as each field is available. */
  private gatherHeader(chunk: Buffer, pos: number): number {
    const hb = this.headerBuf;
    // The fixed prefix first: magic, version, type, flags, header length.
    let need = this.headerFilled < 12 ? 12 : hb.readUInt16LE(10);
    while (this.headerFilled < need) {
      const n = Math.min(need - this.headerFilled, chunk.length - pos);
      if (n === 0) return pos;
      chunk.copy(hb, this.headerFilled, pos, pos + n);
      this.headerFilled += n;
      pos += n;
      if (this.headerFilled === 12 && need === 12) {
        this.checkPrefix();
        need = hb.readUInt16LE(10);
      }
    }
    this.header = this.parseHeader();
    this.headerFilled = 0;
    return pos;
  }

  private checkPrefix(): void {
    const hb = this.headerBuf;
    if (hb.compare(FRAME_MAGIC, 0, 4, 0, 4) !== 0) {
      const got = hb.subarray(0, 4).toString('hex');
      const hint = this.framesDecoded === 0 ? ' (is the peer a Butterfly node?)' : ' (framing lost)';
      throw new ProtocolError('bad-magic', `bad frame magic 0x${got}, expected 0x${FRAME_MAGIC.toString('hex')} 'BFLY'${hint}`);
    }
    const version = hb.readUInt16LE(4);
    if (!this.supportedVersions.includes(version)) {
      throw new ProtocolError('unsupported-version', `peer speaks protocol version ${version}; this node speaks ${this.supportedVersions.join(', ')}`);
    }
    const headerBytes = hb.readUInt16LE(10);
    if (headerBytes < HEADER_BYTES || headerBytes > MAX_HEADER_BYTES || headerBytes % 4 !== 0) {
      throw new ProtocolError('bad-header', `header length ${headerBytes} is invalid (expected ${HEADER_BYTES}..${MAX_HEADER_BYTES}, a multiple of 4)`);
    }
  }

  private parseHeader(): ParsedHeader {
    const hb = this.headerBuf;
    const headerBytes = hb.readUInt16LE(10);
    let crc = crc32c(hb.subarray(0, 36));
    if (headerBytes > HEADER_BYTES) crc = crc32c(hb.subarray(HEADER_BYTES, headerBytes), crc);
    const stored = hb.readUInt32LE(36);
    if (crc !== stored) {
      throw new ProtocolError('header-checksum', `frame header checksum mismatch (computed 0x${hex32(crc)}, frame says 0x${hex32(stored)}): corrupted in transit`);
    }
    const type = hb.readUInt16LE(6);
    const idHigh = hb.readUInt32LE(16);
    if (idHigh > 0x1fffff) throw new ProtocolError('bad-header', `${messageTypeName(type)} stream id exceeds 2^53-1`);
    const jsonBytes = hb.readUInt32LE(20);
    const binaryBytes = hb.readUInt32LE(24);
    const total = headerBytes + jsonBytes + binaryBytes;
    if (jsonBytes > this.limits.maxJsonBytes) {
      throw new ProtocolError('frame-too-large', `${messageTypeName(type)} JSON part of ${jsonBytes} bytes exceeds the limit of ${this.limits.maxJsonBytes}`);
    }
    if (total > this.limits.maxFrameBytes) {
      throw new ProtocolError('frame-too-large', `${messageTypeName(type)} frame of ${total} bytes exceeds the limit of ${this.limits.maxFrameBytes}`);
    }
    if (jsonBytes % BINARY_ALIGN_BYTES !== 0) {
      throw new ProtocolError('bad-header', `${messageTypeName(type)} JSON part length ${jsonBytes} is not a multiple of ${BINARY_ALIGN_BYTES}`);
    }
    return {
      version: hb.readUInt16LE(4),
      type,
      flags: hb.readUInt16LE(8),
      headerBytes,
      streamId: idHigh * TWO_POW_32 + hb.readUInt32LE(12),
      jsonBytes,
      binaryBytes,
      jsonCrc: hb.readUInt32LE(28),
      binaryCrc: hb.readUInt32LE(32),
    };
  }

  private finish(payload: Buffer): Frame {
    const h = this.header!;
    this.header = null;
    const jsonPart = payload.subarray(0, h.jsonBytes);
    let binary = payload.subarray(h.jsonBytes);
    const name = messageTypeName(h.type);
    const jsonCrc = crc32c(jsonPart);
    if (jsonCrc !== h.jsonCrc) {
      throw new ProtocolError('json-checksum', `${name} JSON part checksum mismatch (computed 0x${hex32(jsonCrc)}, frame says 0x${hex32(h.jsonCrc)})`);
    }
    const binaryCrc = crc32c(binary);
    if (binaryCrc !== h.binaryCrc) {
      throw new ProtocolError(
        'binary-checksum',
        `${name} binary part checksum mismatch over ${binary.length} bytes (computed 0x${hex32(binaryCrc)}, frame says 0x${hex32(h.binaryCrc)}): tensor data corrupted in transit`,
      );
    }
    let json: unknown = undefined;
    if (h.jsonBytes > 0) {
      try {
        json = JSON.parse(jsonPart.toString('utf8'));
      } catch (err) {
        throw new ProtocolError('bad-json', `${name} JSON part does not parse: ${(err as Error).message}`);
      }
    }
    if (binary.byteOffset % BINARY_ALIGN_BYTES !== 0) binary = alignedCopy(binary);
    this.framesDecoded++;
    return { version: h.version, type: h.type, flags: h.flags, streamId: h.streamId, json, binary };
  }
}

/** Copy into fresh memory so typed-array views of any element size can be taken without a RangeError. */
function alignedCopy(src: Buffer): Buffer {
  const dst = Buffer.from(new ArrayBuffer(src.length));
  src.copy(dst);
  return dst;
}

function hex32(n: number): string {
  return n.toString(16).padStart(8, '0');
}
