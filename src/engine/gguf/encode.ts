import { GgufValueType, isGgufValueType, valueTypeName, type GgufArrayValue, type GgufMetaEntry, type GgufNestedArray, type GgufScalar } from './values.js';

/** A growable little-endian byte buffer for the (small) header part of a GGUF file. */
export class ByteSink {
  private buf = Buffer.alloc(1 << 16);
  private len = 0;

  get length(): number {
    return this.len;
  }

  /** Reserves n bytes and returns their offset. May replace `buf`, so call it before touching `this.buf`. */
  private room(n: number): number {
    const at = this.len;
    if (at + n > this.buf.length) {
      const next = Buffer.alloc(Math.max(this.buf.length * 2, at + n));
      this.buf.copy(next, 0, 0, at);
      this.buf = next;
    }
    this.len += n;
    return at;
  }

  u8(v: number): void { const at = this.room(1); this.buf.writeUInt8(v, at); }
  i8(v: number): void { const at = this.room(1); this.buf.writeInt8(v, at); }
  u16(v: number): void { const at = this.room(2); this.buf.writeUInt16LE(v, at); }
  i16(v: number): void { const at = this.room(2); this.buf.writeInt16LE(v, at); }
  u32(v: number): void { const at = this.room(4); this.buf.writeUInt32LE(v, at); }
  i32(v: number): void { const at = this.room(4); this.buf.writeInt32LE(v, at); }
  f32(v: number): void { const at = this.room(4); this.buf.writeFloatLE(v, at); }
  f64(v: number): void { const at = this.room(8); this.buf.writeDoubleLE(v, at); }
  u64(v: bigint | number): void { const at = this.room(8); this.buf.writeBigUInt64LE(BigInt(v), at); }
  i64(v: bigint | number): void { const at = this.room(8); this.buf.writeBigInt64LE(BigInt(v), at); }

  bytes(b: Uint8Array): void {
    const at = this.room(b.length);
    this.buf.set(b, at);
  }

  /** GGUF string: u64 byte length, then UTF-8 bytes (no terminator). */
  str(s: string): void {
    const n = Buffer.byteLength(s, 'utf8');
    this.u64(n);
    const at = this.room(n);
    this.buf.write(s, at, n, 'utf8');
  }

  zeros(n: number): void {
    const at = this.room(n);
    this.buf.fill(0, at, this.len);
  }

  /** The bytes written so far (a view, valid until the next write). */
  view(): Uint8Array {
    return this.buf.subarray(0, this.len);
  }
}

/** Raised by the encoder with a short reason; the writer turns it into a GgufError naming file and key. */
export class EncodeProblem extends Error {}

const INT_RANGE: Partial<Record<GgufValueType, readonly [number, number]>> = {
  [GgufValueType.UINT8]: [0, 0xff],
  [GgufValueType.INT8]: [-0x80, 0x7f],
  [GgufValueType.UINT16]: [0, 0xffff],
  [GgufValueType.INT16]: [-0x8000, 0x7fff],
  [GgufValueType.UINT32]: [0, 0xffffffff],
  [GgufValueType.INT32]: [-0x80000000, 0x7fffffff],
};
const U64_MAX = (1n << 64n) - 1n;
const I64_MIN = -(1n << 63n);
const I64_MAX = (1n << 63n) - 1n;

function bad(v: unknown, t: GgufValueType): EncodeProblem {
  const shown = typeof v === 'string' ? JSON.stringify(v.length > 40 ? v.slice(0, 40) + '…' : v) : String(v);
  return new EncodeProblem(`${typeof v} ${shown} is not a valid ${valueTypeName(t)}`);
}

/** Writes one scalar of type t, checking that the JS value fits it exactly. */
export function encodeScalar(out: ByteSink, t: GgufValueType, v: GgufScalar): void {
  const range = INT_RANGE[t];
  if (range) {
    const n = typeof v === 'bigint' ? Number(v) : v;
    if (typeof n !== 'number' || !Number.isInteger(n) || n < range[0] || n > range[1]) throw bad(v, t);
    switch (t) {
      case GgufValueType.UINT8: return out.u8(n);
      case GgufValueType.INT8: return out.i8(n);
      case GgufValueType.UINT16: return out.u16(n);
      case GgufValueType.INT16: return out.i16(n);
      case GgufValueType.UINT32: return out.u32(n);
      default: return out.i32(n);
    }
  }
  switch (t) {
    case GgufValueType.FLOAT32:
    case GgufValueType.FLOAT64:
      if (typeof v !== 'number') throw bad(v, t);
      return t === GgufValueType.FLOAT32 ? out.f32(v) : out.f64(v);
    case GgufValueType.BOOL:
      if (typeof v !== 'boolean') throw bad(v, t);
      return out.u8(v ? 1 : 0);
    case GgufValueType.STRING:
      if (typeof v !== 'string') throw bad(v, t);
      return out.str(v);
    case GgufValueType.UINT64:
    case GgufValueType.INT64: {
      if (typeof v === 'number' && !Number.isSafeInteger(v)) throw bad(v, t);
      if (typeof v !== 'number' && typeof v !== 'bigint') throw bad(v, t);
      const b = BigInt(v);
      if (t === GgufValueType.UINT64 ? b < 0n || b > U64_MAX : b < I64_MIN || b > I64_MAX) throw bad(v, t);
      return t === GgufValueType.UINT64 ? out.u64(b) : out.i64(b);
    }
    default:
      throw new EncodeProblem(`${valueTypeName(t)} is not a scalar type`);
  }
}

function isNested(v: unknown): v is GgufNestedArray {
  return typeof v === 'object' && v !== null && 'itemType' in v && 'value' in v;
}

/** Writes an array value: u32 item type, u64 count, items. */
export function encodeArray(out: ByteSink, itemType: GgufValueType, items: GgufArrayValue, depth = 0): void {
  if (depth > 8) throw new EncodeProblem('arrays nested more than 8 deep');
  if (!isGgufValueType(itemType)) throw new EncodeProblem(`unknown array item type ${itemType}`);
  out.u32(itemType);
  out.u64(items.length);
  if (itemType === GgufValueType.ARRAY) {
    for (const item of items as ArrayLike<unknown> as readonly unknown[]) {
      if (!isNested(item)) throw new EncodeProblem('items of an ARRAY-of-ARRAY must be { itemType, value }');
      encodeArray(out, item.itemType, item.value, depth + 1);
    }
    return;
  }
  for (let i = 0; i < items.length; i++) {
    const item = items[i];
    if (isNested(item)) throw new EncodeProblem(`item ${i} is an array but the item type is ${valueTypeName(itemType)}`);
    encodeScalar(out, itemType, item as GgufScalar);
  }
}

/** Writes one metadata key/value pair. */
export function encodeEntry(out: ByteSink, key: string, entry: GgufMetaEntry): void {
  out.str(key);
  if (entry.type === GgufValueType.ARRAY) {
    out.u32(GgufValueType.ARRAY);
    encodeArray(out, entry.itemType, entry.value);
  } else {
    out.u32(entry.type);
    encodeScalar(out, entry.type, entry.value);
  }
}
