import type { FileCursor } from './cursor.js';
import { describeGgmlType, ggmlBlockLayout } from './ggml-sizes.js';
import { GgufValueType, fixedValueBytes, isGgufValueType, valueTypeName, type GgufArrayValue, type GgufMetaEntry, type GgufNestedArray, type GgufScalar } from './values.js';
import { GGUF_DEFAULT_ALIGNMENT, GGUF_MAX_DIMS } from './writer.js';

export interface TensorInfo {
  readonly name: string;
  /** ggml type number; may be a type Butterfly cannot compute with (see isSupportedType). */
  readonly type: number;
  /** ne0 first (ne0 is the contiguous dimension). */
  readonly dims: readonly number[];
  readonly elements: number;
  /** Absolute byte offset of the tensor's data in the file. */
  readonly offset: number;
  /** Bytes of data; -1 when the type's block layout is unknown to Butterfly. */
  readonly byteLength: number;
}

export interface ParsedHeader {
  readonly version: number;
  readonly alignment: number;
  readonly dataOffset: number;
  readonly metadata: ReadonlyMap<string, GgufMetaEntry>;
  readonly tensors: readonly TensorInfo[];
  /** Keys whose (large array) value was skipped, to be decoded by the ArrayLoader on first access. */
  readonly deferredKeys: readonly string[];
}

/**
 * Decodes the array of `key` whose item count is at absolute file offset `offset` (see readArrayAt). Given to
 * parseHeader, it makes large arrays lazy: a 32000-token vocabulary costs ~1.5 MiB of JS strings (and V8 heap
 * growth) that a stage without a tokenizer — a worker, a benchmark — never reads.
 */
export type ArrayLoader = (key: string, itemType: GgufValueType, offset: number) => GgufArrayValue;

/** Arrays at least this many bytes long in the file are deferred when parseHeader has an ArrayLoader. */
export const LAZY_ARRAY_MIN_BYTES = 16 * 1024;

const ALIGNMENT_KEY = 'general.alignment';
/** Deeper nesting has no use and would let a crafted file overflow the stack. */
const MAX_ARRAY_DEPTH = 8;
/** Smallest possible encodings, used to reject absurd counts before looping over them. */
const MIN_KV_BYTES = 8 + 4 + 1; // key length, value type, 1-byte value
const MIN_TENSOR_INFO_BYTES = 8 + 4 + 4 + 8; // name length, n_dims, type, offset
const MIN_NESTED_ARRAY_BYTES = 4 + 8; // item type, count

function checkMagicAndVersion(c: FileCursor): number {
  if (c.fileBytes < 8) throw c.fail(`only ${c.fileBytes} bytes: too short to be a GGUF file`);
  const magic = c.bytes(4, 'magic');
  if (Buffer.from(magic).toString('latin1') !== 'GGUF') {
    throw c.fail(`not a GGUF file (starts with bytes ${Buffer.from(magic).toString('hex')}, expected 47475546 "GGUF")`);
  }
  const version = c.u32('version');
  // A big-endian file stores its small version number byte-swapped.
  const swapped = ((version & 0xff) << 24 | (version & 0xff00) << 8 | (version >>> 8) & 0xff00 | version >>> 24) >>> 0;
  if (version !== swapped && swapped >= 1 && swapped <= 3) throw c.fail(`big-endian GGUF (version ${swapped}) is not supported; only little-endian files are`);
  if (version !== 2 && version !== 3) throw c.fail(`unsupported GGUF version ${version} (only versions 2 and 3 are supported)`);
  return version;
}

function readScalar(c: FileCursor, t: GgufValueType, what: string): GgufScalar {
  switch (t) {
    case GgufValueType.UINT8: return c.u8(what);
    case GgufValueType.INT8: return c.i8(what);
    case GgufValueType.UINT16: return c.u16(what);
    case GgufValueType.INT16: return c.i16(what);
    case GgufValueType.UINT32: return c.u32(what);
    case GgufValueType.INT32: return c.i32(what);
    case GgufValueType.FLOAT32: return c.f32(what);
    case GgufValueType.FLOAT64: return c.f64(what);
    case GgufValueType.UINT64: return c.u64(what);
    case GgufValueType.INT64: return c.i64(what);
    case GgufValueType.STRING: return c.string(what);
    case GgufValueType.BOOL: {
      const at = c.pos;
      const b = c.u8(what);
      if (b > 1) throw c.fail(`bool at offset ${at} has byte value ${b} (must be 0 or 1)`);
      return b === 1;
    }
    default:
      throw c.fail(`${valueTypeName(t)} is not a scalar type`);
  }
}

function readItemType(c: FileCursor): GgufValueType {
  const at = c.pos;
  const t = c.u32('array item type');
  if (!isGgufValueType(t)) throw c.fail(`unknown array item type ${t} at offset ${at}`);
  return t;
}

