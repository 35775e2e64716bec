/**
 * The transition tables as documented in docs/state-machines.md, written out independently of the code so the
 * table-driven and model-based tests can catch a drift in either direction. `good` satisfies the edge's proof
 * obligations; `bad` is a near miss that must not; `prior` marks edges that may only return to the state held
 * before (the machine is placed with previousState = to).
 */
import type { TriggerKind } from '../src/state/index.js';

export interface ExpectedEdge {
  readonly from: string;
  readonly to: string;
  /** Accepted trigger kinds; undefined = any. */
  readonly kinds?: readonly TriggerKind[];
  readonly good?: Readonly<Record<string, unknown>>;
  readonly bad?: Readonly<Record<string, unknown>>;
  readonly prior?: boolean;
}

export interface ExpectedMachine {
  readonly kind: string;
  readonly states: readonly string[];
  readonly initial: string;
  readonly terminal: readonly string[];
  readonly edges: readonly ExpectedEdge[];
}

const F = ['Failure', 'Timeout', 'Cascade'] as const;
const R = ['Recovery', 'Cascade'] as const;
const many = (froms: readonly string[], to: string, rest: Omit<ExpectedEdge, 'from' | 'to'> = {}): ExpectedEdge[] =>
  froms.map((from) => ({ from, to, ...rest }));
const quorum = { operationalWorkers: 3, quorumSize: 3 };
const noQuorum = { operationalWorkers: 2, quorumSize: 3 };

export const SYSTEM: ExpectedMachine = {
  kind: 'System',
  states: ['Uninitialized', 'Bootstrapping', 'Ready', 'Computing', 'Degraded', 'Committing', 'Shutdown', 'Terminated'],
  initial: 'Uninitialized',
  terminal: ['Terminated'],
  edges: [
    { from: 'Uninitialized', to: 'Bootstrapping' },
    { from: 'Bootstrapping', to: 'Ready', good: quorum, bad: noQuorum },
    { from: 'Bootstrapping', to: 'Shutdown' },
    { from: 'Ready', to: 'Computing' },
    { from: 'Ready', to: 'Degraded', kinds: F },
    { from: 'Ready', to: 'Shutdown' },
    { from: 'Computing', to: 'Committing' },
    { from: 'Computing', to: 'Ready', good: { uncommittedResults: 0, inFlightTasks: 0 }, bad: { uncommittedResults: 1, inFlightTasks: 0 } },
    { from: 'Computing', to: 'Degraded', kinds: F },
    { from: 'Computing', to: 'Shutdown' },
    { from: 'Committing', to: 'Ready', good: { inFlightTasks: 0 }, bad: { inFlightTasks: 1 } },
    { from: 'Committing', to: 'Computing', good: { inFlightTasks: 2 }, bad: { inFlightTasks: 0 } },
    { from: 'Degraded', to: 'Ready', kinds: R, good: { ...quorum, inFlightTasks: 0 }, bad: { ...noQuorum, inFlightTasks: 0 } },
    { from: 'Degraded', to: 'Computing', kinds: R, good: { ...quorum, inFlightTasks: 1 }, bad: { ...quorum, inFlightTasks: 0 } },
    { from: 'Degraded', to: 'Shutdown' },
    { from: 'Shutdown', to: 'Terminated' },
  ],
};

export const COORDINATOR: ExpectedMachine = {
  kind: 'Coordinator',
  states: ['Standby', 'Elected', 'Monitoring', 'Assigning', 'Coordinating', 'Aggregating', 'Committing', 'Recovering'],
  initial: 'Standby',
  terminal: [],
  edges: [
    { from: 'Standby', to: 'Elected', good: { leaseHeld: true }, bad: { leaseHeld: false } },
    { from: 'Elected', to: 'Monitoring', good: quorum, bad: noQuorum },
    { from: 'Monitoring', to: 'Assigning' },
    { from: 'Assigning', to: 'Coordinating', good: { acks: 2, requiredAcks: 2 }, bad: { acks: 1, requiredAcks: 2 } },
    { from: 'Assigning', to: 'Monitoring', good: { inFlightTasks: 0 }, bad: { inFlightTasks: 1 } },
    { from: 'Coordinating', to: 'Aggregating' },
    { from: 'Coordinating', to: 'Monitoring', good: { inFlightTasks: 0 }, bad: { inFlightTasks: 3 } },
    { from: 'Aggregating', to: 'Committing', good: { resultsReceived: 2, resultsExpected: 2 }, bad: { resultsReceived: 1, resultsExpected: 2 } },
    { from: 'Committing', to: 'Monitoring', good: { inFlightTasks: 0 }, bad: { inFlightTasks: 1 } },
    { from: 'Committing', to: 'Coordinating', good: { inFlightTasks: 1 }, bad: { inFlightTasks: 0 } },
    ...many(['Elected', 'Monitoring', 'Assigning', 'Coordinating', 'Aggregating'], 'Recovering', { kinds: F }),
    { from: 'Recovering', to: 'Assigning', kinds: R },
    { from: 'Recovering', to: 'Coordinating', kinds: R },
    { from: 'Recovering', to: 'Monitoring', kinds: R, good: { ...quorum, inFlightTasks: 0 }, bad: { ...quorum, inFlightTasks: 1 } },
    ...many(['Elected', 'Monitoring', 'Assigning', 'Coordinating', 'Aggregating', 'Committing', 'Recovering'], 'Standby'),
  ],
};

