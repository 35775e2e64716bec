/**
 * The machine core: validated transitions over a shared definition, a bounded history of records, listeners, and
 * exact snapshot/restore. Pure: no IO, no timers; time comes from an injected Clock.
 */
import { systemClock, type Clock } from './clock.js';
import type { Edge, MachineDefinition, MachineView, TransitionContext, TransitionRule } from './definition.js';
import { TransitionError, type TransitionErrorCode } from './errors.js';
import { BoundedHistory } from './history.js';
import {
  serializeRecord,
  type MachineJSON,
  type MachineSnapshot,
  type TransitionEvent,
  type TransitionListener,
  type TransitionRecord,
} from './record.js';
import { parseSnapshot } from './snapshot.js';
import { describeTrigger, type Trigger } from './trigger.js';

export const DEFAULT_HISTORY_CAPACITY = 100;

export interface MachineOptions {
  readonly clock?: Clock;
  /** How many transition records to keep (oldest dropped first). Default 100. */
  readonly historyCapacity?: number;
  /** Starting epoch. Default 0. */
  readonly epoch?: number;
}

/** What the registry and HTTP layer need from any machine, whatever its state type. */
export interface AnyMachine {
  readonly kind: string;
  readonly id: string;
  readonly state: string;
  readonly previousState: string | null;
  readonly epoch: number;
  readonly isTerminal: boolean;
  timeInStateMs(): number;
  history(): readonly TransitionRecord[];
  snapshot(): MachineSnapshot;
  toJSON(): MachineJSON;
  onTransition(listener: TransitionListener): () => void;
}

const EMPTY_CONTEXT: TransitionContext = Object.freeze({});

