/** GGUF metadata value types (values are the on-disk enum of the GGUF spec). */
export enum GgufValueType {
  UINT8 = 0,
  INT8 = 1,
  UINT16 = 2,
  INT16 = 3,
  UINT32 = 4,
  INT32 = 5,
  FLOAT32 = 6,
  BOOL = 7,
  STRING = 8,
  ARRAY = 9,
  UINT64 = 10,
  INT64 = 11,
  FLOAT64 = 12,
}

/** One scalar metadata value. UINT64 and INT64 are bigint so no precision is lost. */
export type GgufScalar = number | bigint | boolean | string;

/** One element of an array whose items are themselves arrays (GGUF allows nesting). */
export interface GgufNestedArray {
  readonly itemType: GgufValueType;
  readonly value: GgufArrayValue;
}

/**
 * The items of an array value. The reader returns FLOAT32 → Float32Array, INT32 → Int32Array,
 * UINT32 → Uint32Array, UINT8 → Uint8Array, INT8 → Int8Array, FLOAT64 → Float64Array, STRING → string[],
 * ARRAY → GgufNestedArray[], and a plain array of scalars for the other item types.
 */
export type GgufArrayValue =
  | readonly GgufScalar[]
  | Float32Array
  | Int32Array
  | Uint32Array
  | Uint8Array
  | Int8Array
  | Float64Array
  | readonly GgufNestedArray[];

export type GgufMetaEntry =
  | { readonly type: Exclude<GgufValueType, GgufValueType.ARRAY>; readonly value: GgufScalar }
  | { readonly type: GgufValueType.ARRAY; readonly itemType: GgufValueType; readonly value: GgufArrayValue };

/** Bytes one item of a fixed-size type takes on disk; undefined for STRING and ARRAY. */
export function fixedValueBytes(t: GgufValueType): number | undefined {
  switch (t) {
    case GgufValueType.UINT8:
    case GgufValueType.INT8:
    case GgufValueType.BOOL:
      return 1;
    case GgufValueType.UINT16:
    case GgufValueType.INT16:
      return 2;
    case GgufValueType.UINT32:
    case GgufValueType.INT32:
    case GgufValueType.FLOAT32:
      return 4;
    case GgufValueType.UINT64:
    case GgufValueType.INT64:
    case GgufValueType.FLOAT64:
      return 8;
    default:
      return undefined;
  }
}

export function isGgufValueType(t: number): t is GgufValueType {
  return Number.isInteger(t) && t >= GgufValueType.UINT8 && t <= GgufValueType.FLOAT64;
}

export function valueTypeName(t: number): string {
  return isGgufValueType(t) ? GgufValueType[t] : `value type ${t}`;
}

function checkInt(v: number, min: number, max: number, what: string): number {
  if (!Number.isInteger(v) || v < min || v > max) throw new RangeError(`${what} value out of range: ${v}`);
  return v;
}

function checkBig(v: bigint, min: bigint, max: bigint, what: string): bigint {
  if (v < min || v > max) throw new RangeError(`${what} value out of range: ${v}`);
  return v;
}

const U64_MAX = (1n << 64n) - 1n;
const I64_MIN = -(1n << 63n);
const I64_MAX = (1n << 63n) - 1n;

function scalar(type: Exclude<GgufValueType, GgufValueType.ARRAY>, value: GgufScalar): GgufMetaEntry {
  return { type, value };
}

function array(itemType: GgufValueType, value: GgufArrayValue): GgufMetaEntry {
  return { type: GgufValueType.ARRAY, itemType, value };
}

/** Convenience constructors for metadata entries; they range-check so a bad value fails where it is made. */
export const meta = {
  u8: (v: number): GgufMetaEntry => scalar(GgufValueType.UINT8, checkInt(v, 0, 0xff, 'u8')),
  i8: (v: number): GgufMetaEntry => scalar(GgufValueType.INT8, checkInt(v, -0x80, 0x7f, 'i8')),
  u16: (v: number): GgufMetaEntry => scalar(GgufValueType.UINT16, checkInt(v, 0, 0xffff, 'u16')),
  i16: (v: number): GgufMetaEntry => scalar(GgufValueType.INT16, checkInt(v, -0x8000, 0x7fff, 'i16')),
  u32: (v: number): GgufMetaEntry => scalar(GgufValueType.UINT32, checkInt(v, 0, 0xffffffff, 'u32')),
  i32: (v: number): GgufMetaEntry => scalar(GgufValueType.INT32, checkInt(v, -0x80000000, 0x7fffffff, 'i32')),
  f32: (v: number): GgufMetaEntry => scalar(GgufValueType.FLOAT32, Math.fround(v)),
  f64: (v: number): GgufMetaEntry => scalar(GgufValueType.FLOAT64, v),
  bool: (v: boolean): GgufMetaEntry => scalar(GgufValueType.BOOL, v),
  str: (v: string): GgufMetaEntry => scalar(GgufValueType.STRING, v),
  u64: (v: bigint): GgufMetaEntry => scalar(GgufValueType.UINT64, checkBig(v, 0n, U64_MAX, 'u64')),
  i64: (v: bigint): GgufMetaEntry => scalar(GgufValueType.INT64, checkBig(v, I64_MIN, I64_MAX, 'i64')),
  strArr: (v: readonly string[]): GgufMetaEntry => array(GgufValueType.STRING, [...v]),
  f32Arr: (v: ArrayLike<number>): GgufMetaEntry => array(GgufValueType.FLOAT32, Float32Array.from(v)),
  f64Arr: (v: ArrayLike<number>): GgufMetaEntry => array(GgufValueType.FLOAT64, Float64Array.from(v)),
  i32Arr: (v: ArrayLike<number>): GgufMetaEntry =>
    array(GgufValueType.INT32, Int32Array.from(v, (x) => checkInt(x, -0x80000000, 0x7fffffff, 'i32'))),
  u32Arr: (v: ArrayLike<number>): GgufMetaEntry =>
    array(GgufValueType.UINT32, Uint32Array.from(v, (x) => checkInt(x, 0, 0xffffffff, 'u32'))),
  u8Arr: (v: ArrayLike<number>): GgufMetaEntry =>
    array(GgufValueType.UINT8, Uint8Array.from(v, (x) => checkInt(x, 0, 0xff, 'u8'))),
  i8Arr: (v: ArrayLike<number>): GgufMetaEntry =>
    array(GgufValueType.INT8, Int8Array.from(v, (x) => checkInt(x, -0x80, 0x7f, 'i8'))),
  boolArr: (v: readonly boolean[]): GgufMetaEntry => array(GgufValueType.BOOL, [...v]),
  /** Any array, e.g. arr(GgufValueType.UINT16, [1, 2]); the writer checks each item against itemType. */
  arr: (itemType: GgufValueType, v: GgufArrayValue): GgufMetaEntry => array(itemType, v),
  /** An array of arrays: each element carries its own item type. */
  nested: (v: readonly GgufNestedArray[]): GgufMetaEntry => array(GgufValueType.ARRAY, v),
} as const;
