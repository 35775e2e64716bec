/** The machine core: clock, records, history bound, listeners, rules, epochs, errors, snapshot/restore. */
import { describe, expect, it } from 'vitest';
import {
  BoundedHistory,
  FakeClock,
  Phase,
  SnapshotError,
  StateMachine,
  Trigger,
  TransitionError,
  createConnectionMachine,
  createTaskMachine,
  createWorkerMachine,
  defineMachine,
  describeTrigger,
  parseTrigger,
  systemClock,
  type TransitionEvent,
} from '../src/state/index.js';

const ev = Trigger.Event('test');

/** A connection flapping Active ↔ Idle: any number of legal transitions. */
function flap(times: number, clock = new FakeClock(), historyCapacity?: number) {
  const c = createConnectionMachine('c', { clock, historyCapacity });
  c.transition('Established', ev);
  c.transition('Active', ev);
  for (let i = 0; i < times - 2; i++) c.transition(c.state === 'Active' ? 'Idle' : 'Active', ev);
  return c;
}

describe('clock and records', () => {
  it('records monotonic and wall time from the injected clock, and time in state', () => {
    const clock = new FakeClock(1_000_000, 5_000n);
    const t = createTaskMachine('t1', { clock });
    expect(t.state).toBe('Queued');
    clock.advance(250);
    expect(t.timeInStateMs()).toBe(250);
    const r = t.transition('Scheduled', Trigger.Command('admit'), { epoch: 3 });
    expect(r).toEqual({
      id: 1,
      from: 'Queued',
      to: 'Scheduled',
      trigger: { kind: 'Command', name: 'admit' },
      monotonicNs: 5_000n + 250_000_000n,
      wallTimeMs: 1_000_250,
      epoch: 3,
      durationUs: 0,
    });
    expect(t.timeInStateMs()).toBe(0);
    clock.advance(1.5);
    expect(t.timeInStateMs()).toBe(1.5);
  });

  it('measures durationUs with the real clock', () => {
    const t = createTaskMachine('t', { clock: systemClock });
    const r = t.transition('Scheduled', ev);
    expect(r.durationUs).toBeGreaterThanOrEqual(0);
    expect(r.durationUs).toBeLessThan(10_000);
  });

  it('FakeClock refuses to go backwards', () => {
    expect(() => new FakeClock().advance(-1)).toThrow(RangeError);
  });
});

describe('history', () => {
  it('keeps the newest records up to the default capacity of 100, oldest first', () => {
    const c = flap(250);
    const h = c.history();
    expect(h).toHaveLength(100);
    expect(h[0]?.id).toBe(151);
    expect(h.at(-1)?.id).toBe(250);
    expect(c.lastRecord()?.id).toBe(250);
  });

  it('honours a custom capacity', () => {
    const c = flap(10, new FakeClock(), 3);
    expect(c.history().map((r) => r.id)).toEqual([8, 9, 10]);
    expect(() => createTaskMachine('x', { historyCapacity: 0 })).toThrow(RangeError);
  });

  it('BoundedHistory wraps', () => {
    const h = new BoundedHistory<number>(3);
    expect(h.last()).toBeUndefined();
    for (let i = 1; i <= 7; i++) h.push(i);
    expect(h.toArray()).toEqual([5, 6, 7]);
    expect(h.size).toBe(3);
    expect(h.last()).toBe(7);
  });
});

describe('listeners', () => {
  it('hear kind, states, trigger kind, duration and dwell time; unsubscribe works', () => {
    const clock = new FakeClock();
    const w = createWorkerMachine('w1', { clock });
    const heard: TransitionEvent[] = [];
    const off = w.onTransition((e) => heard.push(e));
    clock.advance(40);
    w.transition('Joined', Trigger.Event('registered'), { epoch: 2 });
    expect(heard).toHaveLength(1);
    expect(heard[0]).toMatchObject({ kind: 'Worker', machineId: 'w1', from: 'Initialized', to: 'Joined', triggerKind: 'Event', durationUs: 0, dwellMs: 40, epoch: 2 });
    expect(heard[0]?.record).toBe(w.lastRecord());
    off();
    w.transition('Failed', Trigger.Failure('w1', 'exit 137'));
    expect(heard).toHaveLength(1);
  });

  it('a throwing listener does not stop the others, the move stands and the error surfaces', () => {
    const t = createTaskMachine('t');
    const calls: string[] = [];
    t.onTransition(() => {
      calls.push('a');
      throw new Error('boom');
    });
    t.onTransition(() => calls.push('b'));
    expect(() => t.transition('Scheduled', ev)).toThrow('boom');
    expect(calls).toEqual(['a', 'b']);
    expect(t.state).toBe('Scheduled');
  });

  it('a listener may unsubscribe another during notification without skipping anyone this round', () => {
    const t = createTaskMachine('t');
    const calls: string[] = [];
    let offB = (): void => undefined;
    t.onTransition(() => {
      calls.push('a');
      offB();
    });
    offB = t.onTransition(() => calls.push('b'));
    t.transition('Scheduled', ev);
    t.transition('Dispatched', ev);
    expect(calls).toEqual(['a', 'b', 'a']);
  });
});

