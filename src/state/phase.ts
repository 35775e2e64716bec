/**
 * The phases of one epoch of work, in order: Assignment < Computation < Aggregation < Commitment. Horizontal
 * coherence compares workers by phase index.
 */

export const PHASES = ['Assignment', 'Computation', 'Aggregation', 'Commitment'] as const;
export type Phase = (typeof PHASES)[number];

const INDEX: Readonly<Record<Phase, number>> = { Assignment: 0, Computation: 1, Aggregation: 2, Commitment: 3 };

export const Phase = {
  Assignment: 'Assignment',
  Computation: 'Computation',
  Aggregation: 'Aggregation',
  Commitment: 'Commitment',
  all: PHASES,
  index(p: Phase): number {
    return INDEX[p];
  },
  /** The following phase, or null after Commitment (the next epoch starts again at Assignment). */
  next(p: Phase): Phase | null {
    return PHASES[INDEX[p] + 1] ?? null;
  },
  /** How many phases apart two phases are, regardless of order. */
  distance(a: Phase, b: Phase): number {
    return Math.abs(INDEX[a] - INDEX[b]);
  },
  /** Negative if a comes before b, 0 if equal, positive after. */
  compare(a: Phase, b: Phase): number {
    return INDEX[a] - INDEX[b];
  },
  is(value: unknown): value is Phase {
    return typeof value === 'string' && Object.prototype.hasOwnProperty.call(INDEX, value);
  },
} as const;
