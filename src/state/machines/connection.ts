/** A link between two processes. Rationale: docs/state-machines.md#connection. */
import { defineMachine } from '../definition.js';
import { StateMachine, type MachineOptions } from '../machine.js';
import type { TransitionContext } from '../definition.js';

export const CONNECTION_STATES = ['Connecting', 'Established', 'Active', 'Idle', 'Suspected', 'Terminated'] as const;
export type ConnectionState = (typeof CONNECTION_STATES)[number];

export type ConnectionContext = TransitionContext;

export const CONNECTION_MACHINE = defineMachine<ConnectionState, ConnectionContext>({
  kind: 'Connection',
  description: 'One peer link; the machine survives reconnects so its history shows flaps.',
  states: CONNECTION_STATES,
  initial: 'Connecting',
  stateDescriptions: {
    Connecting: 'Socket opening and protocol handshake (version, model digest).',
    Established: 'Handshake done; no traffic yet (or keepalive just recovered).',
    Active: 'Messages flowing.',
    Idle: 'No messages for the idle timeout; keepalives only.',
    Suspected: 'Keepalives missed; the failure detector has been told.',
    Terminated: 'Closed. Reconnecting re-enters Connecting on the same machine.',
  },
  transitions: [
    { from: 'Connecting', to: 'Established', event: 'handshake_complete' },
    { from: 'Connecting', to: 'Terminated', event: 'connect_failed' },
    { from: 'Established', to: 'Active', event: 'data_flowing' },
    { from: ['Established', 'Active'], to: 'Idle', event: 'no_activity_timeout' },
    { from: 'Idle', to: 'Active', event: 'activity_resumed' },
    { from: ['Established', 'Active', 'Idle'], to: 'Suspected', event: 'keepalive_failed', triggers: ['Failure', 'Timeout'] },
    { from: 'Suspected', to: 'Established', event: 'keepalive_ok' },
    { from: ['Established', 'Active', 'Idle', 'Suspected'], to: 'Terminated', event: 'closed' },
    { from: 'Terminated', to: 'Connecting', event: 'reconnect' },
  ],
});

export type ConnectionMachine = StateMachine<ConnectionState, ConnectionContext>;

export function createConnectionMachine(id: string, options?: MachineOptions): ConnectionMachine {
  return new StateMachine(CONNECTION_MACHINE, id, options);
}
