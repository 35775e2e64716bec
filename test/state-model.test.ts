/**
 * Model-based tests: fast-check drives each machine with random transition attempts (random target, trigger kind,
 * context and epoch, with the fake clock advancing randomly) and predicts every outcome from the independently
 * written tables. After each step: no undeclared state, the history stays bounded and ordered, and a JSON
 * snapshot restores to an identical machine.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  FakeClock,
  StateMachine,
  TRIGGER_KINDS,
  TransitionError,
  type TransitionErrorCode,
  type TriggerKind,
} from '../src/state/index.js';
import { EXPECTED_MACHINES, expectedEdge, type ExpectedMachine } from './state-expected-tables.js';
import { definitionOf, triggerOf, type LooseMachine } from './state-helpers.js';

interface Model {
  state: string;
  previous: string | null;
  epoch: number;
  transitions: number;
}

interface Real {
  machine: LooseMachine;
  clock: FakeClock;
}

type CtxChoice = 'good' | 'bad' | 'none';

/** The code the documented tables predict, in the machine's documented check order; null = accepted. */
function predict(spec: ExpectedMachine, model: Model, to: string, kind: TriggerKind, ctx: CtxChoice, epoch: number | undefined): TransitionErrorCode | null {
  const edge = expectedEdge(spec, model.state, to);
  if (!edge) return 'ILLEGAL_TRANSITION';
  if (edge.kinds && !edge.kinds.includes(kind)) return 'TRIGGER_NOT_ALLOWED';
  if (epoch !== undefined && epoch < model.epoch) return 'EPOCH_REGRESSION';
  if (edge.prior && model.previous !== to) return 'OBLIGATION_UNMET';
  if (edge.good && ctx !== 'good') return 'OBLIGATION_UNMET';
  return null;
}

class Attempt implements fc.Command<Model, Real> {
  constructor(
    private readonly spec: ExpectedMachine,
    private readonly to: string,
    private readonly kind: TriggerKind,
    private readonly ctx: CtxChoice,
    private readonly epochDelta: number | null,
    private readonly advanceMs: number,
    private readonly capacity: number,
  ) {}

  check(): boolean {
    return true;
  }

  run(model: Model, real: Real): void {
    real.clock.advance(this.advanceMs);
    const edge = expectedEdge(this.spec, model.state, this.to);
    const base = this.ctx === 'good' ? edge?.good : this.ctx === 'bad' ? edge?.bad : undefined;
    const epoch = this.epochDelta === null ? undefined : model.epoch + this.epochDelta;
    const context = epoch === undefined ? base : { ...base, epoch };
    const predicted = predict(this.spec, model, this.to, this.kind, this.ctx, epoch);

    let actual: TransitionErrorCode | null = null;
    try {
      real.machine.transition(this.to, triggerOf(this.kind), context);
    } catch (e) {
      if (!(e instanceof TransitionError)) throw e;
      actual = e.code;
    }
    expect(actual).toBe(predicted);
    if (predicted === null) {
      model.previous = model.state;
      model.state = this.to;
      model.epoch = epoch ?? model.epoch;
      model.transitions++;
    }
    this.checkInvariants(model, real);
  }

  private checkInvariants(model: Model, real: Real): void {
    const m = real.machine;
    expect(this.spec.states).toContain(m.state);
    expect(m.state).toBe(model.state);
    expect(m.previousState).toBe(model.previous);
    expect(m.epoch).toBe(model.epoch);

    const history = m.history();
    expect(history.length).toBe(Math.min(model.transitions, this.capacity));
    history.forEach((r, i) => {
      expect(r.id).toBe(model.transitions - history.length + 1 + i);
      expect(expectedEdge(this.spec, r.from, r.to)).toBeDefined();
      const next = history[i + 1];
      if (next) {
        expect(next.from).toBe(r.to);
        expect(next.monotonicNs >= r.monotonicNs).toBe(true);
        expect(next.epoch).toBeGreaterThanOrEqual(r.epoch);
      }
    });
    if (history.length > 0) expect(history.at(-1)?.to).toBe(m.state);

    const json = JSON.parse(JSON.stringify(m.snapshot())) as unknown;
    const restored = StateMachine.restore(m.definition, json, { clock: real.clock });
    expect(restored.snapshot()).toEqual(m.snapshot());
    expect(restored.history()).toEqual(history);
    expect(restored.timeInStateMs()).toBe(m.timeInStateMs());
  }

  toString(): string {
    return `${this.to} via ${this.kind} ctx=${this.ctx} epoch${this.epochDelta === null ? '=∅' : `+${this.epochDelta}`} after ${this.advanceMs}ms`;
  }
}

function commandsFor(spec: ExpectedMachine, capacity: number): fc.Arbitrary<Iterable<fc.Command<Model, Real>>> {
  // Bias toward targets the current state can actually reach, or random walks would rarely leave the start.
  const attempt = fc
    .record({
      to: fc.constantFrom(...spec.states),
      kind: fc.constantFrom(...TRIGGER_KINDS),
      ctx: fc.constantFrom<CtxChoice>('good', 'good', 'good', 'bad', 'none'),
      epochDelta: fc.option(fc.integer({ min: -1, max: 2 }), { freq: 2 }),
      advanceMs: fc.integer({ min: 0, max: 5_000 }),
    })
    .map(({ to, kind, ctx, epochDelta, advanceMs }) => new Attempt(spec, to, kind, ctx, epochDelta, advanceMs, capacity));
  return fc.commands([attempt], { size: '+1' });
}

describe.each(EXPECTED_MACHINES)('$kind machine under random event sequences', (spec) => {
  it.each([3, 100])('matches the model (history capacity %i)', (capacity) => {
    fc.assert(
      fc.property(commandsFor(spec, capacity), (cmds) => {
        const clock = new FakeClock(1_700_000_000_000);
        const machine = new StateMachine(definitionOf(spec.kind), 'm', { clock, historyCapacity: capacity });
        fc.modelRun(() => ({ model: { state: spec.initial, previous: null, epoch: 0, transitions: 0 }, real: { machine, clock } }), cmds);
      }),
      { numRuns: 60 },
    );
  });

  it('reaches every state along some random walk (the generator is not stuck)', () => {
    const seen = new Set<string>();
    fc.assert(
      fc.property(fc.array(fc.tuple(fc.nat(), fc.nat()), { minLength: 50, maxLength: 50 }), (picks) => {
        let state = spec.initial;
        let previous: string | null = null;
        seen.add(state);
        for (const [a] of picks) {
          const out = spec.edges.filter((e) => e.from === state && (!e.prior || e.to === previous));
          if (out.length === 0) break;
          const e = out[a % out.length] as (typeof out)[number];
          previous = state;
          state = e.to;
          seen.add(state);
        }
      }),
      { numRuns: 100, seed: 7 },
    );
    expect([...seen].sort()).toEqual([...spec.states].sort());
  });
});
