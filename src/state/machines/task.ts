/** One inference request, from admission to its outcome. Rationale: docs/state-machines.md#task. */
import { defineMachine, type ProofObligation } from '../definition.js';
import { StateMachine, type MachineOptions } from '../machine.js';
import { FAILURE_TRIGGERS, acksReceived, isCount, type AckContext } from '../obligations.js';

export const TASK_STATES = [
  'Queued',
  'Scheduled',
  'Dispatched',
  'Executing',
  'Validating',
  'Completed',
  'Failed',
  'Cancelled',
] as const;
export type TaskState = (typeof TASK_STATES)[number];

export const TERMINAL_TASK_STATES: readonly TaskState[] = ['Completed', 'Failed', 'Cancelled'];

export interface TaskContext extends AckContext {
  /** Whether replica verification is on for this task (decided at admission). */
  readonly verifyReplicas?: boolean;
  readonly agreeingReplicas?: number;
  readonly requiredReplicas?: number;
  /** Recoveries already spent on this task, and the budget. */
  readonly attempt?: number;
  readonly maxAttempts?: number;
}

const verificationOn: ProofObligation<TaskContext> = {
  name: 'VerificationOn',
  description: 'verifyReplicas = true',
  holds: (c) => c.verifyReplicas === true,
};

const verificationOff: ProofObligation<TaskContext> = {
  name: 'VerificationOff',
  description: 'verifyReplicas = false',
  holds: (c) => c.verifyReplicas === false,
};

const replicasAgree: ProofObligation<TaskContext> = {
  name: 'ReplicasAgree',
  description: 'agreeingReplicas ≥ requiredReplicas ≥ 2',
  holds: (c) =>
    isCount(c.requiredReplicas) && c.requiredReplicas >= 2 && isCount(c.agreeingReplicas) && c.agreeingReplicas >= c.requiredReplicas,
};

const retryBudgetLeft: ProofObligation<TaskContext> = {
  name: 'RetryBudgetLeft',
  description: 'attempt < maxAttempts',
  holds: (c) => isCount(c.attempt) && isCount(c.maxAttempts) && c.attempt < c.maxAttempts,
};

const LIVE: readonly TaskState[] = ['Queued', 'Scheduled', 'Dispatched', 'Executing', 'Validating'];

export const TASK_MACHINE = defineMachine<TaskState, TaskContext>({
  kind: 'Task',
  description: 'One inference request: a prompt prefilled once, then many decoded tokens.',
  states: TASK_STATES,
  initial: 'Queued',
  terminal: TERMINAL_TASK_STATES,
  stateDescriptions: {
    Queued: 'Accepted by the API; waiting for admission.',
    Scheduled: 'Admitted to an epoch; waiting for a complete pipeline (also where a task waits during recovery).',
    Dispatched: 'Prompt (plus any tokens already generated) sent to the first stage; waiting for stage acks.',
    Executing: 'Prefill, then one decode step per token; stays here for the whole generation.',
    Validating: 'Generation done; comparing replica digests (only when replica verification is on).',
    Completed: 'Outcome committed and delivered to the client.',
    Failed: 'Unrecoverable: retries exhausted, deadline passed, or replicas disagreed.',
    Cancelled: 'The client disconnected or an operator cancelled it.',
  },
  transitions: [
    { from: 'Queued', to: 'Scheduled', event: 'coordinator_accepts' },
    { from: 'Scheduled', to: 'Dispatched', event: 'assignment_created' },
    { from: 'Dispatched', to: 'Executing', event: 'stages_acknowledged', obligations: [acksReceived] },
    { from: 'Dispatched', to: 'Scheduled', event: 'dispatch_failed', triggers: FAILURE_TRIGGERS, obligations: [retryBudgetLeft] },
    { from: 'Executing', to: 'Validating', event: 'generation_finished', obligations: [verificationOn] },
    { from: 'Executing', to: 'Completed', event: 'generation_finished', obligations: [verificationOff] },
    { from: 'Executing', to: 'Scheduled', event: 'stage_lost', triggers: FAILURE_TRIGGERS, obligations: [retryBudgetLeft] },
    { from: 'Validating', to: 'Completed', event: 'replicas_agree', obligations: [replicasAgree] },
    { from: LIVE, to: 'Failed', event: 'unrecoverable' },
    { from: LIVE, to: 'Cancelled', event: 'cancelled', triggers: ['Command', 'Event'] },
  ],
});

export type TaskMachine = StateMachine<TaskState, TaskContext>;

export function createTaskMachine(id: string, options?: MachineOptions): TaskMachine {
  return new StateMachine(TASK_MACHINE, id, options);
}