const suspectable = ['Joined', 'Ready', 'Computing', 'Aggregating', 'Committing'];
export const WORKER: ExpectedMachine = {
  kind: 'Worker',
  states: ['Initialized', 'Joined', 'Ready', 'Computing', 'Aggregating', 'Committing', 'Suspect', 'Failed'],
  initial: 'Initialized',
  terminal: [],
  edges: [
    { from: 'Initialized', to: 'Joined' },
    { from: 'Joined', to: 'Ready', good: { partitionsReady: true }, bad: { partitionsReady: false } },
    { from: 'Ready', to: 'Computing' },
    { from: 'Ready', to: 'Joined' },
    { from: 'Computing', to: 'Aggregating' },
    { from: 'Computing', to: 'Ready', good: { inFlightTasks: 0 }, bad: { inFlightTasks: 1 } },
    { from: 'Aggregating', to: 'Committing' },
    { from: 'Committing', to: 'Ready', good: { inFlightTasks: 0 }, bad: { inFlightTasks: 1 } },
    { from: 'Committing', to: 'Computing', good: { inFlightTasks: 1 }, bad: { inFlightTasks: 0 } },
    ...many(suspectable, 'Suspect', { kinds: ['Failure', 'Timeout'] }),
    ...suspectable.map((to) => ({ from: 'Suspect', to, kinds: ['Recovery'] as const, prior: true })),
    ...many(['Initialized', ...suspectable, 'Suspect'], 'Failed', { kinds: ['Failure', 'Timeout', 'Command'] }),
    { from: 'Failed', to: 'Initialized', kinds: ['Recovery', 'Command'] },
  ],
};

const live = ['Queued', 'Scheduled', 'Dispatched', 'Executing', 'Validating'];
const retry = { attempt: 1, maxAttempts: 3 };
const noRetry = { attempt: 3, maxAttempts: 3 };
export const TASK: ExpectedMachine = {
  kind: 'Task',
  states: ['Queued', 'Scheduled', 'Dispatched', 'Executing', 'Validating', 'Completed', 'Failed', 'Cancelled'],
  initial: 'Queued',
  terminal: ['Completed', 'Failed', 'Cancelled'],
  edges: [
    { from: 'Queued', to: 'Scheduled' },
    { from: 'Scheduled', to: 'Dispatched' },
    { from: 'Dispatched', to: 'Executing', good: { acks: 3, requiredAcks: 3 }, bad: { acks: 2, requiredAcks: 3 } },
    { from: 'Dispatched', to: 'Scheduled', kinds: F, good: retry, bad: noRetry },
    { from: 'Executing', to: 'Validating', good: { verifyReplicas: true }, bad: { verifyReplicas: false } },
    { from: 'Executing', to: 'Completed', good: { verifyReplicas: false }, bad: { verifyReplicas: true } },
    { from: 'Executing', to: 'Scheduled', kinds: F, good: retry, bad: noRetry },
    { from: 'Validating', to: 'Completed', good: { agreeingReplicas: 2, requiredReplicas: 2 }, bad: { agreeingReplicas: 1, requiredReplicas: 2 } },
    ...many(live, 'Failed'),
    ...many(live, 'Cancelled', { kinds: ['Command', 'Event'] }),
  ],
};

export const CONNECTION: ExpectedMachine = {
  kind: 'Connection',
  states: ['Connecting', 'Established', 'Active', 'Idle', 'Suspected', 'Terminated'],
  initial: 'Connecting',
  terminal: [],
  edges: [
    { from: 'Connecting', to: 'Established' },
    { from: 'Connecting', to: 'Terminated' },
    { from: 'Established', to: 'Active' },
    ...many(['Established', 'Active'], 'Idle'),
    { from: 'Idle', to: 'Active' },
    ...many(['Established', 'Active', 'Idle'], 'Suspected', { kinds: ['Failure', 'Timeout'] }),
    { from: 'Suspected', to: 'Established' },
    ...many(['Established', 'Active', 'Idle', 'Suspected'], 'Terminated'),
    { from: 'Terminated', to: 'Connecting' },
  ],
};

export const PARTITION: ExpectedMachine = {
  kind: 'Partition',
  states: ['Unloaded', 'Fetching', 'Validating', 'Loaded', 'Warming', 'Ready', 'InUse', 'Evicted'],
  initial: 'Unloaded',
  terminal: [],
  edges: [
    { from: 'Unloaded', to: 'Fetching' },
    { from: 'Fetching', to: 'Validating' },
    { from: 'Fetching', to: 'Unloaded', kinds: ['Failure', 'Timeout'] },
    { from: 'Validating', to: 'Loaded', good: { checksumMatches: true }, bad: { checksumMatches: false } },
    { from: 'Validating', to: 'Unloaded' },
    { from: 'Loaded', to: 'Warming' },
    { from: 'Warming', to: 'Ready' },
    ...many(['Loaded', 'Warming', 'Ready'], 'Evicted'),
    { from: 'Ready', to: 'InUse' },
    { from: 'InUse', to: 'Ready' },
    { from: 'Evicted', to: 'Fetching' },
  ],
};

export const EXPECTED_MACHINES: readonly ExpectedMachine[] = [SYSTEM, COORDINATOR, WORKER, TASK, CONNECTION, PARTITION];

export function expectedEdge(m: ExpectedMachine, from: string, to: string): ExpectedEdge | undefined {
  return m.edges.find((e) => e.from === from && e.to === to);
}