export class StateMachine<S extends string, C extends TransitionContext = TransitionContext>
  implements MachineView<S>, AnyMachine
{
  readonly definition: MachineDefinition<S, C>;
  readonly id: string;
  private readonly clock: Clock;
  private current: S;
  private previous: S | null = null;
  private epochValue: number;
  private enteredAtNs: bigint;
  private enteredAtWallMs: number;
  private nextRecordId = 1;
  private readonly log: BoundedHistory<TransitionRecord<S>>;
  // Replaced, never mutated, so a listener that unsubscribes during notification cannot skip another.
  private listeners: readonly TransitionListener<S>[] = [];
  private rules: readonly TransitionRule<C>[] = [];

  constructor(definition: MachineDefinition<S, C>, id: string, options: MachineOptions = {}) {
    this.definition = definition;
    this.id = id;
    this.clock = options.clock ?? systemClock;
    this.current = definition.initial;
    const epoch = options.epoch ?? 0;
    assertEpoch(epoch);
    this.epochValue = epoch;
    this.enteredAtNs = this.clock.monotonicNs();
    this.enteredAtWallMs = this.clock.wallTimeMs();
    this.log = new BoundedHistory(options.historyCapacity ?? DEFAULT_HISTORY_CAPACITY);
  }

  /** Rebuilds a machine from a snapshot (possibly parsed from JSON); throws SnapshotError if it does not fit. */
  static restore<S extends string, C extends TransitionContext>(
    definition: MachineDefinition<S, C>,
    snapshot: unknown,
    options: Pick<MachineOptions, 'clock'> = {},
  ): StateMachine<S, C> {
    const snap = parseSnapshot(definition, snapshot);
    const m = new StateMachine(definition, snap.id, {
      clock: options.clock,
      historyCapacity: snap.historyCapacity,
      epoch: snap.epoch,
    });
    m.current = snap.state;
    m.previous = snap.previousState;
    m.enteredAtNs = BigInt(snap.enteredAtNs);
    m.enteredAtWallMs = snap.enteredAtWallMs;
    m.nextRecordId = snap.nextRecordId;
    for (const r of snap.history) m.log.push({ ...r, monotonicNs: BigInt(r.monotonicNs) });
    return m;
  }

  get kind(): string {
    return this.definition.kind;
  }

  get state(): S {
    return this.current;
  }

  get previousState(): S | null {
    return this.previous;
  }

  get epoch(): number {
    return this.epochValue;
  }

  get isTerminal(): boolean {
    return this.definition.terminal.has(this.current);
  }

  /** Epochs only move forward; a lower value is a bug in the caller (or a stale coordinator). */
  setEpoch(epoch: number): void {
    assertEpoch(epoch);
    if (epoch < this.epochValue) {
      throw new RangeError(`${this.kind} ${this.id}: epoch ${epoch} is below current ${this.epochValue}`);
    }
    this.epochValue = epoch;
  }

  timeInStateMs(): number {
    return Number(this.clock.monotonicNs() - this.enteredAtNs) / 1e6;
  }

  /** States reachable in one step according to the table (checks not evaluated). */
  allowedTargets(): readonly S[] {
    return this.definition.targets(this.current);
  }

  /** Adds a rule for this instance only (e.g. the cluster's vertical-coherence guard). Returns a remover. */
  addRule(rule: TransitionRule<C>): () => void {
    this.rules = [...this.rules, rule];
    return () => {
      this.rules = this.rules.filter((r) => r !== rule);
    };
  }

  onTransition(listener: TransitionListener<S>): () => void {
    this.listeners = [...this.listeners, listener];
    return () => {
      this.listeners = this.listeners.filter((l) => l !== listener);
    };
  }

  /**
   * Why `to` would be rejected now, or null if it would be accepted. Without a trigger, trigger-kind restrictions
   * and rules are skipped (they need one).
   */
  check(to: S, trigger?: Trigger, context?: C): TransitionError | null {
    const ctx = context ?? (EMPTY_CONTEXT as C);
    const edge = this.definition.edge(this.current, to);
    if (edge === undefined) {
      return this.error('ILLEGAL_TRANSITION', to, this.illegalDetail(to));
    }
    if (trigger !== undefined && edge.triggers !== null && !edge.triggers.has(trigger.kind)) {
      return this.error('TRIGGER_NOT_ALLOWED', to, `${describeTrigger(trigger)}; edge accepts ${[...edge.triggers].join(', ')}`);
    }
    const epoch = ctx.epoch;
    if (epoch !== undefined && !(epoch >= this.epochValue && Number.isSafeInteger(epoch))) {
      return this.error('EPOCH_REGRESSION', to, `context epoch ${epoch} is not an integer ≥ machine epoch ${this.epochValue}`);
    }
    if (trigger !== undefined) {
      const ruleError = this.checkRules(this.definition.rules, to, trigger, ctx) ?? this.checkRules(this.rules, to, trigger, ctx);
      if (ruleError !== null) return ruleError;
    }
    return this.checkObligations(edge, to, ctx);
  }

  canTransition(to: S, trigger?: Trigger, context?: C): boolean {
    return this.check(to, trigger, context) === null;
  }

  /** Validates and applies a move; throws TransitionError if it is not allowed. Returns the record. */
  transition(to: S, trigger: Trigger, context?: C): TransitionRecord<S> {
    const startNs = this.clock.monotonicNs();
    const ctx = context ?? (EMPTY_CONTEXT as C);
    const err = this.check(to, trigger, ctx);
    if (err !== null) throw err;

    const from = this.current;
    const epoch = ctx.epoch ?? this.epochValue;
    const dwellNs = startNs - this.enteredAtNs;
    this.previous = from;
    this.current = to;
    this.epochValue = epoch;
    this.enteredAtNs = startNs;
    const wallTimeMs = this.clock.wallTimeMs();
    this.enteredAtWallMs = wallTimeMs;
    // The trigger is kept by reference (no copy on the hot path); snapshots and toJSON copy it.
    const record: TransitionRecord<S> = {
      id: this.nextRecordId++,
      from,
      to,
      trigger,
      monotonicNs: startNs,
      wallTimeMs,
      epoch,
      durationUs: Number(this.clock.monotonicNs() - startNs) / 1000,
    };
    this.log.push(record);

    const listeners = this.listeners;
    if (listeners.length > 0) this.notify(listeners, record, Number(dwellNs) / 1e6);
    return record;
  }

  /** Oldest first. */
  history(): TransitionRecord<S>[] {
    return this.log.toArray();
  }

  lastRecord(): TransitionRecord<S> | undefined {
    return this.log.last();
  }

  snapshot(): MachineSnapshot<S> {
    return {
      version: 1,
      kind: this.kind,
      id: this.id,
      state: this.current,
      previousState: this.previous,
      epoch: this.epochValue,
      enteredAtNs: this.enteredAtNs.toString(),
      enteredAtWallMs: this.enteredAtWallMs,
      nextRecordId: this.nextRecordId,
      historyCapacity: this.log.capacity,
      history: this.log.toArray().map(serializeRecord),
    };
  }

  toJSON(): MachineJSON<S> {
    return {
      kind: this.kind,
      id: this.id,
      state: this.current,
      previousState: this.previous,
      terminal: this.isTerminal,
      epoch: this.epochValue,
      timeInStateMs: this.timeInStateMs(),
      enteredAtWallMs: this.enteredAtWallMs,
      history: this.log.toArray().map(serializeRecord),
    };
  }

  private notify(listeners: readonly TransitionListener<S>[], record: TransitionRecord<S>, dwellMs: number): void {
    const event: TransitionEvent<S> = {
      kind: this.definition.kind,
      machineId: this.id,
      from: record.from,
      to: record.to,
      triggerKind: record.trigger.kind,
      durationUs: record.durationUs,
      dwellMs,
      epoch: record.epoch,
      record,
    };
    // The transition is already committed; one failing listener must not starve the others, so the first error
    // is rethrown only after everyone has heard.
    let firstError: unknown;
    let failed = false;
    for (const l of listeners) {
      try {
        l(event);
      } catch (e) {
        if (!failed) {
          failed = true;
          firstError = e;
        }
      }
    }
    if (failed) throw firstError;
  }

  private checkRules(rules: readonly TransitionRule<C>[], to: S, trigger: Trigger, ctx: C): TransitionError | null {
    for (const rule of rules) {
      const reason = rule.check(this.current, to, trigger, ctx, this);
      if (reason !== null) return this.error('RULE_VIOLATED', to, `${rule.name}: ${reason}`);
    }
    return null;
  }

  private checkObligations(edge: Edge<S, C>, to: S, ctx: C): TransitionError | null {
    for (const ob of edge.obligations) {
      if (!ob.holds(ctx, this, to)) return this.error('OBLIGATION_UNMET', to, `${ob.name} (${ob.description})`);
    }
    return null;
  }

  private illegalDetail(to: S): string {
    if (!this.definition.isState(to)) return `${String(to)} is not a ${this.kind} state`;
    if (this.isTerminal) return `${this.current} is terminal`;
    const targets = this.definition.targets(this.current);
    return `allowed from ${this.current}: ${targets.length > 0 ? targets.join(', ') : 'none'}`;
  }

  private error(code: TransitionErrorCode, to: S, detail: string): TransitionError {
    return new TransitionError({ code, machineKind: this.kind, machineId: this.id, from: this.current, to, detail });
  }
}

function assertEpoch(epoch: number): void {
  if (!Number.isSafeInteger(epoch) || epoch < 0) throw new RangeError(`epoch must be an integer ≥ 0, got ${epoch}`);
}
