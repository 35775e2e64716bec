/** MachineRegistry: bookkeeping, transition fan-in, snapshot/restore of every machine, JSON for the API. */
import { describe, expect, it } from 'vitest';
import {
  FakeClock,
  MachineRegistry,
  SnapshotError,
  Trigger,
  createConnectionMachine,
  createCoordinatorMachine,
  createPartitionMachine,
  createSystemMachine,
  createTaskMachine,
  createWorkerMachine,
  type TransitionEvent,
} from '../src/state/index.js';

const ev = Trigger.Event('test');

function populated(clock = new FakeClock(1_000)) {
  const reg = new MachineRegistry({ clock });
  const sys = reg.add(createSystemMachine('system', { clock }));
  const c = reg.add(createCoordinatorMachine('c0', { clock }));
  const w = reg.add(createWorkerMachine('w0', { clock }));
  const t = reg.add(createTaskMachine('t1', { clock }));
  const conn = reg.add(createConnectionMachine('c0->w0', { clock }));
  const p = reg.add(createPartitionMachine('w0/0-12', { clock }));
  sys.transition('Bootstrapping', Trigger.Command('bootstrap'), { epoch: 1 });
  c.transition('Elected', ev, { leaseHeld: true, epoch: 1 });
  w.transition('Joined', ev, { epoch: 1 });
  conn.transition('Established', ev);
  p.transition('Fetching', ev);
  t.transition('Scheduled', ev);
  return { reg, clock, sys, c, w, t, conn, p };
}

describe('MachineRegistry', () => {
  it('holds machines by kind and id, typed by kind', () => {
    const { reg, w, t } = populated();
    expect(reg.size).toBe(6);
    expect(reg.get('Worker', 'w0')).toBe(w);
    expect(reg.get('Worker', 'nope')).toBeUndefined();
    expect(reg.list('Task')).toEqual([t]);
    expect(reg.system()?.state).toBe('Bootstrapping');
    expect(() => reg.add(createWorkerMachine('w0'))).toThrow(/already registered/);
    expect(reg.all().map((m) => m.kind)).toEqual(['System', 'Coordinator', 'Worker', 'Task', 'Connection', 'Partition']);
  });

  it('fans every machine’s transitions into its listeners, and stops after removal', () => {
    const { reg, w, t } = populated();
    const heard: TransitionEvent[] = [];
    const off = reg.onTransition((e) => heard.push(e));
    w.transition('Ready', ev, { partitionsReady: true });
    t.transition('Dispatched', ev);
    expect(heard.map((e) => `${e.kind}/${e.machineId}:${e.from}->${e.to}`)).toEqual(['Worker/w0:Joined->Ready', 'Task/t1:Scheduled->Dispatched']);
    expect(reg.remove('Task', 't1')).toBe(true);
    expect(reg.remove('Task', 't1')).toBe(false);
    t.transition('Cancelled', ev);
    expect(heard).toHaveLength(2);
    off();
    w.transition('Computing', ev);
    expect(heard).toHaveLength(2);
  });

  it('prunes finished machines', () => {
    const { reg } = populated();
    for (let i = 0; i < 5; i++) {
      const t = reg.add(createTaskMachine(`x${i}`));
      if (i % 2 === 0) t.transition('Cancelled', Trigger.Command('cancel'));
    }
    expect(reg.prune((m) => m.kind === 'Task' && m.isTerminal)).toBe(3);
    expect(reg.list('Task').map((t) => t.id)).toEqual(['t1', 'x1', 'x3']);
  });

  it('snapshots and restores every machine exactly, through JSON', () => {
    const { reg, clock } = populated();
    clock.advance(42);
    const json = JSON.stringify(reg.snapshot());
    const restored = MachineRegistry.restore(JSON.parse(json) as unknown, { clock });
    expect(JSON.stringify(restored.snapshot())).toBe(json);
    expect(restored.get('Coordinator', 'c0')?.state).toBe('Elected');
    expect(restored.get('Task', 't1')?.timeInStateMs()).toBe(42);
    // Restored machines are live and wired to the new registry.
    const heard: string[] = [];
    restored.onTransition((e) => heard.push(e.to));
    restored.get('Task', 't1')?.transition('Dispatched', ev);
    expect(heard).toEqual(['Dispatched']);
  });

  it('refuses malformed registry snapshots', () => {
    expect(() => MachineRegistry.restore({ version: 1, machines: [{ kind: 'Dragon' }] })).toThrow(SnapshotError);
    expect(() => MachineRegistry.restore({ version: 2, machines: [] })).toThrow(SnapshotError);
    expect(() => MachineRegistry.restore('x')).toThrow(SnapshotError);
  });

  it('serves JSON for GET /api/v1/state and a component view for the cluster invariants', () => {
    const { reg, w } = populated();
    const body = JSON.parse(JSON.stringify(reg)) as { machines: { kind: string; id: string; state: string; history: unknown[] }[] };
    expect(body.machines.map((m) => `${m.kind}/${m.id}=${m.state}`)).toEqual([
      'System/system=Bootstrapping',
      'Coordinator/c0=Elected',
      'Worker/w0=Joined',
      'Task/t1=Scheduled',
      'Connection/c0->w0=Established',
      'Partition/w0/0-12=Fetching',
    ]);
    expect(body.machines[0]?.history).toHaveLength(1);
    w.setEpoch(4);
    expect(reg.componentView()).toEqual({
      systemState: 'Bootstrapping',
      coordinators: [{ id: 'c0', state: 'Elected' }],
      workers: [{ id: 'w0', state: 'Joined', epoch: 4 }],
    });
  });
});