describe('rules, obligations and errors', () => {
  it('instance rules can veto a move and be removed', () => {
    const t = createTaskMachine('t');
    const remove = t.addRule({ name: 'NoAdmissionWhileDegraded', check: (_f, to) => (to === 'Scheduled' ? 'system is Degraded' : null) });
    let err: unknown;
    try {
      t.transition('Scheduled', ev);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(TransitionError);
    expect(err).toMatchObject({ code: 'RULE_VIOLATED', machineKind: 'Task', machineId: 't', from: 'Queued', to: 'Scheduled' });
    expect((err as Error).message).toContain('NoAdmissionWhileDegraded: system is Degraded');
    expect(t.canTransition('Scheduled', ev)).toBe(false);
    expect(t.canTransition('Scheduled')).toBe(true); // rules need a trigger
    remove();
    t.transition('Scheduled', ev);
    expect(t.state).toBe('Scheduled');
  });

  it('leaving a terminal state is illegal and says so', () => {
    const t = createTaskMachine('t');
    t.transition('Cancelled', Trigger.Event('client_disconnected'));
    expect(t.isTerminal).toBe(true);
    const err = t.check('Queued', ev);
    expect(err?.code).toBe('ILLEGAL_TRANSITION');
    expect(err?.detail).toContain('terminal');
  });

  it('check() without a trigger ignores trigger restrictions, with one enforces them', () => {
    const w = createWorkerMachine('w');
    w.transition('Joined', ev);
    expect(w.check('Suspect')).toBeNull();
    expect(w.check('Suspect', Trigger.Command('x'))?.code).toBe('TRIGGER_NOT_ALLOWED');
    expect(w.check('Suspect', Trigger.Timeout(300))).toBeNull();
  });
});

describe('epochs', () => {
  it('are recorded per transition, taken from context or setEpoch, and never decrease', () => {
    const t = createTaskMachine('t', { epoch: 2 });
    expect(t.transition('Scheduled', ev).epoch).toBe(2);
    expect(t.transition('Dispatched', ev, { epoch: 5 }).epoch).toBe(5);
    expect(t.epoch).toBe(5);
    const err = t.check('Executing', ev, { epoch: 4, acks: 1, requiredAcks: 1 });
    expect(err?.code).toBe('EPOCH_REGRESSION');
    expect(() => t.setEpoch(4)).toThrow(RangeError);
    expect(() => t.setEpoch(1.5)).toThrow(RangeError);
    t.setEpoch(7);
    expect(t.transition('Executing', ev, { acks: 1, requiredAcks: 1 }).epoch).toBe(7);
    expect(() => createTaskMachine('bad', { epoch: -1 })).toThrow(RangeError);
  });
});

describe('snapshot and restore', () => {
  it('round-trips exactly through JSON, including a wrapped history', () => {
    const clock = new FakeClock(1_700_000_000_000);
    const c = flap(130, clock, 100);
    c.setEpoch(9);
    clock.advance(12.5);
    const json = JSON.stringify(c.snapshot());
    const restored = StateMachine.restore(c.definition, JSON.parse(json) as unknown, { clock });
    expect(JSON.stringify(restored.snapshot())).toBe(json);
    expect(restored.history()).toEqual(c.history());
    expect(restored.state).toBe(c.state);
    expect(restored.epoch).toBe(9);
    expect(restored.timeInStateMs()).toBe(12.5);
    // The restored machine continues the id sequence.
    const next = restored.transition(restored.state === 'Active' ? 'Idle' : 'Active', ev);
    expect(next.id).toBe(131);
    expect(restored.history()).toHaveLength(100);
  });

  it('restores with its listeners detached (they are code, not state)', () => {
    const t = createTaskMachine('t');
    let heard = 0;
    t.onTransition(() => heard++);
    const r = StateMachine.restore(t.definition, t.snapshot());
    r.transition('Scheduled', ev);
    expect(heard).toBe(0);
  });

  it('refuses snapshots that do not fit the definition', () => {
    const c = flap(5);
    const good = JSON.parse(JSON.stringify(c.snapshot())) as Record<string, unknown>;
    const history = good['history'] as Record<string, unknown>[];
    const variants: [string, Record<string, unknown>][] = [
      ['wrong kind', { ...good, kind: 'Task' }],
      ['unknown state', { ...good, state: 'Flying' }],
      ['bad version', { ...good, version: 2 }],
      ['negative epoch', { ...good, epoch: -1 }],
      ['ids out of order', { ...good, history: [history[1], history[0], ...history.slice(2)] }],
      ['spliced newest record', { ...good, state: 'Terminated' }],
      ['history beyond capacity', { ...good, historyCapacity: 2 }],
      ['bad trigger', { ...good, history: [{ ...history[0], trigger: { kind: 'Magic' } }, ...history.slice(1)] }],
      ['bad nanoseconds', { ...good, enteredAtNs: '12.5' }],
    ];
    for (const [name, snap] of variants) {
      expect(() => StateMachine.restore(c.definition, snap), name).toThrow(SnapshotError);
    }
    expect(() => StateMachine.restore(c.definition, null)).toThrow(SnapshotError);
  });

  it('toJSON is JSON-safe and carries what GET /api/v1/state shows', () => {
    const clock = new FakeClock(0);
    const t = createTaskMachine('req-1', { clock });
    t.transition('Scheduled', ev, { epoch: 1 });
    clock.advance(3);
    const j = JSON.parse(JSON.stringify(t)) as Record<string, unknown>;
    expect(j).toMatchObject({ kind: 'Task', id: 'req-1', state: 'Scheduled', epoch: 1, timeInStateMs: 3, terminal: false });
    expect((j['history'] as unknown[])[0]).toMatchObject({ id: 1, from: 'Queued', to: 'Scheduled', monotonicNs: '0' });
  });
});

describe('defineMachine', () => {
  type S = 'A' | 'B' | 'C';
  const descriptions = { A: 'a', B: 'b', C: 'c' };
  const base = { kind: 'T', description: 't', states: ['A', 'B', 'C'] as const, initial: 'A' as const, stateDescriptions: descriptions };
  const ok = [
    { from: 'A' as const, to: 'B' as const, event: 'ab' },
    { from: 'B' as const, to: 'C' as const, event: 'bc' },
  ];

  it('accepts a sound table and shares it between instances', () => {
    const def = defineMachine<S, object>({ ...base, transitions: ok });
    expect(def.targets('A')).toEqual(['B']);
    const a = new StateMachine(def, 'a');
    const b = new StateMachine(def, 'b');
    expect(a.definition).toBe(b.definition);
  });

  it.each([
    ['unknown target', [...ok, { from: 'A', to: 'Z', event: 'x' }]],
    ['self-loop', [...ok, { from: 'A', to: 'A', event: 'x' }]],
    ['duplicate edge', [...ok, { from: 'A', to: 'B', event: 'again' }]],
    ['unreachable state', [{ from: 'A', to: 'B', event: 'ab' }]],
  ])('rejects a table with %s', (_name, transitions) => {
    expect(() => defineMachine<S, object>({ ...base, transitions: transitions as typeof ok })).toThrow(/defineMachine\(T\)/);
  });

  it('rejects an exit from a terminal state', () => {
    expect(() => defineMachine<S, object>({ ...base, terminal: ['B'], transitions: ok })).toThrow(/terminal/);
  });
});

describe('Phase and Trigger', () => {
  it('orders phases and measures distance', () => {
    expect(Phase.next('Assignment')).toBe('Computation');
    expect(Phase.next('Aggregation')).toBe('Commitment');
    expect(Phase.next('Commitment')).toBeNull();
    expect(Phase.distance('Assignment', 'Commitment')).toBe(3);
    expect(Phase.distance('Aggregation', 'Computation')).toBe(1);
    expect(Phase.compare('Assignment', 'Computation')).toBeLessThan(0);
    expect(Phase.index('Commitment')).toBe(3);
    expect(Phase.is('Computation')).toBe(true);
    expect(Phase.is('Lunch')).toBe(false);
  });

  it('builds, describes and parses every trigger kind', () => {
    const all = [
      Trigger.Command('bootstrap'),
      Trigger.Event('quorum_established'),
      Trigger.Cascade('w3', 'stage lost'),
      Trigger.Timeout(300),
      Trigger.Failure('w3', 'exit 137'),
      Trigger.Recovery(['w4', 'w5']),
    ];
    expect(all.map(describeTrigger)).toEqual([
      'Command(bootstrap)',
      'Event(quorum_established)',
      'Cascade(w3: stage lost)',
      'Timeout(300ms)',
      'Failure(w3: exit 137)',
      'Recovery(w4, w5)',
    ]);
    for (const t of all) expect(parseTrigger(JSON.parse(JSON.stringify(t)))).toEqual(t);
    expect(parseTrigger({ kind: 'Recovery', nodes: [1] })).toBeNull();
    expect(parseTrigger({ kind: 'Timeout' })).toBeNull();
  });
});