/** Array body after its item type: u64 count, then the items. */
function readArrayItems(c: FileCursor, itemType: GgufValueType, depth: number): GgufArrayValue {
  if (depth > MAX_ARRAY_DEPTH) throw c.fail(`arrays nested more than ${MAX_ARRAY_DEPTH} deep`);
  const minItemBytes = itemType === GgufValueType.STRING ? 8 : itemType === GgufValueType.ARRAY ? MIN_NESTED_ARRAY_BYTES : fixedValueBytes(itemType) ?? 1;
  const count = c.u64Bounded('array length', Math.floor(c.remainingBytes / minItemBytes));
  const what = `${valueTypeName(itemType)} array item`;
  switch (itemType) {
    case GgufValueType.FLOAT32: return c.f32Array(count, what);
    case GgufValueType.FLOAT64: return c.f64Array(count, what);
    case GgufValueType.INT32: return c.i32Array(count, what);
    case GgufValueType.UINT32: return c.u32Array(count, what);
    case GgufValueType.UINT8: return c.u8Array(count, what);
    case GgufValueType.INT8: return c.i8Array(count, what);
    case GgufValueType.ARRAY: {
      const out: GgufNestedArray[] = new Array(count);
      for (let i = 0; i < count; i++) {
        const t = readItemType(c);
        out[i] = { itemType: t, value: readArrayItems(c, t, depth + 1) };
      }
      return out;
    }
    default: {
      const out: GgufScalar[] = new Array(count);
      for (let i = 0; i < count; i++) out[i] = readScalar(c, itemType, what);
      return out;
    }
  }
}

/** Decodes the items of an array whose count is at `offset` (as the eager parse would have, same checks). */
export function readArrayAt(c: FileCursor, key: string, itemType: GgufValueType, offset: number): GgufArrayValue {
  c.pos = offset;
  c.subject = { key };
  return readArrayItems(c, itemType, 0);
}

/**
 * Item types whose arrays may be deferred: reading them back cannot fail on content (no per-item checks, unlike
 * BOOL), so a file that opens keeps opening and reading the value later gives what the eager parse would have.
 */
function deferrable(t: GgufValueType): boolean {
  return t !== GgufValueType.ARRAY && t !== GgufValueType.BOOL;
}

/** Steps over an array body (count, items) with the bounds checks of readArrayItems, decoding nothing. */
function skipArrayItems(c: FileCursor, itemType: GgufValueType): void {
  const itemBytes = itemType === GgufValueType.STRING ? undefined : fixedValueBytes(itemType);
  const count = c.u64Bounded('array length', Math.floor(c.remainingBytes / (itemBytes ?? 8)));
  const what = `${valueTypeName(itemType)} array item`;
  if (itemBytes !== undefined) {
    c.skip(count * itemBytes, what);
    return;
  }
  for (let i = 0; i < count; i++) c.skip(c.u64Bounded(`length of ${what}`, c.remainingBytes), what);
}

/** An ARRAY entry whose value is decoded on first access (an own enumerable property, so spreads copy it). */
function deferredArrayEntry(key: string, itemType: GgufValueType, offset: number, load: ArrayLoader): GgufMetaEntry {
  let value: GgufArrayValue | undefined;
  const entry = { type: GgufValueType.ARRAY, itemType };
  Object.defineProperty(entry, 'value', { enumerable: true, get: () => (value ??= load(key, itemType, offset)) });
  return entry as GgufMetaEntry;
}

function readMetadata(c: FileCursor, count: number, load: ArrayLoader | undefined, deferred: string[]): Map<string, GgufMetaEntry> {
  const metadata = new Map<string, GgufMetaEntry>();
  for (let i = 0; i < count; i++) {
    c.subject = { key: `#${i}` };
    const key = c.string('metadata key');
    c.subject = { key };
    if (metadata.has(key)) throw c.fail('duplicate metadata key');
    const at = c.pos;
    const type = c.u32('value type');
    if (!isGgufValueType(type)) throw c.fail(`unknown value type ${type} at offset ${at}`);
    if (type === GgufValueType.ARRAY) {
      const itemType = readItemType(c);
      const body = c.pos;
      if (load && deferrable(itemType)) {
        skipArrayItems(c, itemType);
        if (c.pos - body >= LAZY_ARRAY_MIN_BYTES) {
          metadata.set(key, deferredArrayEntry(key, itemType, body, load));
          deferred.push(key);
          continue;
        }
        c.pos = body; // small: decode now
      }
      metadata.set(key, { type, itemType, value: readArrayItems(c, itemType, 0) });
    } else {
      metadata.set(key, { type, value: readScalar(c, type, 'value') });
    }
  }
  return metadata;
}

