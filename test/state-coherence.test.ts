/** Vertical, horizontal and temporal coherence, directly and as fed by the registry. */
import { describe, expect, it } from 'vitest';
import {
  FakeClock,
  MachineRegistry,
  Trigger,
  VERTICAL_COHERENCE,
  createCoordinatorMachine,
  createPartitionMachine,
  createSystemMachine,
  createTaskMachine,
  createWorkerMachine,
  horizontalCoherence,
  isVerticallyCoherent,
  temporalCoherence,
  verticalCoherence,
  workerPhase,
} from '../src/state/index.js';

const ev = Trigger.Event('test');

describe('vertical coherence', () => {
  it('scores the share of components in states the System state allows', () => {
    const r = verticalCoherence('Ready', [
      { kind: 'Coordinator', id: 'c0', state: 'Monitoring' },
      { kind: 'Worker', id: 'w0', state: 'Ready' },
      { kind: 'Worker', id: 'w1', state: 'Computing' }, // busy while the system thinks it is idle
      { kind: 'Partition', id: 'p0', state: 'InUse' }, // a leak
    ]);
    expect(r.scorePct).toBe(50);
    expect(r.incoherent.map((c) => c.id)).toEqual(['w1', 'p0']);
    expect(verticalCoherence('Terminated', []).scorePct).toBe(100);
  });

  it('encodes the documented key cases', () => {
    expect(isVerticallyCoherent('Computing', 'Worker', 'Ready')).toBe(true); // pipeline fill
    expect(isVerticallyCoherent('Computing', 'Worker', 'Suspect')).toBe(false); // should be Degraded
    expect(isVerticallyCoherent('Degraded', 'Worker', 'Suspect')).toBe(true);
    expect(isVerticallyCoherent('Ready', 'Task', 'Executing')).toBe(false);
    expect(isVerticallyCoherent('Committing', 'Coordinator', 'Committing')).toBe(true);
    expect(isVerticallyCoherent('Uninitialized', 'Task', 'Queued')).toBe(false);
    for (const sys of Object.keys(VERTICAL_COHERENCE) as (keyof typeof VERTICAL_COHERENCE)[]) {
      expect(isVerticallyCoherent(sys, 'Coordinator', 'Standby'), sys).toBe(true);
    }
  });
});

describe('horizontal coherence', () => {
  it('allows a lag of one phase among same-epoch workers and reports stragglers', () => {
    const ok = horizontalCoherence([
      { id: 'w0', epoch: 4, phase: 'Computation' },
      { id: 'w1', epoch: 4, phase: 'Assignment' },
      { id: 'w2', epoch: 3, phase: 'Commitment' }, // other epoch: not compared
      { id: 'w3', epoch: 4, phase: null },
    ]);
    expect(ok).toMatchObject({ coherent: true, maxLag: 1 });
    expect(ok.epochs.map((e) => [e.epoch, e.workers, e.lag])).toEqual([[3, 1, 0], [4, 2, 1]]);

    const bad = horizontalCoherence([
      { id: 'w0', epoch: 4, phase: 'Aggregation' },
      { id: 'w1', epoch: 4, phase: 'Assignment' },
    ]);
    expect(bad).toMatchObject({ coherent: false, maxLag: 2 });
    expect(bad.epochs[0]).toMatchObject({ minPhase: 'Assignment', maxPhase: 'Aggregation', behind: ['w1'] });
    expect(horizontalCoherence([]).coherent).toBe(true);
  });

  it('maps worker states to phases', () => {
    expect(workerPhase('Ready')).toBe('Assignment');
    expect(workerPhase('Committing')).toBe('Commitment');
    expect(workerPhase('Suspect')).toBeNull();
  });
});

describe('temporal coherence', () => {
  it('flags reports older than twice the heartbeat interval', () => {
    const r = temporalCoherence(
      [
        { id: 'w0', lastReportMs: 1_000 },
        { id: 'w1', lastReportMs: 799 },
        { id: 'w2', lastReportMs: 800 },
      ],
      1_000,
      100,
    );
    expect(r).toMatchObject({ maxStalenessMs: 200, worstStalenessMs: 201, coherent: false });
    expect(r.stale).toEqual([{ id: 'w1', stalenessMs: 201 }]);
    expect(() => temporalCoherence([], 0, 0)).toThrow(RangeError);
  });
});

describe('registry-fed coherence', () => {
  it('measures the live machines', () => {
    const clock = new FakeClock(10_000);
    const reg = new MachineRegistry({ clock });
    expect(reg.verticalCoherence()).toBeNull();
    const sys = reg.add(createSystemMachine('system', { clock }));
    const coord = reg.add(createCoordinatorMachine('c0', { clock }));
    const w0 = reg.add(createWorkerMachine('w0', { clock }));
    const w1 = reg.add(createWorkerMachine('w1', { clock }));
    const p0 = reg.add(createPartitionMachine('w0/0-6', { clock }));
    sys.transition('Bootstrapping', Trigger.Command('bootstrap'));
    coord.transition('Elected', ev, { leaseHeld: true });
    for (const w of [w0, w1]) {
      w.transition('Joined', ev, { epoch: 1 });
      w.transition('Ready', ev, { partitionsReady: true });
    }
    expect(reg.verticalCoherence()?.scorePct).toBe(100);

    sys.transition('Ready', ev, { operationalWorkers: 2, quorumSize: 2 });
    // Coordinator still Elected (allowed during fail-over) — partition still Unloaded (allowed in Ready).
    expect(reg.verticalCoherence()?.scorePct).toBe(100);
    w0.transition('Computing', ev);
    const v = reg.verticalCoherence();
    expect(v?.incoherent.map((c) => `${c.kind}:${c.id}`)).toEqual(['Worker:w0']);
    expect(v?.scorePct).toBe(75);

    const task = reg.add(createTaskMachine('t1', { clock }));
    expect(reg.verticalCoherence()?.total).toBe(5);
    task.transition('Scheduled', ev);
    p0.transition('Fetching', ev);

    w1.transition('Computing', ev);
    w1.transition('Aggregating', ev);
    expect(reg.horizontalCoherence().coherent).toBe(true); // Computation vs Aggregation
    w0.transition('Suspect', Trigger.Timeout(300));
    w0.transition('Computing', Trigger.Recovery(['w0']));
    w0.transition('Ready', ev, { inFlightTasks: 0 });
    expect(reg.horizontalCoherence()).toMatchObject({ coherent: false, maxLag: 2 });

    reg.noteReport('Worker', 'w0');
    clock.advance(150);
    reg.noteReport('Worker', 'w1');
    clock.advance(100);
    const t = reg.temporalCoherence(100);
    expect(t.stale).toEqual([{ id: 'Worker/w0', stalenessMs: 250 }]);
    const all = reg.coherence(100);
    expect(all.temporal.coherent).toBe(false);
    expect(all.vertical?.systemState).toBe('Ready');
  });
});
