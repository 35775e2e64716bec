/** The invariant framework and the eight named cluster invariants. */
import { afterEach, describe, expect, it, vi } from 'vitest';
import {
  FakeClock,
  InvariantMonitor,
  SEVERITIES,
  Severity,
  Trigger,
  assignmentCoversModel,
  checkpointCausality,
  clusterInvariants,
  createTaskMachine,
  epochMonotonicity,
  noAssignmentOverlap,
  noPartialCommits,
  quorumOperational,
  resultDeterminism,
  scheduleInvariantChecks,
  singleCoordinator,
  type ClusterView,
  type Invariant,
} from '../src/state/index.js';

/** A healthy two-stage cluster with replica verification (two replica groups of two stages). */
function healthy(): ClusterView {
  return {
    systemState: 'Computing',
    epoch: 3,
    quorumSize: 4,
    coordinators: [
      { id: 'c0', state: 'Coordinating' },
      { id: 'c1', state: 'Standby' },
    ],
    workers: [
      { id: 'w0', state: 'Computing', epoch: 3 },
      { id: 'w1', state: 'Computing', epoch: 3 },
      { id: 'w2', state: 'Computing', epoch: 3 },
      { id: 'w3', state: 'Ready', epoch: 2 },
    ],
    layerCount: 12,
    assignment: [
      { workerId: 'w0', layerStart: 0, layerEnd: 6, replica: 0 },
      { workerId: 'w1', layerStart: 6, layerEnd: 12, replica: 0 },
      { workerId: 'w2', layerStart: 0, layerEnd: 7, replica: 1 },
      { workerId: 'w3', layerStart: 7, layerEnd: 12, replica: 1 },
    ],
    commits: [
      { id: 'task-1', participants: ['w0', 'w1'], committed: ['w0', 'w1'], finalized: true },
      { id: 'task-2', participants: ['w0', 'w1'], committed: [], finalized: true },
      { id: 'task-3', participants: ['w0', 'w1'], committed: ['w0'], finalized: false },
    ],
    checkpoints: [
      { taskId: 'task-4', seq: 0, parentSeq: null, tokenCount: 10, epoch: 2 },
      { taskId: 'task-4', seq: 1, parentSeq: 0, tokenCount: 20, epoch: 3 },
      { taskId: 'task-5', seq: 7, parentSeq: 6, tokenCount: 70, epoch: 3 }, // parents pruned
    ],
    results: [
      { taskId: 'task-4', step: 19, replica: 'r0', digest: 'abc' },
      { taskId: 'task-4', step: 19, replica: 'r1', digest: 'abc' },
      { taskId: 'task-4', step: 20, replica: 'r0', digest: 'def' },
    ],
  };
}

const run = (inv: Invariant<ClusterView>, view: ClusterView) => inv.check(view);

describe('Severity', () => {
  it('orders Info < Warning < High < Critical', () => {
    expect([...SEVERITIES].sort(Severity.compare)).toEqual(['Info', 'Warning', 'High', 'Critical']);
    expect(Severity.atLeast('Critical', 'High')).toBe(true);
    expect(Severity.atLeast('Warning', 'High')).toBe(false);
    expect(Severity.rank('Info')).toBeLessThan(Severity.rank('Warning'));
  });
});

