/** A coordinator process (leader or standby). Rationale: docs/state-machines.md#coordinator. */
import { defineMachine, type ProofObligation } from '../definition.js';
import { StateMachine, type MachineOptions } from '../machine.js';
import {
  FAILURE_TRIGGERS,
  RECOVERY_TRIGGERS,
  acksReceived,
  isCount,
  noWorkInFlight,
  quorumEstablished,
  workInFlight,
  type AckContext,
  type InFlightContext,
  type QuorumContext,
} from '../obligations.js';

export const COORDINATOR_STATES = [
  'Standby',
  'Elected',
  'Monitoring',
  'Assigning',
  'Coordinating',
  'Aggregating',
  'Committing',
  'Recovering',
] as const;
export type CoordinatorState = (typeof COORDINATOR_STATES)[number];

/** Every state but Standby acts as leader. */
export const LEADER_STATES: ReadonlySet<CoordinatorState> = new Set(COORDINATOR_STATES.filter((s) => s !== 'Standby'));

export interface CoordinatorContext extends QuorumContext, InFlightContext, AckContext {
  /** True while this process holds the leadership lease. */
  readonly leaseHeld?: boolean;
  readonly resultsReceived?: number;
  readonly resultsExpected?: number;
}

const leaseHeld: ProofObligation<CoordinatorContext> = {
  name: 'LeaseHeld',
  description: 'leaseHeld = true',
  holds: (c) => c.leaseHeld === true,
};

const allResultsIn: ProofObligation<CoordinatorContext> = {
  name: 'AllResultsIn',
  description: 'resultsReceived ≥ resultsExpected ≥ 1',
  holds: (c) =>
    isCount(c.resultsExpected) && c.resultsExpected >= 1 && isCount(c.resultsReceived) && c.resultsReceived >= c.resultsExpected,
};

export const COORDINATOR_MACHINE = defineMachine<CoordinatorState, CoordinatorContext>({
  kind: 'Coordinator',
  description: 'One coordinator process. Only the lease holder leaves Standby.',
  states: COORDINATOR_STATES,
  initial: 'Standby',
  stateDescriptions: {
    Standby: 'Not the leader: follows the lease, serves nothing, ready to take over.',
    Elected: 'Won the lease; loading persisted state, waiting for a quorum of workers.',
    Monitoring: 'Leader with a complete pipeline and no task in flight; heartbeats and admission.',
    Assigning: 'Sending a (new) layer assignment and waiting for the stages to acknowledge it.',
    Coordinating: 'Tasks flowing through the pipeline; stays here across prefill and every decoded token.',
    Aggregating: 'A task finished its last token; collecting its final outputs (and replica digests).',
    Committing: 'Recording the task’s outcome and delivering it; atomic with respect to failures.',
    Recovering: 'A stage failed: isolating it and choosing a replacement.',
  },
  transitions: [
    { from: 'Standby', to: 'Elected', event: 'lease_acquired', obligations: [leaseHeld] },
    { from: 'Elected', to: 'Monitoring', event: 'initialize_cluster', obligations: [quorumEstablished] },
    { from: 'Monitoring', to: 'Assigning', event: 'request_received' },
    { from: 'Assigning', to: 'Coordinating', event: 'assignments_acked', obligations: [acksReceived] },
    { from: 'Assigning', to: 'Monitoring', event: 'assignment_abandoned', obligations: [noWorkInFlight] },
    { from: 'Coordinating', to: 'Aggregating', event: 'computation_complete' },
    { from: 'Coordinating', to: 'Monitoring', event: 'all_tasks_abandoned', obligations: [noWorkInFlight] },
    { from: 'Aggregating', to: 'Committing', event: 'results_collected', obligations: [allResultsIn] },
    { from: 'Committing', to: 'Monitoring', event: 'commit_finalized', obligations: [noWorkInFlight] },
    { from: 'Committing', to: 'Coordinating', event: 'commit_finalized', obligations: [workInFlight] },
    {
      // Elected → Recovering: a fail-over while tasks were in flight; the old leader is the failure.
      from: ['Elected', 'Monitoring', 'Assigning', 'Coordinating', 'Aggregating'],
      to: 'Recovering',
      event: 'failure_detected',
      triggers: FAILURE_TRIGGERS,
    },
    { from: 'Recovering', to: 'Assigning', event: 'replacement_selected', triggers: RECOVERY_TRIGGERS },
    { from: 'Recovering', to: 'Coordinating', event: 'suspicion_cleared', triggers: RECOVERY_TRIGGERS },
    {
      from: 'Recovering',
      to: 'Monitoring',
      event: 'recovery_complete',
      triggers: RECOVERY_TRIGGERS,
      obligations: [quorumEstablished, noWorkInFlight],
    },
    {
      from: ['Elected', 'Monitoring', 'Assigning', 'Coordinating', 'Aggregating', 'Committing', 'Recovering'],
      to: 'Standby',
      event: 'lease_lost',
    },
  ],
});

export type CoordinatorMachine = StateMachine<CoordinatorState, CoordinatorContext>;

export function createCoordinatorMachine(id: string, options?: MachineOptions): CoordinatorMachine {
  return new StateMachine(COORDINATOR_MACHINE, id, options);
}
