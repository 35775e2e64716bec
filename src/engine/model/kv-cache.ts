/** Capacity is a multiple of this many positions. */
const GRANULE_POSITIONS = 64;

/** ES2024 resizable ArrayBuffer (Node ≥ 20); the ES2022 lib this project compiles against does not declare it. */
interface ResizableArrayBuffer extends ArrayBuffer {
  resize(byteLength: number): void;
}
const ResizableArrayBuffer = ArrayBuffer as unknown as new (byteLength: number, opts: { maxByteLength: number }) => ResizableArrayBuffer;
/** V8's largest maxByteLength (Node 20): 4 GiB, a million positions of a 1024-wide layer. */
const MAX_RESERVE_BYTES = 2 ** 32;

/**
 * A Float32Array over a resizable buffer that reserves (address space only) room for `maxFloats` and commits
 * `floats`: it grows in place, keeping its contents and its address, and its length follows the buffer's.
 */
function growableFloats(floats: number, maxFloats: number): Float32Array {
  return new Float32Array(new ResizableArrayBuffer(floats * 4, { maxByteLength: Math.min(maxFloats * 4, MAX_RESERVE_BYTES) }));
}

/**
 * Per-sequence key/value cache for the layers of one stage. Storage grows in place, a granule of positions at a
 * time, up to the context length, so short requests do not commit a whole context. Each layer's keys and values are
 * a resizable buffer reserving the whole context: growing commits more pages instead of copying into new arrays,
 * which left the old ones as garbage, resident until a major GC (and holes in the malloc heap after it). Each buffer
 * is its own mapping (two VMAs: committed and reserved), so a sequence costs 4 × layers of the kernel's
 * vm.max_map_count (65530 by default). `length` is the number of positions filled; truncating to a position is how
 * recovery and stream resumption rewind a sequence.
 */
export class SequenceKvCache {
  private capacityPositions: number;
  readonly keys: Float32Array[];
  readonly values: Float32Array[];
  length = 0;

  constructor(
    private readonly nLayers: number,
    private readonly kvDim: number,
    readonly maxPositions: number,
    initialPositions = GRANULE_POSITIONS,
  ) {
    this.capacityPositions = Math.min(initialPositions, maxPositions);
    this.keys = [];
    this.values = [];
    const maxFloats = maxPositions * kvDim;
    for (let l = 0; l < nLayers; l++) {
      this.keys.push(growableFloats(this.capacityPositions * kvDim, maxFloats));
      this.values.push(growableFloats(this.capacityPositions * kvDim, maxFloats));
    }
  }

  /** Bytes held by this cache right now. */
  get bytes(): number {
    return 2 * this.nLayers * this.capacityPositions * this.kvDim * 4;
  }

  /** Make room for positions [0, positions). The arrays keep their identity and contents. */
  reserve(positions: number): void {
    if (positions > this.maxPositions) {
      throw new RangeError(`sequence needs ${positions} positions but the context holds ${this.maxPositions}`);
    }
    if (positions <= this.capacityPositions) return;
    // No copy, so growth need not be geometric: commit only the granules needed.
    const cap = Math.min(Math.ceil(positions / GRANULE_POSITIONS) * GRANULE_POSITIONS, this.maxPositions);
    const bytes = cap * this.kvDim * 4;
    if (bytes > MAX_RESERVE_BYTES) throw new RangeError(`a layer's cache of ${cap} positions would exceed ${MAX_RESERVE_BYTES} bytes`);
    for (let l = 0; l < this.nLayers; l++) {
      (this.keys[l]!.buffer as ResizableArrayBuffer).resize(bytes);
      (this.values[l]!.buffer as ResizableArrayBuffer).resize(bytes);
    }
    this.capacityPositions = cap;
  }

  /** Forget positions >= `positions`. */
  truncate(positions: number): void {
    if (positions < 0 || positions > this.length) {
      throw new RangeError(`cannot truncate a sequence of ${this.length} positions to ${positions}`);
    }
    this.length = positions;
  }
}
