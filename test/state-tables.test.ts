/**
 * Table-driven tests of all six machines against the tables written out in state-expected-tables.ts (from the
 * documentation): every legal edge is taken, every proof obligation is refused without (or with a near miss of) its
 * evidence, every trigger restriction is enforced, and every undeclared pair is refused.
 */
import { describe, expect, it } from 'vitest';
import { TRIGGER_KINDS, TransitionError, type TriggerKind } from '../src/state/index.js';
import { EXPECTED_MACHINES, expectedEdge } from './state-expected-tables.js';
import { definitionOf, machineAt, triggerOf } from './state-helpers.js';

function captureError(fn: () => unknown): TransitionError {
  try {
    fn();
  } catch (e) {
    if (e instanceof TransitionError) return e;
    throw e;
  }
  throw new Error('expected a TransitionError, nothing was thrown');
}

describe.each(EXPECTED_MACHINES)('$kind machine', (expected) => {
  const def = definitionOf(expected.kind);

  it('declares the documented states, initial and terminal states', () => {
    expect([...def.states]).toEqual(expected.states);
    expect(def.initial).toBe(expected.initial);
    expect([...def.terminal].sort()).toEqual([...expected.terminal].sort());
  });

  it('has exactly the documented edges', () => {
    const actual = def.edges.map((e) => `${e.from} → ${e.to}`).sort();
    const wanted = expected.edges.map((e) => `${e.from} → ${e.to}`).sort();
    expect(actual).toEqual(wanted);
  });

  it.each(expected.edges.map((e) => [`${e.from} → ${e.to}`, e] as const))('takes %s', (_name, edge) => {
    const m = machineAt(expected.kind, edge.from, edge.prior ? edge.to : null);
    const kind: TriggerKind = edge.kinds?.[0] ?? 'Event';
    const record = m.transition(edge.to, triggerOf(kind), { ...edge.good, epoch: 4 });
    expect(m.state).toBe(edge.to);
    expect(m.previousState).toBe(edge.from);
    expect(record).toMatchObject({ from: edge.from, to: edge.to, epoch: 4 });
    expect(record.trigger.kind).toBe(kind);
    expect(m.history().at(-1)).toBe(record);
  });

  const restricted = expected.edges.filter((e) => e.kinds !== undefined);
  it.each(restricted.map((e) => [`${e.from} → ${e.to}`, e] as const))('%s refuses other trigger kinds', (_n, edge) => {
    for (const kind of TRIGGER_KINDS) {
      const m = machineAt(expected.kind, edge.from, edge.prior ? edge.to : null);
      const allowed = edge.kinds?.includes(kind) ?? true;
      expect(m.canTransition(edge.to, triggerOf(kind), edge.good)).toBe(allowed);
      if (!allowed) {
        expect(captureError(() => m.transition(edge.to, triggerOf(kind), edge.good)).code).toBe('TRIGGER_NOT_ALLOWED');
        expect(m.state).toBe(edge.from);
      }
    }
  });

  const proven = expected.edges.filter((e) => e.good !== undefined);
  it.each(proven.map((e) => [`${e.from} → ${e.to}`, e] as const))('%s needs its proof', (_n, edge) => {
    const trigger = triggerOf(edge.kinds?.[0] ?? 'Event');
    const m = machineAt(expected.kind, edge.from, edge.prior ? edge.to : null);
    for (const ctx of [undefined, {}, edge.bad]) {
      const err = captureError(() => m.transition(edge.to, trigger, ctx));
      expect(err.code).toBe('OBLIGATION_UNMET');
      expect(m.state).toBe(edge.from);
      expect(m.history()).toHaveLength(0);
    }
    expect(m.canTransition(edge.to, trigger, edge.good)).toBe(true);
  });

  const returning = expected.edges.filter((e) => e.prior === true);
  if (returning.length > 0) {
    it('returns from holding states only to the prior state', () => {
      for (const edge of returning) {
        for (const other of returning) {
          if (other.to === edge.to) continue;
          const m = machineAt(expected.kind, edge.from, other.to);
          const err = captureError(() => m.transition(edge.to, triggerOf(edge.kinds?.[0] ?? 'Event')));
          expect(err.code).toBe('OBLIGATION_UNMET');
        }
      }
    });
  }

  it('refuses every undeclared pair and stays put', () => {
    let refused = 0;
    for (const from of expected.states) {
      for (const to of expected.states) {
        if (expectedEdge(expected, from, to)) continue;
        const m = machineAt(expected.kind, from);
        const err = captureError(() => m.transition(to, triggerOf('Command')));
        expect(err).toMatchObject({ code: 'ILLEGAL_TRANSITION', from, to, machineKind: expected.kind });
        expect(m.state).toBe(from);
        expect(m.canTransition(to)).toBe(false);
        refused++;
      }
    }
    expect(refused).toBe(expected.states.length ** 2 - expected.edges.length);
  });

  it('refuses names that are not states', () => {
    const m = machineAt(expected.kind, expected.initial);
    const err = captureError(() => m.transition('NoSuchState', triggerOf('Event')));
    expect(err.code).toBe('ILLEGAL_TRANSITION');
    expect(err.detail).toContain('not a');
  });

  it('offers exactly the documented targets from each state', () => {
    for (const from of expected.states) {
      const m = machineAt(expected.kind, from);
      const wanted = expected.edges.filter((e) => e.from === from).map((e) => e.to).sort();
      expect([...m.allowedTargets()].sort()).toEqual(wanted);
      expect(m.isTerminal).toBe(expected.terminal.includes(from));
    }
  });
});
