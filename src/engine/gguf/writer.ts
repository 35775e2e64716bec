import * as fs from 'node:fs';
import { GgufError } from './errors.js';
import { ByteSink, EncodeProblem, encodeEntry } from './encode.js';
import { GGMLType, TYPE_TRAITS, typeName } from './types.js';
import { GgufValueType, type GgufMetaEntry } from './values.js';

export interface GgufTensorToWrite {
  readonly name: string;
  readonly type: GGMLType;
  /** ne0 first, as ggml stores them. */
  readonly dims: readonly number[];
  readonly data: Uint8Array;
}

export interface GgufContents {
  readonly metadata: ReadonlyArray<readonly [string, GgufMetaEntry]>;
  readonly tensors: readonly GgufTensorToWrite[];
  /** Byte alignment of the data section and of every tensor; default 32 (GGUF's default). */
  readonly alignment?: number;
  readonly version?: 2 | 3;
}

export const GGUF_MAGIC = 'GGUF';
export const GGUF_DEFAULT_ALIGNMENT = 32;
/** ggml's GGML_MAX_DIMS: a tensor has at most four dimensions. */
export const GGUF_MAX_DIMS = 4;
const ALIGNMENT_KEY = 'general.alignment';

/** Expected data bytes of a tensor; throws a short reason when the shape does not fit the type. */
function tensorDataBytes(type: number, dims: readonly number[]): number {
  const tr = TYPE_TRAITS[type];
  if (!tr) throw new EncodeProblem(`has ${typeName(type)}, whose block size Butterfly does not know`);
  if (dims.length < 1 || dims.length > GGUF_MAX_DIMS) throw new EncodeProblem(`has ${dims.length} dimensions (1 to ${GGUF_MAX_DIMS} allowed)`);
  for (const d of dims) if (!Number.isSafeInteger(d) || d < 0) throw new EncodeProblem(`has invalid dimension ${d}`);
  if (dims[0]! % tr.blockSize !== 0) throw new EncodeProblem(`has ne0 = ${dims[0]}, not a multiple of the ${tr.name} block size ${tr.blockSize}`);
  const elements = dims.reduce((a, b) => a * b, 1);
  if (!Number.isSafeInteger(elements)) throw new EncodeProblem(`has too many elements`);
  return (elements / tr.blockSize) * tr.bytesPerBlock;
}

function padTo(n: number, alignment: number): number {
  return Math.ceil(n / alignment) * alignment;
}

/** The alignment to use: the explicit option, else a general.alignment entry, else 32. */
function resolveAlignment(path: string, contents: GgufContents): number {
  const entry = contents.metadata.find(([k]) => k === ALIGNMENT_KEY)?.[1];
  let fromMeta: number | undefined;
  if (entry) {
    if (entry.type !== GgufValueType.UINT32 || typeof entry.value !== 'number') {
      throw new GgufError(path, 'must be a UINT32', { key: ALIGNMENT_KEY });
    }
    fromMeta = entry.value;
  }
  const alignment = contents.alignment ?? fromMeta ?? GGUF_DEFAULT_ALIGNMENT;
  if (fromMeta !== undefined && fromMeta !== alignment) {
    throw new GgufError(path, `metadata says ${fromMeta} but the alignment option is ${alignment}`, { key: ALIGNMENT_KEY });
  }
  // ggml requires a power of two; 2^30 is far past any real use and keeps padding arithmetic small.
  if (!Number.isInteger(alignment) || alignment < 1 || alignment > 2 ** 30 || (alignment & (alignment - 1)) !== 0) {
    throw new GgufError(path, `alignment ${alignment} is not a power of two`, { key: ALIGNMENT_KEY });
  }
  return alignment;
}

