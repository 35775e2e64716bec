import { createConnectionMachine, Trigger, type ConnectionMachine, type MachineRegistry } from '../state/index.js';
import type { ConnectionState as LinkState, FramedConnection } from '../transport/connection.js';
import type { Logger } from './log.js';

/**
 * One Connection machine per link, driven by the link's own state changes. Links arrive here already
 * authenticated, so each machine starts with Connecting → Established.
 */
export class ConnectionTracker {
  readonly machines = new Map<string, ConnectionMachine>();

  constructor(private readonly logger: Logger, private readonly registry?: MachineRegistry) {}

  track(conn: FramedConnection, name: string): ConnectionMachine {
    let m = this.machines.get(name);
    if (!m || m.state === 'Terminated') {
      if (m) m.transition('Connecting', Trigger.Command('reconnect'));
      else {
        m = createConnectionMachine(name);
        this.machines.set(name, m);
        this.registry?.add(m);
      }
    }
    const machine = m;
    machine.transition('Established', Trigger.Event('handshake_complete'));
    const move = (to: 'Active' | 'Idle' | 'Terminated', event: string): void => {
      if (machine.state === to) return;
      if (machine.canTransition(to, Trigger.Event(event))) machine.transition(to, Trigger.Event(event));
    };
    conn.on('stateChange', (to: LinkState) => {
      if (to === 'active') move('Active', machine.state === 'Idle' ? 'activity_resumed' : 'data_flowing');
      else if (to === 'idle') move('Idle', 'no_activity_timeout');
    });
    void conn.closed.then((info) => {
      if (machine.state === 'Terminated') return;
      machine.transition('Terminated', info.error ? Trigger.Failure(conn.peer.nodeId, info.reason) : Trigger.Event('closed'));
      if (info.error) this.logger.warn(`link ${name} failed: ${info.reason}`);
    });
    return machine;
  }
}
