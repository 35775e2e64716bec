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

function check(condition: boolean, message: string): asserts condition {
  if (!condition) throw new Error(message);
}

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
  private to = '?';

  constructor(
    private readonly spec: ExpectedMachine,
    /** Resolved when run: an index into the documented targets of the model's state, or into all states. */
    private readonly pick: number,
    private readonly anyState: boolean,
    private readonly kind: TriggerKind,
    private readonly ctx: CtxChoice,
    private readonly epochDelta: number | null,
    private readonly advanceMs: number,
    private readonly capacity: number,
    private readonly visited: Set<string>,
  ) {}

  check(): boolean {
    return true;
  }

  run(model: Model, real: Real): void {
    const targets = this.spec.edges.filter((e) => e.from === model.state).map((e) => e.to);
    const pool = this.anyState || targets.length === 0 ? this.spec.states : targets;
    this.to = pool[this.pick % pool.length] as string;
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
    this.visited.add(real.machine.state);
    this.checkInvariants(model, real);
  }

  // Plain throws rather than expect() in the per-record loop: this runs thousands of times per test.
  private checkInvariants(model: Model, real: Real): void {
    const m = real.machine;
    check(this.spec.states.includes(m.state), `undeclared state ${m.state}`);
    check(m.state === model.state && m.previousState === model.previous, `state ${m.previousState} → ${m.state}, model ${model.previous} → ${model.state}`);
    check(m.epoch === model.epoch, `epoch ${m.epoch}, model ${model.epoch}`);

    const history = m.history();
    check(history.length === Math.min(model.transitions, this.capacity), `history length ${history.length}`);
    for (let i = 0; i < history.length; i++) {
      const r = history[i] as (typeof history)[number];
      check(r.id === model.transitions - history.length + 1 + i, `record ids out of order at ${i}: ${r.id}`);
      check(expectedEdge(this.spec, r.from, r.to) !== undefined, `recorded undeclared edge ${r.from} → ${r.to}`);
      const next = history[i + 1];
      if (next) {
        check(next.from === r.to, `records do not chain: ${r.to} then ${next.from}`);
        check(next.monotonicNs >= r.monotonicNs && next.wallTimeMs >= r.wallTimeMs, 'time went backwards');
        check(next.epoch >= r.epoch, 'epoch went backwards');
      }
    }
    if (history.length > 0) check(history[history.length - 1]?.to === m.state, 'newest record is not the state');

    const snapshot = JSON.stringify(m.snapshot());
    const restored = StateMachine.restore(m.definition, JSON.parse(snapshot) as unknown, { clock: real.clock });
    check(JSON.stringify(restored.snapshot()) === snapshot, 'snapshot did not round-trip');
    check(restored.timeInStateMs() === m.timeInStateMs(), 'time in state changed across restore');
  }

  toString(): string {
    return `${this.to} via ${this.kind} ctx=${this.ctx} epoch${this.epochDelta === null ? '=∅' : `+${this.epochDelta}`} after ${this.advanceMs}ms`;
  }
}

function commandsFor(spec: ExpectedMachine, capacity: number, visited: Set<string>): fc.Arbitrary<Iterable<fc.Command<Model, Real>>> {
  // Most attempts aim at a documented target of the current state (often the first, which the tables list along the
  // happy path), or random walks would rarely get past the first terminal state.
  const attempt = fc
    .record({
      pick: fc.oneof(fc.constant(0), fc.nat()),
      anyState: fc.constantFrom(false, false, true),
      kind: fc.constantFrom(...TRIGGER_KINDS),
      ctx: fc.constantFrom<CtxChoice>('good', 'good', 'good', 'bad', 'none'),
      epochDelta: fc.option(fc.integer({ min: -1, max: 2 }), { freq: 2 }),
      advanceMs: fc.integer({ min: 0, max: 5_000 }),
    })
    .map(
      ({ pick, anyState, kind, ctx, epochDelta, advanceMs }) =>
        new Attempt(spec, pick, anyState, kind, ctx, epochDelta, advanceMs, capacity, visited),
    );
  return fc.commands([attempt], { size: '+1' });
}

describe.each(EXPECTED_MACHINES)('$kind machine under random event sequences', (spec) => {
  const visited = new Set<string>();

  it.each([3, 100])('matches the model (history capacity %i)', (capacity) => {
    fc.assert(
      fc.property(commandsFor(spec, capacity, visited), (cmds) => {
        const clock = new FakeClock(1_700_000_000_000);
        const machine = new StateMachine(definitionOf(spec.kind), 'm', { clock, historyCapacity: capacity });
        fc.modelRun(() => ({ model: { state: spec.initial, previous: null, epoch: 0, transitions: 0 }, real: { machine, clock } }), cmds);
      }),
      { numRuns: 60 },
    );
  });

  it('visited every declared state during those runs (the generator is not stuck)', () => {
    expect([...visited].sort()).toEqual([...spec.states].sort());
  });
});
