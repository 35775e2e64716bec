/**
 * Declaring a machine: states, the transition table, and the checks on each edge. A definition is compiled once
 * (at module load) and shared by every instance, so creating a machine per request costs one small object.
 */
import type { Trigger, TriggerKind } from './trigger.js';

/** Every context may carry the epoch the transition happens in; machines add their own optional fields. */
export interface TransitionContext {
  readonly epoch?: number;
}

/** The read-only face of a machine that rules and obligations may look at. */
export interface MachineView<S extends string = string> {
  readonly kind: string;
  readonly id: string;
  readonly state: S;
  /** The state before the last transition, or null if the machine never moved. */
  readonly previousState: S | null;
  readonly epoch: number;
}

/**
 * A precondition that must be proven from the context before an edge may be taken ("a quorum of acks is
 * present"). Obligations fail closed: a missing context field means the proof was not supplied.
 */
export interface ProofObligation<C extends TransitionContext = TransitionContext> {
  readonly name: string;
  readonly description: string;
  holds(context: C, machine: MachineView, to: string): boolean;
}

/** A check applied to every transition of a machine; returns a reason to reject, or null to allow. */
export interface TransitionRule<C extends TransitionContext = TransitionContext> {
  readonly name: string;
  check(from: string, to: string, trigger: Trigger, context: C, machine: MachineView): string | null;
}

export interface TransitionSpec<S extends string, C extends TransitionContext> {
  /** One source state, or several sharing the same target and checks. */
  readonly from: S | readonly S[];
  readonly to: S;
  /** The documented event name (e.g. `begin_inference`); the trigger passed at runtime need not repeat it. */
  readonly event: string;
  /** If set, only these trigger kinds may take the edge. */
  readonly triggers?: readonly TriggerKind[];
  readonly obligations?: readonly ProofObligation<C>[];
}

export interface MachineSpec<S extends string, C extends TransitionContext> {
  readonly kind: string;
  readonly description: string;
  readonly states: readonly S[];
  readonly initial: S;
  /** States with no way out. */
  readonly terminal?: readonly S[];
  readonly stateDescriptions: Readonly<Record<S, string>>;
  readonly transitions: readonly TransitionSpec<S, C>[];
  readonly rules?: readonly TransitionRule<C>[];
}

export interface Edge<S extends string, C extends TransitionContext> {
  readonly from: S;
  readonly to: S;
  readonly event: string;
  /** null = any trigger kind. */
  readonly triggers: ReadonlySet<TriggerKind> | null;
  readonly obligations: readonly ProofObligation<C>[];
}

export interface MachineDefinition<S extends string, C extends TransitionContext = TransitionContext> {
  readonly kind: string;
  readonly description: string;
  readonly states: readonly S[];
  readonly initial: S;
  readonly terminal: ReadonlySet<S>;
  readonly stateDescriptions: Readonly<Record<S, string>>;
  /** In declaration order (the docs render them in this order). */
  readonly edges: readonly Edge<S, C>[];
  readonly rules: readonly TransitionRule<C>[];
  edge(from: S, to: S): Edge<S, C> | undefined;
  /** Targets reachable in one step from `from`, in declaration order. */
  targets(from: S): readonly S[];
  isState(value: unknown): value is S;
}

/** Compiles and sanity-checks a spec; throws on a malformed table so mistakes surface at import time. */
export function defineMachine<S extends string, C extends TransitionContext>(
  spec: MachineSpec<S, C>,
): MachineDefinition<S, C> {
  const stateSet = new Set<S>(spec.states);
  const fail = (msg: string): never => {
    throw new Error(`defineMachine(${spec.kind}): ${msg}`);
  };
  if (stateSet.size !== spec.states.length) fail('duplicate state names');
  if (!stateSet.has(spec.initial)) fail(`initial state ${spec.initial} is not declared`);
  const terminal = new Set<S>(spec.terminal ?? []);
  for (const t of terminal) if (!stateSet.has(t)) fail(`terminal state ${t} is not declared`);

  const table = new Map<S, Map<S, Edge<S, C>>>();
  for (const s of spec.states) table.set(s, new Map());
  const edges: Edge<S, C>[] = [];
  for (const t of spec.transitions) {
    const sources: readonly S[] = typeof t.from === 'string' ? [t.from as S] : (t.from as readonly S[]);
    for (const from of sources) {
      if (!stateSet.has(from)) fail(`edge source ${from} is not declared`);
      if (!stateSet.has(t.to)) fail(`edge target ${t.to} is not declared`);
      if (from === t.to) fail(`self-loop on ${from}: stay in a state instead of transitioning`);
      if (terminal.has(from)) fail(`terminal state ${from} has an outgoing edge`);
      const row = table.get(from) as Map<S, Edge<S, C>>;
      if (row.has(t.to)) fail(`duplicate edge ${from} → ${t.to}`);
      const edge: Edge<S, C> = {
        from,
        to: t.to,
        event: t.event,
        triggers: t.triggers ? new Set(t.triggers) : null,
        obligations: t.obligations ?? [],
      };
      row.set(t.to, edge);
      edges.push(edge);
    }
  }
  for (const s of spec.states) {
    if (!(s in spec.stateDescriptions)) fail(`state ${s} has no description`);
  }
  // Every state must be reachable, or the table has a typo.
  const seen = new Set<S>([spec.initial]);
  const queue: S[] = [spec.initial];
  while (queue.length > 0) {
    const s = queue.pop() as S;
    for (const next of (table.get(s) as Map<S, Edge<S, C>>).keys()) {
      if (!seen.has(next)) {
        seen.add(next);
        queue.push(next);
      }
    }
  }
  for (const s of spec.states) if (!seen.has(s)) fail(`state ${s} is unreachable from ${spec.initial}`);

  const targets = new Map<S, readonly S[]>();
  for (const [s, row] of table) targets.set(s, [...row.keys()]);

  return {
    kind: spec.kind,
    description: spec.description,
    states: spec.states,
    initial: spec.initial,
    terminal,
    stateDescriptions: spec.stateDescriptions,
    edges,
    rules: spec.rules ?? [],
    edge: (from, to) => table.get(from)?.get(to),
    targets: (from) => targets.get(from) ?? [],
    isState: (value): value is S => typeof value === 'string' && stateSet.has(value as S),
  };
}
