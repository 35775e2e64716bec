/** Capacity is a multiple of this many positions. */
const GRANULE_POSITIONS = 64;
/** Growth factor: copies stay amortized O(1) per position while the unused tail stays under a third of the cache
 * (doubling left up to half of it unused: a cache of 129 positions held 256). */
const GROWTH = 1.5;

/**
 * Per-sequence key/value cache for the layers of one stage. Storage grows geometrically up to the context length,
 * so short requests do not reserve a whole context. `length` is the number of positions filled; truncating to a
 * position is how recovery and stream resumption rewind a sequence.
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
    for (let l = 0; l < nLayers; l++) {
      this.keys.push(new Float32Array(this.capacityPositions * kvDim));
      this.values.push(new Float32Array(this.capacityPositions * kvDim));
    }
  }

  /** Bytes held by this cache right now. */
  get bytes(): number {
    return 2 * this.nLayers * this.capacityPositions * this.kvDim * 4;
  }

  /** Make room for positions [0, positions). */
  reserve(positions: number): void {
    if (positions > this.maxPositions) {
      throw new RangeError(`sequence needs ${positions} positions but the context holds ${this.maxPositions}`);
    }
    if (positions <= this.capacityPositions) return;
    const grown = Math.ceil((this.capacityPositions * GROWTH) / GRANULE_POSITIONS) * GRANULE_POSITIONS;
    const needed = Math.ceil(positions / GRANULE_POSITIONS) * GRANULE_POSITIONS;
    const cap = Math.min(Math.max(grown, needed), this.maxPositions);
    for (let l = 0; l < this.nLayers; l++) {
      const k = new Float32Array(cap * this.kvDim);
      k.set(this.keys[l]!.subarray(0, this.length * this.kvDim));
      this.keys[l] = k;
      const v = new Float32Array(cap * this.kvDim);
      v.set(this.values[l]!.subarray(0, this.length * this.kvDim));
      this.values[l] = v;
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
