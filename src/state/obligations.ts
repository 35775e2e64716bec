/**
 * Proof obligations shared by several machines. Each reads optional context fields and fails closed when a field
 * is missing: the caller must supply the evidence, not merely avoid contradicting it.
 */
import type { ProofObligation, TransitionContext } from './definition.js';

export interface QuorumContext extends TransitionContext {
  /** Workers currently able to compute (loaded and healthy). */
  readonly operationalWorkers?: number;
  /** Workers needed: in a pipeline, one per stage (per replica group). */
  readonly quorumSize?: number;
}

export interface InFlightContext extends TransitionContext {
  /** Tasks dispatched and not yet finished (completed, failed or cancelled). */
  readonly inFlightTasks?: number;
}

export interface AckContext extends TransitionContext {
  readonly acks?: number;
  readonly requiredAcks?: number;
}

export const isCount = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;

export const quorumEstablished: ProofObligation<QuorumContext> = {
  name: 'QuorumEstablished',
  description: 'operationalWorkers ≥ quorumSize ≥ 1',
  holds: (c) =>
    isCount(c.quorumSize) && c.quorumSize >= 1 && isCount(c.operationalWorkers) && c.operationalWorkers >= c.quorumSize,
};

export const noWorkInFlight: ProofObligation<InFlightContext> = {
  name: 'NoWorkInFlight',
  description: 'inFlightTasks = 0',
  holds: (c) => c.inFlightTasks === 0,
};

export const workInFlight: ProofObligation<InFlightContext> = {
  name: 'WorkInFlight',
  description: 'inFlightTasks > 0',
  holds: (c) => isCount(c.inFlightTasks) && c.inFlightTasks > 0,
};

export const acksReceived: ProofObligation<AckContext> = {
  name: 'AcksReceived',
  description: 'acks ≥ requiredAcks ≥ 1',
  holds: (c) => isCount(c.requiredAcks) && c.requiredAcks >= 1 && isCount(c.acks) && c.acks >= c.requiredAcks,
};

/** Leaving a holding state (Suspect) only back to where the machine was, so it cannot be used to skip checks. */
export const returnsToPriorState: ProofObligation = {
  name: 'ReturnsToPriorState',
  description: 'target = the state held before the last transition',
  holds: (_c, machine, to) => machine.previousState === to,
};

/** Trigger kinds that mean "something broke". */
export const FAILURE_TRIGGERS = ['Failure', 'Timeout', 'Cascade'] as const;
/** Trigger kinds that mean "things are healthy again". */
export const RECOVERY_TRIGGERS = ['Recovery', 'Cascade'] as const;
