import { closeSync, openSync, readSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { fileTensorSource, openModel, type OpenedModel } from '../../engine/model/load.js';
import { stageTensorNames, type StageRange, type TensorSource } from '../../engine/model/weights.js';
import { tokenizerFromGguf, type Tokenizer } from '../../engine/tokenizer/index.js';
import type { ModelShapeWire, TensorRef } from '../../transport/messages.js';
import { modelShapeFromTensors, type ModelShape } from '../planner.js';

/**
 * The coordinator's view of the model file: its shape, tokenizer, and per-tensor SHA-256 digests (computed on
 * first use, over the memory-mapped bytes) that workers verify what they load against.
 */
export class ModelCatalog {
  readonly model: OpenedModel;
  readonly tokenizer: Tokenizer;
  /** SHA-256 of the header (metadata + tensor table): identifies the file's layout cheaply. */
  readonly modelId: string;
  private readonly source: TensorSource;
  private readonly digests = new Map<string, string>();

  constructor(readonly path: string) {
    this.model = openModel(path);
    this.tokenizer = tokenizerFromGguf(this.model.file);
    this.source = fileTensorSource(this.model.file);
    this.modelId = hashRange(path, 0, this.model.file.dataOffset);
  }

  get shapeWire(): ModelShapeWire {
    return { ...this.model.cfg };
  }

  plannerShape(maxBatchSequences: number, contextTokens = this.model.cfg.contextLength): ModelShape {
    const cfg = this.model.cfg;
    return modelShapeFromTensors(this.model.file.tensors, {
      nLayers: cfg.nLayers,
      kvBytesPerTokenPerLayer: 2 * cfg.nKvHeads * cfg.headDim * 4,
      contextTokens,
      maxBatchSequences,
    });
  }

  tensorNames(range: StageRange): string[] {
    return stageTensorNames(this.model.cfg, range, this.model.hasRopeFreqs);
  }

  tensorRefs(range: StageRange): TensorRef[] {
    return this.tensorNames(range).map((name) => {
      const info = this.model.file.requireTensor(name);
      return { name, ggmlType: info.type, dims: [...info.dims], byteLength: info.byteLength, sha256: this.digest(name) };
    });
  }

  /** The tensor's bytes, for streaming to a worker that has no copy of the file. */
  tensorBytes(name: string): Uint8Array {
    return this.source(name).data;
  }

  private digest(name: string): string {
    let d = this.digests.get(name);
    if (!d) {
      d = createHash('sha256').update(this.source(name).data).digest('hex');
      this.digests.set(name, d);
    }
    return d;
  }

  close(): void {
    this.model.file.close();
  }
}

function hashRange(path: string, start: number, end: number): string {
  const h = createHash('sha256');
  const fd = openSync(path, 'r');
  try {
    const buf = Buffer.allocUnsafe(1 << 20);
    for (let pos = start; pos < end; ) {
      const n = readSync(fd, buf, 0, Math.min(buf.length, end - pos), pos);
      if (n <= 0) break;
      h.update(buf.subarray(0, n));
      pos += n;
    }
  } finally {
    closeSync(fd);
  }
  return h.digest('hex');
}