describe('cluster invariants', () => {
  it('all hold on a healthy cluster', () => {
    for (const inv of clusterInvariants()) expect(inv.check(healthy()), inv.name).toBeNull();
    expect(clusterInvariants().map((i) => i.name)).toEqual([
      'SingleCoordinator',
      'QuorumOperational',
      'EpochMonotonicity',
      'AssignmentCoversModel',
      'NoAssignmentOverlap',
      'NoPartialCommits',
      'CheckpointCausality',
      'ResultDeterminism',
    ]);
  });

  it('SingleCoordinator flags two leaders', () => {
    const v = { ...healthy(), coordinators: [{ id: 'c0', state: 'Coordinating' as const }, { id: 'c1', state: 'Elected' as const }] };
    expect(run(singleCoordinator, v)).toMatchObject({ subjects: ['c0', 'c1'] });
    expect(singleCoordinator.severity).toBe('Critical');
  });

  it('QuorumOperational flags a lost stage unless the System admits it', () => {
    const workers = healthy().workers.map((w) => (w.id === 'w1' ? { ...w, state: 'Suspect' as const } : w));
    expect(run(quorumOperational, { ...healthy(), workers })).toMatchObject({ subjects: ['w1'] });
    expect(run(quorumOperational, { ...healthy(), workers, systemState: 'Degraded' })).toBeNull();
    expect(run(quorumOperational, { ...healthy(), workers, systemState: 'Shutdown' })).toBeNull();
    expect(run(quorumOperational, { ...healthy(), workers, systemState: 'Ready' })).not.toBeNull();
  });

  it('EpochMonotonicity remembers epochs, allows a restart, and flags regressions and workers ahead', () => {
    const inv = epochMonotonicity();
    expect(inv.check(healthy())).toBeNull();
    expect(inv.check({ ...healthy(), epoch: 2 })?.detail).toContain('coordinator epoch 2 < 3');
    const back = healthy().workers.map((w) => (w.id === 'w0' ? { ...w, epoch: 1 } : w));
    expect(inv.check({ ...healthy(), workers: back })).toMatchObject({ subjects: ['w0'] });
    const ahead = healthy().workers.map((w) => (w.id === 'w2' ? { ...w, epoch: 9 } : w));
    expect(epochMonotonicity().check({ ...healthy(), workers: ahead })).toMatchObject({ subjects: ['w2'] });
    // A restarted worker (Initialized) is a new incarnation: its epoch may start over.
    const fresh = epochMonotonicity();
    fresh.check(healthy());
    const restarted = healthy().workers.map((w) => (w.id === 'w0' ? { ...w, state: 'Initialized' as const, epoch: 0 } : w));
    expect(fresh.check({ ...healthy(), workers: restarted })).toBeNull();
    const rejoined = healthy().workers.map((w) => (w.id === 'w0' ? { ...w, state: 'Joined' as const, epoch: 1 } : w));
    expect(fresh.check({ ...healthy(), workers: rejoined })).toBeNull();
  });

  it('AssignmentCoversModel flags gaps per replica group and ranges outside the model', () => {
    const gap = healthy().assignment.map((a) => (a.workerId === 'w3' ? { ...a, layerStart: 8 } : a));
    expect(run(assignmentCoversModel, { ...healthy(), assignment: gap })?.detail).toBe('replica 1 misses layers 7');
    const outside = [...healthy().assignment, { workerId: 'w9', layerStart: 10, layerEnd: 13 }];
    expect(run(assignmentCoversModel, { ...healthy(), assignment: outside })).toMatchObject({ subjects: ['w9'] });
    expect(run(assignmentCoversModel, { ...healthy(), assignment: [] })?.detail).toContain('replica 0 misses layers 0, 1');
    expect(run(assignmentCoversModel, { ...healthy(), assignment: [], systemState: 'Bootstrapping' })).toBeNull();
  });

  it('NoAssignmentOverlap flags a layer owned twice, and a worker replicating itself', () => {
    const twice = [...healthy().assignment, { workerId: 'w4', layerStart: 5, layerEnd: 6, replica: 0 }];
    const f = run(noAssignmentOverlap, { ...healthy(), assignment: twice });
    expect(f?.detail).toContain('replica 0 layer 5: w0, w4');
    expect([...(f?.subjects ?? [])].sort()).toEqual(['w0', 'w4']);
    const self = [...healthy().assignment, { workerId: 'w0', layerStart: 0, layerEnd: 12, replica: 2 }];
    expect(run(noAssignmentOverlap, { ...healthy(), assignment: self })?.detail).toContain('w0 holds layer 0 in two replica groups');
  });

  it('NoPartialCommits flags a finalized round committed by some but not all', () => {
    const partial = [{ id: 'task-9', participants: ['w0', 'w1', 'w2'], committed: ['w0', 'w2'], finalized: true }];
    expect(run(noPartialCommits, { ...healthy(), commits: partial })).toMatchObject({ subjects: ['w1'] });
    const stranger = [{ id: 'task-9', participants: ['w0'], committed: ['w0', 'w7'], finalized: false }];
    expect(run(noPartialCommits, { ...healthy(), commits: stranger })).toMatchObject({ subjects: ['w7'] });
  });

  it('CheckpointCausality flags wrong parents, shrinking token counts, epoch regressions and duplicates', () => {
    const cps = (extra: ClusterView['checkpoints']) => ({ ...healthy(), checkpoints: [...healthy().checkpoints, ...extra] });
    expect(run(checkpointCausality, cps([{ taskId: 'task-4', seq: 2, parentSeq: 0, tokenCount: 30, epoch: 3 }]))?.detail).toContain('expected 1');
    expect(run(checkpointCausality, cps([{ taskId: 'task-4', seq: 2, parentSeq: 1, tokenCount: 20, epoch: 3 }]))?.detail).toContain('20 tokens');
    expect(run(checkpointCausality, cps([{ taskId: 'task-4', seq: 2, parentSeq: 1, tokenCount: 30, epoch: 2 }]))?.detail).toContain('epoch 2 < parent epoch 3');
    expect(run(checkpointCausality, cps([{ taskId: 'task-4', seq: 1, parentSeq: 0, tokenCount: 20, epoch: 3 }]))?.detail).toContain('duplicate');
    expect(run(checkpointCausality, cps([{ taskId: 'task-6', seq: 0, parentSeq: 3, tokenCount: 1, epoch: 3 }]))).toMatchObject({ subjects: ['task-6'] });
  });

  it('ResultDeterminism flags replicas that disagree', () => {
    const results = [...healthy().results, { taskId: 'task-4', step: 20, replica: 'r1', digest: 'XYZ' }];
    const f = run(resultDeterminism, { ...healthy(), results });
    expect(f?.detail).toContain('task-4 step 20');
    expect([...(f?.subjects ?? [])].sort()).toEqual(['r0', 'r1']);
  });
});

