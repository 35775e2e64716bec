import { createHash } from 'node:crypto';
import { allocAligned } from '../../engine/kernels/native.js';
import { fileTensorSource } from '../../engine/model/load.js';
import type { TensorSource } from '../../engine/model/weights.js';
import type { GgufFile } from '../../engine/gguf/reader.js';
import type { WeightTensor } from '../../engine/tensor.js';
import type { TensorRef } from '../../transport/messages.js';

export class TensorIntegrityError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'TensorIntegrityError';
  }
}

export function sha256Hex(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex');
}

function shapeOf(ref: TensorRef): { rows: number; cols: number } {
  const cols = ref.dims[0] ?? 1;
  return { cols, rows: ref.dims.slice(1).reduce((a, b) => a * b, 1) };
}

/**
 * The tensors of one stage, assembled from streamed chunks or read from a local file, each verified against the
 * SHA-256 the coordinator announced before the stage may use it.
 */
export class StageTensorStore {
  private readonly refs = new Map<string, TensorRef>();
  private readonly buffers = new Map<string, { bytes: Uint8Array; received: number }>();
  private readonly verified = new Map<string, WeightTensor>();

  constructor(refs: readonly TensorRef[]) {
    for (const r of refs) this.refs.set(r.name, r);
  }

  get totalBytes(): number {
    let n = 0;
    for (const r of this.refs.values()) n += r.byteLength;
    return n;
  }

  get receivedBytes(): number {
    let n = 0;
    for (const b of this.buffers.values()) n += b.received;
    return n;
  }

  get complete(): boolean {
    return this.verified.size === this.refs.size;
  }

  /** Take one streamed chunk; verifies the tensor when its last byte arrives. */
  addChunk(name: string, offset: number, totalBytes: number, data: Uint8Array): void {
    const ref = this.refs.get(name);
    if (!ref) throw new TensorIntegrityError(`received bytes for tensor '${name}', which this stage was not assigned`);
    if (totalBytes !== ref.byteLength) throw new TensorIntegrityError(`tensor '${name}': stream says ${totalBytes} bytes, assignment says ${ref.byteLength}`);
    let buf = this.buffers.get(name);
    if (!buf) {
      buf = { bytes: allocAligned(ref.byteLength), received: 0 };
      this.buffers.set(name, buf);
    }
    if (offset !== buf.received) throw new TensorIntegrityError(`tensor '${name}': chunk at byte ${offset}, expected ${buf.received} (chunks must arrive in order)`);
    buf.bytes.set(data, offset);
    buf.received += data.byteLength;
    if (buf.received === ref.byteLength) this.accept(ref, buf.bytes);
  }

  /** Read and verify every tensor from a local copy of the model. */
  loadFromFile(file: GgufFile, onProgress?: (loadedBytes: number) => void): void {
    const source = fileTensorSource(file, { names: [...this.refs.keys()] });
    let done = 0;
    for (const ref of this.refs.values()) {
      const t = source(ref.name);
      if (t.type !== ref.ggmlType) throw new TensorIntegrityError(`tensor '${ref.name}' is type ${t.type} in ${file.path}, the coordinator's is ${ref.ggmlType}`);
      this.accept(ref, t.data);
      done += ref.byteLength;
      onProgress?.(done);
    }
  }

  private accept(ref: TensorRef, bytes: Uint8Array): void {
    if (bytes.byteLength !== ref.byteLength) throw new TensorIntegrityError(`tensor '${ref.name}' has ${bytes.byteLength} bytes, expected ${ref.byteLength}`);
    const got = sha256Hex(bytes);
    if (got !== ref.sha256) throw new TensorIntegrityError(`tensor '${ref.name}' fails its checksum (sha256 ${got.slice(0, 12)}…, expected ${ref.sha256.slice(0, 12)}…)`);
    const { rows, cols } = shapeOf(ref);
    this.verified.set(ref.name, { name: ref.name, type: ref.ggmlType, rows, cols, data: bytes });
    this.buffers.delete(ref.name);
  }

  source(): TensorSource {
    return (name) => {
      const t = this.verified.get(name);
      if (!t) throw new TensorIntegrityError(`tensor '${name}' was not loaded`);
      return t;
    };
  }
}
