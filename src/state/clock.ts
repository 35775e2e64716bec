/**
 * Time sources for state machines. Machines never read the OS clock directly so tests and simulations can run on a
 * fake clock and replay exactly.
 */

export interface Clock {
  /** Monotonic nanoseconds from an arbitrary per-process origin; never goes backwards. */
  monotonicNs(): bigint;
  /** Wall-clock milliseconds since the Unix epoch, for humans and cross-process comparison. */
  wallTimeMs(): number;
}

export const systemClock: Clock = {
  monotonicNs: () => process.hrtime.bigint(),
  wallTimeMs: () => Date.now(),
};

/** A clock that only moves when told to. Monotonic and wall time advance together. */
export class FakeClock implements Clock {
  private nowNs: bigint;
  private wallMs: number;

  constructor(startWallMs = 0, startMonotonicNs = 0n) {
    this.nowNs = startMonotonicNs;
    this.wallMs = startWallMs;
  }

  monotonicNs(): bigint {
    return this.nowNs;
  }

  wallTimeMs(): number {
    return this.wallMs;
  }

  /** Moves both clocks forward; fractional milliseconds are kept to the nanosecond. */
  advance(ms: number): void {
    if (!Number.isFinite(ms) || ms < 0) throw new RangeError(`FakeClock.advance: ms must be ≥ 0, got ${ms}`);
    this.nowNs += BigInt(Math.round(ms * 1e6));
    this.wallMs += ms;
  }
}
