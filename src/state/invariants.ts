/**
 * Invariant framework: named checks with a severity, run on every transition (attach) and on a schedule the owner
 * controls (tick). Violations are recorded in a bounded log and passed to remediation hooks.
 */
import { systemClock, type Clock } from './clock.js';
import { BoundedHistory } from './history.js';
import type { TransitionListener } from './record.js';

export const SEVERITIES = ['Info', 'Warning', 'High', 'Critical'] as const;
export type Severity = (typeof SEVERITIES)[number];

const RANK: Readonly<Record<Severity, number>> = { Info: 0, Warning: 1, High: 2, Critical: 3 };

export const Severity = {
  Info: 'Info',
  Warning: 'Warning',
  High: 'High',
  Critical: 'Critical',
  all: SEVERITIES,
  rank(s: Severity): number {
    return RANK[s];
  },
  compare(a: Severity, b: Severity): number {
    return RANK[a] - RANK[b];
  },
  atLeast(s: Severity, min: Severity): boolean {
    return RANK[s] >= RANK[min];
  },
} as const;

/** What a failing check reports: a human sentence and the ids of the components at fault. */
export interface InvariantFinding {
  readonly detail: string;
  readonly subjects?: readonly string[];
}

export interface Invariant<V> {
  readonly name: string;
  readonly description: string;
  readonly severity: Severity;
  /** null when the invariant holds. */
  check(view: V): InvariantFinding | null;
  /** Called with each violation of this invariant, before the monitor's hooks. */
  remediate?(violation: Violation, view: V): void;
}

export type CheckSource = 'transition' | 'timer' | 'manual';

export interface Violation {
  /** Monitor-wide sequence number, from 1. */
  readonly seq: number;
  readonly invariant: string;
  readonly severity: Severity;
  readonly detail: string;
  readonly subjects: readonly string[];
  readonly source: CheckSource;
  readonly atWallMs: number;
}

export type RemediationHook<V> = (violation: Violation, view: V) => void;

export interface InvariantMonitorOptions<V> {
  /** Produces the current view; called once per check pass. */
  readonly view: () => V;
  readonly clock?: Clock;
  /** Violations kept in the log. Default 1000. */
  readonly maxViolations?: number;
}

interface Hook<V> {
  readonly fn: RemediationHook<V>;
  readonly minSeverity: Severity;
}

const NONE: readonly Violation[] = Object.freeze([]);

export class InvariantMonitor<V> {
  private readonly viewFn: () => V;
  private readonly clock: Clock;
  private readonly log: BoundedHistory<Violation>;
  private invariants: readonly Invariant<V>[] = [];
  private hooks: readonly Hook<V>[] = [];
  private readonly totals = new Map<string, number>();
  private readonly current = new Map<string, Violation>();
  private seq = 0;
  private passes = 0;

  constructor(options: InvariantMonitorOptions<V>) {
    this.viewFn = options.view;
    this.clock = options.clock ?? systemClock;
    this.log = new BoundedHistory(options.maxViolations ?? 1000);
  }

  add(invariant: Invariant<V>): this {
    if (this.invariants.some((i) => i.name === invariant.name)) {
      throw new Error(`invariant ${invariant.name} is already registered`);
    }
    this.invariants = [...this.invariants, invariant];
    return this;
  }

  remove(name: string): boolean {
    const before = this.invariants.length;
    this.invariants = this.invariants.filter((i) => i.name !== name);
    this.current.delete(name);
    return this.invariants.length < before;
  }

  list(): readonly Invariant<V>[] {
    return this.invariants;
  }

  /** Calls `hook` for every violation at or above `minSeverity`. Returns a remover. */
  onViolation(hook: RemediationHook<V>, minSeverity: Severity = 'Info'): () => void {
    const entry: Hook<V> = { fn: hook, minSeverity };
    this.hooks = [...this.hooks, entry];
    return () => {
      this.hooks = this.hooks.filter((h) => h !== entry);
    };
  }

  /**
   * Runs every invariant against a fresh view and returns this pass's violations. A check that throws counts as a
   * violation of that invariant (a broken check must not look like a passing one). Hook errors are rethrown after
   * the pass completes.
   */
  checkAll(source: CheckSource = 'manual'): readonly Violation[] {
    this.passes++;
    const invariants = this.invariants;
    if (invariants.length === 0) return NONE;
    const view = this.viewFn();
    let found: Violation[] | null = null;
    for (const inv of invariants) {
      let finding: InvariantFinding | null;
      try {
        finding = inv.check(view);
      } catch (e) {
        finding = { detail: `check threw: ${e instanceof Error ? e.message : String(e)}` };
      }
      if (finding === null) {
        this.current.delete(inv.name);
        continue;
      }
      const v: Violation = {
        seq: ++this.seq,
        invariant: inv.name,
        severity: inv.severity,
        detail: finding.detail,
        subjects: finding.subjects ?? [],
        source,
        atWallMs: this.clock.wallTimeMs(),
      };
      this.log.push(v);
      this.current.set(inv.name, v);
      this.totals.set(inv.name, (this.totals.get(inv.name) ?? 0) + 1);
      (found ??= []).push(v);
    }
    if (found === null) return NONE;
    this.remediate(found, view);
    return found;
  }

  /** The periodic check; the owner decides when (see scheduleInvariantChecks). */
  tick(): readonly Violation[] {
    return this.checkAll('timer');
  }

  /** Checks all invariants after every transition of `source` (a machine or a registry). Returns a detacher. */
  attach(source: { onTransition(listener: TransitionListener): () => void }): () => void {
    return source.onTransition(() => {
      this.checkAll('transition');
    });
  }

  /** Recorded violations, oldest first (bounded). */
  violations(): Violation[] {
    return this.log.toArray();
  }

  /** Latest violation of each invariant that failed its most recent check. */
  active(): ReadonlyMap<string, Violation> {
    return this.current;
  }

  /** Total violations per invariant since creation (for counters). */
  totalsByInvariant(): ReadonlyMap<string, number> {
    return this.totals;
  }

  get checkPasses(): number {
    return this.passes;
  }

  private remediate(found: readonly Violation[], view: V): void {
    const byName = new Map(this.invariants.map((i) => [i.name, i]));
    let firstError: unknown;
    let failed = false;
    const run = (fn: () => void): void => {
      try {
        fn();
      } catch (e) {
        if (!failed) {
          failed = true;
          firstError = e;
        }
      }
    };
    for (const v of found) {
      const inv = byName.get(v.invariant);
      if (inv?.remediate) run(() => inv.remediate?.(v, view));
      for (const h of this.hooks) if (Severity.atLeast(v.severity, h.minSeverity)) run(() => h.fn(v, view));
    }
    if (failed) throw firstError;
  }
}

/**
 * The only timer in this module: calls `monitor.tick()` every `intervalMs`. The interval is unref'd so it never
 * keeps a process alive. Returns a stopper.
 */
export function scheduleInvariantChecks(monitor: { tick(): unknown }, intervalMs: number): () => void {
  if (!(intervalMs > 0)) throw new RangeError(`intervalMs must be > 0, got ${intervalMs}`);
  const handle = setInterval(() => monitor.tick(), intervalMs);
  handle.unref();
  return () => clearInterval(handle);
}
