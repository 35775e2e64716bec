/**
 * Small seeded PRNGs. Everything random in Butterfly (synthetic weights, sampling) flows from these, so a seed
 * fully determines the bits. State is plain numbers so it serializes into a few bytes.
 */

/** SplitMix32-style generator: one 32-bit state word, good enough statistics for weights and sampling. */
export class SplitMix32 {
  private stateU32: number;

  constructor(seed: number) {
    this.stateU32 = seed >>> 0;
  }

  get state(): number {
    return this.stateU32;
  }

  set state(v: number) {
    this.stateU32 = v >>> 0;
  }

  /** Next uniform 32-bit unsigned integer. */
  nextU32(): number {
    this.stateU32 = (this.stateU32 + 0x9e3779b9) >>> 0;
    let z = this.stateU32;
    z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
    return (z ^ (z >>> 16)) >>> 0;
  }

  /** Uniform in [0, 1) with 32 bits of resolution. */
  nextFloat(): number {
    return this.nextU32() / 4294967296;
  }

  /** Standard normal via Box–Muller (one value per call; simple and deterministic). */
  nextGaussian(): number {
    const u1 = (this.nextU32() + 1) / 4294967297;
    const u2 = this.nextFloat();
    return Math.sqrt(-2 * Math.log(u1)) * Math.cos(2 * Math.PI * u2);
  }
}
