import * as fs from 'node:fs';
import type { WeightTensor } from '../tensor.js';
import { FileCursor } from './cursor.js';
import { GgufError } from './errors.js';
import { describeGgmlType } from './ggml-sizes.js';
import { parseHeader, readArrayAt, type TensorInfo } from './parse-header.js';
import { isSupportedType } from './types.js';
import { GgufValueType, valueTypeName, type GgufArrayValue, type GgufMetaEntry } from './values.js';

export type { TensorInfo } from './parse-header.js';

/** fs.readSync takes at most 2 GiB − 1 per call; read big tensors in pieces below that. */
const MAX_READ_BYTES = 1 << 30;
/** Read buffer for decoding a deferred metadata array (a vocabulary is a few hundred KiB to a few MiB). */
const DEFERRED_READ_CHUNK_BYTES = 64 * 1024;

/** What identifies the file's contents, to refuse decoding a deferred array from a file replaced since opening. */
interface FileIdentity { readonly dev: number; readonly ino: number; readonly size: number; readonly mtimeMs: number }

function sameFile(a: FileIdentity, b: FileIdentity): boolean {
  return a.dev === b.dev && a.ino === b.ino && a.size === b.size && a.mtimeMs === b.mtimeMs;
}

function entryTypeName(e: GgufMetaEntry): string {
  return e.type === GgufValueType.ARRAY ? `ARRAY of ${valueTypeName(e.itemType)}` : valueTypeName(e.type);
}

/**
 * An open GGUF file: header, metadata and tensor table in memory; tensor data read on demand. Large metadata arrays
 * (tokenizer.ggml.tokens, scores, merges, …) are checked at open but decoded on first access of their value (see
 * isLoaded), also after close() as long as the file is unchanged.
 */
export class GgufFile {
  readonly path: string;
  readonly version: number;
  readonly alignment: number;
  /** Absolute offset of the (aligned) tensor data section. */
  readonly dataOffset: number;
  readonly fileBytes: number;
  readonly metadata: ReadonlyMap<string, GgufMetaEntry>;
  readonly tensors: readonly TensorInfo[];
  private readonly byName: ReadonlyMap<string, TensorInfo>;
  private fd: number | undefined;
  private readonly identity: FileIdentity;
  /** Keys whose array value is still only in the file. */
  private readonly deferred: Set<string>;

  /** Use openGguf(). */
  constructor(path: string, fd: number, fileBytes: number) {
    this.path = path;
    this.fd = fd;
    this.fileBytes = fileBytes;
    const st = fs.fstatSync(fd);
    this.identity = { dev: st.dev, ino: st.ino, size: st.size, mtimeMs: st.mtimeMs };
    const h = parseHeader(new FileCursor(fd, path, fileBytes), (key, itemType, offset) => this.loadArray(key, itemType, offset));
    this.version = h.version;
    this.alignment = h.alignment;
    this.dataOffset = h.dataOffset;
    this.metadata = h.metadata;
    this.tensors = h.tensors;
    this.byName = new Map(h.tensors.map((t) => [t.name, t]));
    this.deferred = new Set(h.deferredKeys);
  }

  /** false while key's (large array) value has not been decoded from the file yet; true for every other key. */
  isLoaded(key: string): boolean {
    return !this.deferred.has(key);
  }

  private loadArray(key: string, itemType: GgufValueType, offset: number): GgufArrayValue {
    const read = (fd: number): GgufArrayValue =>
      readArrayAt(new FileCursor(fd, this.path, this.fileBytes, DEFERRED_READ_CHUNK_BYTES), key, itemType, offset);
    let value: GgufArrayValue;
    if (this.fd !== undefined) {
      value = read(this.fd);
    } else {
      // Closed (e.g. a worker that loaded its weights): read it from the same path, if that is still this file.
      let fd: number;
      try {
        fd = fs.openSync(this.path, 'r');
      } catch (e) {
        throw new GgufError(this.path, `cannot reopen to read the value: ${(e as Error).message}`, { key }, { cause: e });
      }
      try {
        if (!sameFile(fs.fstatSync(fd), this.identity)) throw this.fail('the file changed since it was opened; cannot read the value', { key });
        value = read(fd);
      } finally {
        fs.closeSync(fd);
      }
    }
    this.deferred.delete(key);
    return value;
  }

  private fail(problem: string, subject: { key?: string; tensor?: string } = {}): GgufError {
    return new GgufError(this.path, problem, subject);
  }

  has(key: string): boolean {
    return this.metadata.has(key);
  }

  /** The raw entry, or undefined. */
  entry(key: string): GgufMetaEntry | undefined {
    return this.metadata.get(key);
  }

  /** Looks a key up; absent → fallback if given, else throws. Present with the wrong type always throws. */
  private scalar<T>(key: string, fallback: T | undefined, expected: string, pick: (e: GgufMetaEntry) => T | undefined): T {
    const e = this.metadata.get(key);
    if (!e) {
      if (fallback !== undefined) return fallback;
      throw this.fail(`missing metadata key (expected ${expected})`, { key });
    }
    const v = pick(e);
    if (v === undefined) throw this.fail(`is ${entryTypeName(e)}, expected ${expected}`, { key });
    return v;
  }