describe('InvariantMonitor', () => {
  afterEach(() => vi.useRealTimers());

  function setup() {
    let view = healthy();
    const clock = new FakeClock(5_000);
    const monitor = new InvariantMonitor<ClusterView>({ view: () => view, clock, maxViolations: 3 });
    for (const inv of clusterInvariants()) monitor.add(inv);
    return { monitor, clock, setView: (v: ClusterView) => (view = v), getView: () => view };
  }
  const twoLeaders = (): ClusterView => ({
    ...healthy(),
    coordinators: [{ id: 'c0', state: 'Coordinating' }, { id: 'c1', state: 'Monitoring' }],
  });

  it('records violations, totals and the currently failing set', () => {
    const { monitor, setView } = setup();
    expect(monitor.checkAll()).toEqual([]);
    setView(twoLeaders());
    const found = monitor.checkAll();
    expect(found).toHaveLength(1);
    expect(found[0]).toMatchObject({ seq: 1, invariant: 'SingleCoordinator', severity: 'Critical', source: 'manual', atWallMs: 5_000, subjects: ['c0', 'c1'] });
    monitor.tick();
    expect(monitor.violations().map((v) => v.source)).toEqual(['manual', 'timer']);
    expect(monitor.totalsByInvariant().get('SingleCoordinator')).toBe(2);
    expect([...monitor.active().keys()]).toEqual(['SingleCoordinator']);
    setView(healthy());
    monitor.checkAll();
    expect(monitor.active().size).toBe(0);
    expect(monitor.checkPasses).toBe(4);
  });

  it('keeps a bounded violation log', () => {
    const { monitor, setView } = setup();
    setView(twoLeaders());
    for (let i = 0; i < 5; i++) monitor.checkAll();
    expect(monitor.violations().map((v) => v.seq)).toEqual([3, 4, 5]);
  });

  it('calls remediation: the invariant’s own first, then hooks at or above their severity', () => {
    const calls: string[] = [];
    let view = healthy();
    const monitor = new InvariantMonitor<ClusterView>({ view: () => view });
    monitor.add({
      name: 'Chatty',
      description: 'always a warning',
      severity: 'Warning',
      check: () => ({ detail: 'meh' }),
    });
    monitor.add({
      ...singleCoordinator,
      check: (v) => singleCoordinator.check(v),
      remediate: (v, current) => {
        calls.push(`own:${v.invariant}`);
        // Demote all but the first leader, as the coordinator would.
        view = { ...current, coordinators: current.coordinators.map((c, i) => (i === 0 ? c : { ...c, state: 'Standby' })) };
      },
    });
    monitor.onViolation((v) => calls.push(`critical-hook:${v.invariant}`), 'Critical');
    monitor.onViolation((v) => calls.push(`any-hook:${v.invariant}`));
    view = twoLeaders();
    monitor.checkAll();
    expect(calls).toEqual(['any-hook:Chatty', 'own:SingleCoordinator', 'critical-hook:SingleCoordinator', 'any-hook:SingleCoordinator']);
    calls.length = 0;
    monitor.checkAll();
    expect(calls).toEqual(['any-hook:Chatty']); // remediation fixed the view
  });

  it('treats a throwing check as a violation', () => {
    const monitor = new InvariantMonitor<number>({ view: () => 1 });
    monitor.add({ name: 'Broken', description: '', severity: 'High', check: () => { throw new Error('oops'); } });
    expect(monitor.checkAll()[0]).toMatchObject({ invariant: 'Broken', severity: 'High', detail: 'check threw: oops' });
  });

  it('checks on every transition of an attached machine', () => {
    const { monitor, setView } = setup();
    const t = createTaskMachine('t');
    const detach = monitor.attach(t);
    t.transition('Scheduled', Trigger.Event('admit'));
    expect(monitor.checkPasses).toBe(1);
    setView(twoLeaders());
    t.transition('Dispatched', Trigger.Event('dispatch'));
    expect(monitor.violations()[0]?.source).toBe('transition');
    detach();
    t.transition('Cancelled', Trigger.Event('client_disconnected'));
    expect(monitor.checkPasses).toBe(2);
  });

  it('refuses duplicate names and can remove invariants', () => {
    const { monitor, setView } = setup();
    expect(() => monitor.add(singleCoordinator)).toThrow(/already registered/);
    expect(monitor.remove('SingleCoordinator')).toBe(true);
    expect(monitor.remove('SingleCoordinator')).toBe(false);
    setView(twoLeaders());
    expect(monitor.checkAll()).toEqual([]);
  });

  it('scheduleInvariantChecks ticks on an interval until stopped', () => {
    vi.useFakeTimers();
    let ticks = 0;
    const stop = scheduleInvariantChecks({ tick: () => ticks++ }, 100);
    vi.advanceTimersByTime(350);
    expect(ticks).toBe(3);
    stop();
    vi.advanceTimersByTime(1_000);
    expect(ticks).toBe(3);
    expect(() => scheduleInvariantChecks({ tick: () => 0 }, 0)).toThrow(RangeError);
  });
});
