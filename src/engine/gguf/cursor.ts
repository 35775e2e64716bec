import * as fs from 'node:fs';
import * as os from 'node:os';
import { GgufError, type GgufErrorSubject } from './errors.js';

const HOST_IS_LITTLE_ENDIAN = os.endianness() === 'LE';

/**
 * Sequential little-endian reader over a file descriptor, reading in chunks with fs.readSync so a
 * multi-megabyte header is parsed without loading the tensor data. Every read is bounds-checked against
 * the file size, and failures become a GgufError naming the current `subject` (key or tensor).
 */
export class FileCursor {
  /** Absolute file offset of the next byte to read. */
  pos = 0;
  /** What is being read now, for error messages. */
  subject: GgufErrorSubject = {};
  private buf: Buffer;
  private bufFileOffset = 0;
  private bufBytes = 0;

  constructor(
    private readonly fd: number,
    readonly path: string,
    readonly fileBytes: number,
    chunkBytes = 1 << 20,
  ) {
    this.buf = Buffer.allocUnsafe(chunkBytes);
  }

  fail(problem: string): GgufError {
    return new GgufError(this.path, problem, this.subject);
  }

  get remainingBytes(): number {
    return this.fileBytes - this.pos;
  }

  /** Makes bytes [pos, pos + n) available and returns their index in `buf`; advances pos. */
  private take(n: number, what: string): number {
    if (n > this.remainingBytes) {
      throw this.fail(`${what} needs ${n} bytes at offset ${this.pos} but the file has ${this.fileBytes} bytes (truncated?)`);
    }
    const start = this.pos;
    if (start < this.bufFileOffset || start + n > this.bufFileOffset + this.bufBytes) this.refill(n);
    this.pos += n;
    return start - this.bufFileOffset;
  }

  private refill(n: number): void {
    if (n > this.buf.length) this.buf = Buffer.allocUnsafe(Math.max(n, this.buf.length * 2));
    const want = Math.min(this.buf.length, this.fileBytes - this.pos);
    let got = 0;
    while (got < want) {
      const r = fs.readSync(this.fd, this.buf, got, want - got, this.pos + got);
      if (r === 0) break;
      got += r;
    }
    if (got < n) throw this.fail(`file ended at byte ${this.pos + got} while reading (did it shrink while open?)`);
    this.bufFileOffset = this.pos;
    this.bufBytes = got;
  }

  u8(what: string): number { return this.buf.readUInt8(this.take(1, what)); }
  i8(what: string): number { return this.buf.readInt8(this.take(1, what)); }
  u16(what: string): number { return this.buf.readUInt16LE(this.take(2, what)); }
  i16(what: string): number { return this.buf.readInt16LE(this.take(2, what)); }
  u32(what: string): number { return this.buf.readUInt32LE(this.take(4, what)); }
  i32(what: string): number { return this.buf.readInt32LE(this.take(4, what)); }
  f32(what: string): number { return this.buf.readFloatLE(this.take(4, what)); }
  f64(what: string): number { return this.buf.readDoubleLE(this.take(8, what)); }
  u64(what: string): bigint { return this.buf.readBigUInt64LE(this.take(8, what)); }
  i64(what: string): bigint { return this.buf.readBigInt64LE(this.take(8, what)); }

  /** A u64 that must be a count or size: at most `limit` (so absurd values fail before any allocation). */
  u64Bounded(what: string, limit: number): number {
    const at = this.pos;
    const v = this.u64(what);
    if (v > BigInt(limit)) throw this.fail(`${what} is ${v} (at offset ${at}), more than the ${limit} the rest of the file can hold`);
    return Number(v);
  }

  /** GGUF string: u64 byte length + UTF-8 bytes. Invalid UTF-8 becomes U+FFFD (as Node decodes it). */
  string(what: string): string {
    const n = this.u64Bounded(`length of ${what}`, this.remainingBytes);
    const i = this.take(n, what);
    return this.buf.toString('utf8', i, i + n);
  }

  /** Steps over n bytes without reading them (bounds-checked like a read). */
  skip(n: number, what: string): void {
    if (n > this.remainingBytes) {
      throw this.fail(`${what} needs ${n} bytes at offset ${this.pos} but the file has ${this.fileBytes} bytes (truncated?)`);
    }
    this.pos += n;
  }

  /** Raw bytes copied out (the internal buffer is reused). */
  bytes(n: number, what: string): Uint8Array {
    const i = this.take(n, what);
    const out = new Uint8Array(n); // own ArrayBuffer of exactly n bytes, so typed views over it start at 0
    out.set(this.buf.subarray(i, i + n));
    return out;
  }

  f32Array(count: number, what: string): Float32Array {
    if (!HOST_IS_LITTLE_ENDIAN) return Float32Array.from({ length: count }, () => this.f32(what));
    return new Float32Array(this.bytes(count * 4, what).buffer);
  }
  f64Array(count: number, what: string): Float64Array {
    if (!HOST_IS_LITTLE_ENDIAN) return Float64Array.from({ length: count }, () => this.f64(what));
    return new Float64Array(this.bytes(count * 8, what).buffer);
  }
  i32Array(count: number, what: string): Int32Array {
    if (!HOST_IS_LITTLE_ENDIAN) return Int32Array.from({ length: count }, () => this.i32(what));
    return new Int32Array(this.bytes(count * 4, what).buffer);
  }
  u32Array(count: number, what: string): Uint32Array {
    if (!HOST_IS_LITTLE_ENDIAN) return Uint32Array.from({ length: count }, () => this.u32(what));
    return new Uint32Array(this.bytes(count * 4, what).buffer);
  }
  u8Array(count: number, what: string): Uint8Array {
    return this.bytes(count, what);
  }
  i8Array(count: number, what: string): Int8Array {
    return new Int8Array(this.bytes(count, what).buffer);
  }
}