  getString(key: string, fallback?: string): string {
    return this.scalar(key, fallback, 'a STRING', (e) => (e.type === GgufValueType.STRING ? (e.value as string) : undefined));
  }

  /** Any integer or float type; 64-bit integers must fit a JS number exactly. */
  getNumber(key: string, fallback?: number): number {
    return this.scalar(key, fallback, 'a number', (e) => {
      if (e.type === GgufValueType.ARRAY || e.type === GgufValueType.BOOL || e.type === GgufValueType.STRING) return undefined;
      if (typeof e.value === 'number') return e.value;
      const n = Number(e.value as bigint);
      if (!Number.isSafeInteger(n)) throw this.fail(`value ${String(e.value)} is too large for a JS number`, { key });
      return n;
    });
  }

  getBool(key: string, fallback?: boolean): boolean {
    return this.scalar(key, fallback, 'a BOOL', (e) => (e.type === GgufValueType.BOOL ? (e.value as boolean) : undefined));
  }

  getArray(key: string): GgufArrayValue {
    return this.scalar(key, undefined, 'an ARRAY', (e) => (e.type === GgufValueType.ARRAY ? e.value : undefined));
  }

  /** An array of strings (e.g. tokenizer.ggml.tokens). */
  getStringArray(key: string): readonly string[] {
    return this.typedArray(key, GgufValueType.STRING) as readonly string[];
  }

  /** An array of FLOAT32 (e.g. tokenizer.ggml.scores). */
  getFloat32Array(key: string): Float32Array {
    return this.typedArray(key, GgufValueType.FLOAT32) as Float32Array;
  }

  /** An array of INT32 (e.g. tokenizer.ggml.token_type). */
  getInt32Array(key: string): Int32Array {
    return this.typedArray(key, GgufValueType.INT32) as Int32Array;
  }

  private typedArray(key: string, itemType: GgufValueType): GgufArrayValue {
    const expected = `an ARRAY of ${valueTypeName(itemType)}`;
    return this.scalar(key, undefined, expected, (e) => (e.type === GgufValueType.ARRAY && e.itemType === itemType ? e.value : undefined));
  }

  tensorInfo(name: string): TensorInfo | undefined {
    return this.byName.get(name);
  }

  requireTensor(name: string): TensorInfo {
    const t = this.byName.get(name);
    if (!t) throw this.fail('no such tensor in the file', { tensor: name });
    return t;
  }

  /** One tensor's raw bytes (any type whose size is known), read at its offset. */
  readTensorBytes(name: string): Uint8Array {
    const t = this.requireTensor(name);
    if (t.byteLength < 0) throw this.fail(`has ${describeGgmlType(t.type)}, whose size Butterfly does not know`, { tensor: name });
    if (this.fd === undefined) throw this.fail('cannot read: the file was closed', { tensor: name });
    const data = new Uint8Array(t.byteLength);
    let done = 0;
    while (done < data.length) {
      let r: number;
      try {
        r = fs.readSync(this.fd, data, done, Math.min(MAX_READ_BYTES, data.length - done), t.offset + done);
      } catch (e) {
        throw new GgufError(this.path, `cannot read: ${(e as Error).message}`, { tensor: name }, { cause: e });
      }
      if (r === 0) throw this.fail(`data ends at byte ${t.offset + done}, expected ${t.offset + t.byteLength} (file shrank?)`, { tensor: name });
      done += r;
    }
    return data;
  }

  /**
   * One weight matrix or vector: cols = ne0, rows = ne1. Fails (naming the tensor) for types Butterfly cannot
   * compute with and for tensors with a real third or fourth dimension.
   */
  readTensor(name: string): WeightTensor {
    const t = this.requireTensor(name);
    if (!isSupportedType(t.type)) throw this.fail(`has unsupported type ${describeGgmlType(t.type)}`, { tensor: name });
    if (t.dims.slice(2).some((d) => d !== 1)) {
      throw this.fail(`has shape [${t.dims.join(', ')}]; only 1-D and 2-D tensors can be read as weights`, { tensor: name });
    }
    const cols = t.dims[0] ?? 1;
    const rows = t.dims.length > 1 ? t.dims[1]! : 1;
    return { name, type: t.type, rows, cols, data: this.readTensorBytes(name) };
  }

  close(): void {
    if (this.fd !== undefined) fs.closeSync(this.fd);
    this.fd = undefined;
  }
}

/** Opens a GGUF file and parses header, metadata and tensor infos (tensor data is read later, on demand). */
export function openGguf(path: string): GgufFile {
  let fd: number;
  let fileBytes: number;
  try {
    fd = fs.openSync(path, 'r');
  } catch (e) {
    throw new GgufError(path, `cannot open: ${(e as Error).message}`, {}, { cause: e });
  }
  try {
    const stat = fs.fstatSync(fd);
    if (!stat.isFile()) throw new GgufError(path, 'not a regular file');
    fileBytes = stat.size;
    return new GgufFile(path, fd, fileBytes);
  } catch (e) {
    fs.closeSync(fd);
    if (e instanceof GgufError) throw e;
    if (e instanceof Error && 'code' in e) throw new GgufError(path, `cannot read: ${e.message}`, {}, { cause: e });
    throw e;
  }
}
