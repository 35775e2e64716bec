/** The cluster as one entity, held by the leading coordinator. Rationale: docs/state-machines.md#system. */
import { defineMachine, type ProofObligation } from '../definition.js';
import { StateMachine, type MachineOptions } from '../machine.js';
import {
  FAILURE_TRIGGERS,
  RECOVERY_TRIGGERS,
  noWorkInFlight,
  quorumEstablished,
  workInFlight,
  type InFlightContext,
  type QuorumContext,
} from '../obligations.js';

export const SYSTEM_STATES = [
  'Uninitialized',
  'Bootstrapping',
  'Ready',
  'Computing',
  'Degraded',
  'Committing',
  'Shutdown',
  'Terminated',
] as const;
export type SystemState = (typeof SYSTEM_STATES)[number];

export interface SystemContext extends QuorumContext, InFlightContext {
  /** Finished results not yet committed (verified and delivered). */
  readonly uncommittedResults?: number;
}

const nothingUncommitted: ProofObligation<SystemContext> = {
  name: 'NothingUncommitted',
  description: 'uncommittedResults = 0 and inFlightTasks = 0',
  holds: (c) => c.uncommittedResults === 0 && c.inFlightTasks === 0,
};

export const SYSTEM_MACHINE = defineMachine<SystemState, SystemContext>({
  kind: 'System',
  description: 'The whole cluster, as seen by the leading coordinator.',
  states: SYSTEM_STATES,
  initial: 'Uninitialized',
  terminal: ['Terminated'],
  stateDescriptions: {
    Uninitialized: 'Process started; nothing discovered yet.',
    Bootstrapping: 'Spawning/discovering workers, electing the coordinator, loading partitions.',
    Ready: 'Quorum operational, every layer assigned, no task executing.',
    Computing: 'At least one task is executing (prefill or decode) on the pipeline.',
    Degraded: 'A stage failed; recovery is re-assigning it and in-flight tasks wait to re-prefill.',
    Committing: 'A finished task’s result is being verified/committed and delivered.',
    Shutdown: 'Draining: no new work, in-flight work cancelled or finished, workers stopping.',
    Terminated: 'Everything released. A restart is a new System machine.',
  },
  transitions: [
    { from: 'Uninitialized', to: 'Bootstrapping', event: 'bootstrap' },
    { from: 'Bootstrapping', to: 'Ready', event: 'quorum_established', obligations: [quorumEstablished] },
    { from: 'Bootstrapping', to: 'Shutdown', event: 'bootstrap_failed' },
    { from: 'Ready', to: 'Computing', event: 'begin_inference' },
    { from: 'Ready', to: 'Degraded', event: 'failure_detected', triggers: FAILURE_TRIGGERS },
    { from: 'Ready', to: 'Shutdown', event: 'shutdown_initiated' },
    { from: 'Computing', to: 'Committing', event: 'task_finished' },
    { from: 'Computing', to: 'Ready', event: 'all_tasks_abandoned', obligations: [nothingUncommitted] },
    { from: 'Computing', to: 'Degraded', event: 'failure_detected', triggers: FAILURE_TRIGGERS },
    { from: 'Computing', to: 'Shutdown', event: 'shutdown_initiated' },
    { from: 'Committing', to: 'Ready', event: 'result_committed', obligations: [noWorkInFlight] },
    { from: 'Committing', to: 'Computing', event: 'result_committed', obligations: [workInFlight] },
    {
      from: 'Degraded',
      to: 'Ready',
      event: 'recovery_complete',
      triggers: RECOVERY_TRIGGERS,
      obligations: [quorumEstablished, noWorkInFlight],
    },
    {
      from: 'Degraded',
      to: 'Computing',
      event: 'recovery_complete',
      triggers: RECOVERY_TRIGGERS,
      obligations: [quorumEstablished, workInFlight],
    },
    { from: 'Degraded', to: 'Shutdown', event: 'quorum_lost' },
    { from: 'Shutdown', to: 'Terminated', event: 'cleanup_complete' },
  ],
});

export type SystemMachine = StateMachine<SystemState, SystemContext>;

export function createSystemMachine(id = 'system', options?: MachineOptions): SystemMachine {
  return new StateMachine(SYSTEM_MACHINE, id, options);
}