function alignmentOf(c: FileCursor, metadata: ReadonlyMap<string, GgufMetaEntry>): number {
  const entry = metadata.get(ALIGNMENT_KEY);
  if (!entry) return GGUF_DEFAULT_ALIGNMENT;
  c.subject = { key: ALIGNMENT_KEY };
  if (entry.type !== GgufValueType.UINT32) throw c.fail(`must be UINT32, found ${valueTypeName(entry.type)}`);
  const a = entry.value as number;
  if (a === 0 || (a & (a - 1)) !== 0) throw c.fail(`alignment ${a} is not a power of two`);
  return a;
}

interface RawTensorInfo { name: string; type: number; dims: number[]; elements: number; relOffset: number }

function readTensorInfo(c: FileCursor, index: number): RawTensorInfo {
  c.subject = { tensor: `#${index}` };
  const name = c.string('tensor name');
  c.subject = { tensor: name };
  const nDims = c.u32('dimension count');
  if (nDims > GGUF_MAX_DIMS) throw c.fail(`has ${nDims} dimensions (at most ${GGUF_MAX_DIMS} allowed)`);
  const dims: number[] = [];
  let elements = 1;
  for (let d = 0; d < nDims; d++) {
    const ne = c.u64Bounded(`dimension ${d}`, Number.MAX_SAFE_INTEGER);
    dims.push(ne);
    elements *= ne;
    if (!Number.isSafeInteger(elements)) throw c.fail(`shape [${dims.join(', ')}…] has too many elements`);
  }
  const type = c.u32('type');
  const relOffset = c.u64Bounded('data offset', Number.MAX_SAFE_INTEGER);
  return { name, type, dims, elements, relOffset };
}

/** Turns raw infos into absolute, sized, checked TensorInfos. Unknown or unsupported types are allowed here. */
function placeTensors(c: FileCursor, raw: readonly RawTensorInfo[], dataOffset: number, alignment: number): TensorInfo[] {
  const tensors = raw.map((r): TensorInfo => {
    c.subject = { tensor: r.name };
    if (r.relOffset % alignment !== 0) throw c.fail(`data offset ${r.relOffset} is not a multiple of the alignment ${alignment}`);
    const offset = dataOffset + r.relOffset;
    const layout = ggmlBlockLayout(r.type);
    let byteLength = -1;
    if (layout) {
      const ne0 = r.dims[0] ?? 1;
      if (ne0 % layout.blockSize !== 0) throw c.fail(`ne0 = ${ne0} is not a multiple of the ${describeGgmlType(r.type)} block size ${layout.blockSize}`);
      byteLength = (r.elements / layout.blockSize) * layout.bytesPerBlock;
    }
    const end = offset + Math.max(byteLength, 0);
    if (end > c.fileBytes) {
      throw c.fail(`data ends at byte ${end} but the file has ${c.fileBytes} bytes (truncated?)`);
    }
    return { name: r.name, type: r.type, dims: r.dims, elements: r.elements, offset, byteLength };
  });
  // Tensors must not share bytes: overlapping data means a corrupt table of offsets.
  const byOffset = tensors.filter((t) => t.byteLength > 0).sort((a, b) => a.offset - b.offset);
  for (let i = 1; i < byOffset.length; i++) {
    const prev = byOffset[i - 1]!;
    const cur = byOffset[i]!;
    if (prev.offset + prev.byteLength > cur.offset) {
      c.subject = { tensor: cur.name };
      throw c.fail(`data at byte ${cur.offset} overlaps tensor '${prev.name}' (bytes ${prev.offset}..${prev.offset + prev.byteLength})`);
    }
  }
  return tensors;
}

/**
 * Parses header, metadata and tensor infos (not tensor data). With `loadArray`, arrays of at least
 * LAZY_ARRAY_MIN_BYTES (except BOOL and nested ones) are only bounds-checked here and decoded by it on first access.
 */
export function parseHeader(c: FileCursor, loadArray?: ArrayLoader): ParsedHeader {
  const version = checkMagicAndVersion(c);
  c.subject = {};
  const tensorCount = c.u64Bounded('tensor count', Math.floor(c.remainingBytes / MIN_TENSOR_INFO_BYTES));
  const kvCount = c.u64Bounded('metadata count', Math.floor(c.remainingBytes / MIN_KV_BYTES));
  const deferredKeys: string[] = [];
  const metadata = readMetadata(c, kvCount, loadArray, deferredKeys);
  const alignment = alignmentOf(c, metadata);

  const raw: RawTensorInfo[] = [];
  const names = new Set<string>();
  for (let i = 0; i < tensorCount; i++) {
    const info = readTensorInfo(c, i);
    if (names.has(info.name)) throw c.fail('duplicate tensor name');
    names.add(info.name);
    raw.push(info);
  }
  const dataOffset = Math.ceil(c.pos / alignment) * alignment;
  const tensors = placeTensors(c, raw, dataOffset, alignment);
  c.subject = {};
  return { version, alignment, dataOffset, metadata, tensors, deferredKeys };
}