/** Serializes everything before the data section: header, metadata, tensor infos, padding. */
function encodeHeader(path: string, contents: GgufContents, alignment: number): { header: Uint8Array; tensorBytes: number[] } {
  const version = contents.version ?? 3;
  if (version !== 2 && version !== 3) throw new GgufError(path, `cannot write GGUF version ${String(version)} (2 or 3 only)`);

  // general.alignment is written only when it differs from the default, at the place the caller put it (or first).
  const meta: Array<readonly [string, GgufMetaEntry]> = contents.metadata.filter(([k]) => k !== ALIGNMENT_KEY);
  if (alignment !== GGUF_DEFAULT_ALIGNMENT) {
    const at = contents.metadata.findIndex(([k]) => k === ALIGNMENT_KEY);
    meta.splice(at < 0 ? 0 : at, 0, [ALIGNMENT_KEY, { type: GgufValueType.UINT32, value: alignment }]);
  }

  const out = new ByteSink();
  out.bytes(Buffer.from(GGUF_MAGIC, 'latin1'));
  out.u32(version);
  out.u64(contents.tensors.length);
  out.u64(meta.length);

  const seenKeys = new Set<string>();
  for (const [key, entry] of meta) {
    if (typeof key !== 'string' || key.length === 0) throw new GgufError(path, 'metadata key must be a non-empty string', { key: String(key) });
    if (seenKeys.has(key)) throw new GgufError(path, 'duplicate metadata key', { key });
    seenKeys.add(key);
    try {
      encodeEntry(out, key, entry);
    } catch (e) {
      if (e instanceof EncodeProblem) throw new GgufError(path, e.message, { key });
      throw e;
    }
  }

  const seenTensors = new Set<string>();
  const tensorBytes: number[] = [];
  let relOffset = 0;
  for (const t of contents.tensors) {
    if (typeof t.name !== 'string' || t.name.length === 0) throw new GgufError(path, 'tensor name must be a non-empty string', { tensor: String(t.name) });
    if (seenTensors.has(t.name)) throw new GgufError(path, 'duplicate tensor name', { tensor: t.name });
    seenTensors.add(t.name);
    let bytes: number;
    try {
      bytes = tensorDataBytes(t.type, t.dims);
    } catch (e) {
      if (e instanceof EncodeProblem) throw new GgufError(path, e.message, { tensor: t.name });
      throw e;
    }
    if (t.data.length !== bytes) {
      throw new GgufError(path, `${typeName(t.type)} [${t.dims.join(', ')}] needs ${bytes} bytes of data, got ${t.data.length}`, { tensor: t.name });
    }
    out.str(t.name);
    out.u32(t.dims.length);
    for (const d of t.dims) out.u64(d);
    out.u32(t.type);
    out.u64(relOffset);
    tensorBytes.push(bytes);
    relOffset += padTo(bytes, alignment);
  }
  out.zeros(padTo(out.length, alignment) - out.length);
  return { header: out.view(), tensorBytes };
}

function writeAll(fd: number, data: Uint8Array): void {
  let done = 0;
  while (done < data.length) done += fs.writeSync(fd, data, done, data.length - done);
}

/**
 * Writes a GGUF file. Everything is validated before the file is touched; data goes to `${path}.tmp`
 * and is renamed into place, so readers never see a half-written model. Tensor data is streamed from
 * the caller's buffers (never concatenated), each tensor padded to the alignment.
 */
export function writeGguf(path: string, contents: GgufContents): void {
  const alignment = resolveAlignment(path, contents);
  const { header, tensorBytes } = encodeHeader(path, contents, alignment);
  const tmp = `${path}.tmp`;
  let fd: number | undefined;
  try {
    fd = fs.openSync(tmp, 'w');
    writeAll(fd, header);
    const zeros = new Uint8Array(alignment);
    contents.tensors.forEach((t, i) => {
      writeAll(fd!, t.data);
      const pad = padTo(tensorBytes[i]!, alignment) - tensorBytes[i]!;
      if (pad > 0) writeAll(fd!, zeros.subarray(0, pad));
    });
    fs.closeSync(fd);
    fd = undefined;
    fs.renameSync(tmp, path);
  } catch (e) {
    if (fd !== undefined) fs.closeSync(fd);
    fs.rmSync(tmp, { force: true });
    if (e instanceof Error && 'code' in e) throw new GgufError(path, `cannot write: ${e.message}`, {}, { cause: e });
    throw e;
  }
}
