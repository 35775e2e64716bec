/** A worker process serving one pipeline stage. Rationale: docs/state-machines.md#worker. */
import { defineMachine, type ProofObligation } from '../definition.js';
import { StateMachine, type MachineOptions } from '../machine.js';
import {
  noWorkInFlight,
  returnsToPriorState,
  workInFlight,
  type InFlightContext,
} from '../obligations.js';
import type { Phase } from '../phase.js';

export const WORKER_STATES = [
  'Initialized',
  'Joined',
  'Ready',
  'Computing',
  'Aggregating',
  'Committing',
  'Suspect',
  'Failed',
] as const;
export type WorkerState = (typeof WORKER_STATES)[number];

/** States in which a worker counts toward quorum. Suspect does not: it may be gone. */
export const OPERATIONAL_WORKER_STATES: ReadonlySet<WorkerState> = new Set([
  'Ready',
  'Computing',
  'Aggregating',
  'Committing',
]);

export interface WorkerContext extends InFlightContext {
  /** Every partition of the worker's assigned slice is Ready (fetched, checksummed, warmed). */
  readonly partitionsReady?: boolean;
}

const partitionsReady: ProofObligation<WorkerContext> = {
  name: 'PartitionsReady',
  description: 'partitionsReady = true',
  holds: (c) => c.partitionsReady === true,
};

export const WORKER_MACHINE = defineMachine<WorkerState, WorkerContext>({
  kind: 'Worker',
  description: 'One worker process; its slice of layers is tracked by Partition machines.',
  states: WORKER_STATES,
  initial: 'Initialized',
  stateDescriptions: {
    Initialized: 'Process started; not yet registered with the coordinator.',
    Joined: 'Registered and heartbeating; fetching/warming its assigned partitions.',
    Ready: 'Slice loaded and warm; waiting for activations.',
    Computing: 'Running its layers for in-flight tasks (prefill, re-prefill or decode); stays here across tokens.',
    Aggregating: 'Finished its part of a task; holding final outputs until the coordinator collects them.',
    Committing: 'Acknowledging the committed outcome and releasing the task’s KV cache.',
    Suspect: 'Missed heartbeats; not counted toward quorum until it proves liveness.',
    Failed: 'Confirmed dead (or removed). A restart re-enters Initialized as a new incarnation.',
  },
  transitions: [
    { from: 'Initialized', to: 'Joined', event: 'coordinator_connected' },
    { from: 'Joined', to: 'Ready', event: 'partition_loaded', obligations: [partitionsReady] },
    { from: 'Ready', to: 'Computing', event: 'work_assigned' },
    { from: 'Ready', to: 'Joined', event: 'assignment_changed' },
    { from: 'Computing', to: 'Aggregating', event: 'local_computation_done' },
    { from: 'Computing', to: 'Ready', event: 'all_tasks_abandoned', obligations: [noWorkInFlight] },
    { from: 'Aggregating', to: 'Committing', event: 'outputs_collected' },
    { from: 'Committing', to: 'Ready', event: 'commit_finalized', obligations: [noWorkInFlight] },
    { from: 'Committing', to: 'Computing', event: 'commit_finalized', obligations: [workInFlight] },
    {
      from: ['Joined', 'Ready', 'Computing', 'Aggregating', 'Committing'],
      to: 'Suspect',
      event: 'heartbeats_missed',
      triggers: ['Failure', 'Timeout'],
    },
    { from: 'Suspect', to: 'Joined', event: 'liveness_proven', triggers: ['Recovery'], obligations: [returnsToPriorState] },
    { from: 'Suspect', to: 'Ready', event: 'liveness_proven', triggers: ['Recovery'], obligations: [returnsToPriorState] },
    { from: 'Suspect', to: 'Computing', event: 'liveness_proven', triggers: ['Recovery'], obligations: [returnsToPriorState] },
    { from: 'Suspect', to: 'Aggregating', event: 'liveness_proven', triggers: ['Recovery'], obligations: [returnsToPriorState] },
    { from: 'Suspect', to: 'Committing', event: 'liveness_proven', triggers: ['Recovery'], obligations: [returnsToPriorState] },
    {
      from: ['Initialized', 'Joined', 'Ready', 'Computing', 'Aggregating', 'Committing', 'Suspect'],
      to: 'Failed',
      event: 'failure_confirmed',
      triggers: ['Failure', 'Timeout', 'Command'],
    },
    { from: 'Failed', to: 'Initialized', event: 'restarted', triggers: ['Recovery', 'Command'] },
  ],
});

export type WorkerMachine = StateMachine<WorkerState, WorkerContext>;

export function createWorkerMachine(id: string, options?: MachineOptions): WorkerMachine {
  return new StateMachine(WORKER_MACHINE, id, options);
}

/** The phase a worker's state stands for, or null outside the phased part of its life. */
export function workerPhase(state: WorkerState): Phase | null {
  switch (state) {
    case 'Ready':
      return 'Assignment';
    case 'Computing':
      return 'Computation';
    case 'Aggregating':
      return 'Aggregation';
    case 'Committing':
      return 'Commitment';
    default:
      return null;
  }
}
