/**
 * Holds the live machines by kind and id, fans their transitions into one listener list (metrics, invariant
 * checks), snapshots them all, and feeds the coherence measures.
 */
import { systemClock, type Clock } from './clock.js';
import { COMPONENT_KINDS, MACHINE_DEFINITIONS, isMachineKind, type MachineByKind, type MachineKind } from './catalog.js';
import {
  horizontalCoherence,
  temporalCoherence,
  verticalCoherence,
  type ComponentStateReport,
  type HorizontalCoherenceReport,
  type TemporalCoherenceReport,
  type VerticalCoherenceReport,
} from './coherence.js';
import { SnapshotError } from './errors.js';
import { StateMachine, type AnyMachine } from './machine.js';
import type { CoordinatorState } from './machines/coordinator.js';
import type { SystemState } from './machines/system.js';
import { workerPhase, type WorkerState } from './machines/worker.js';
import type { MachineJSON, MachineSnapshot, TransitionEvent, TransitionListener } from './record.js';

export interface RegistrySnapshot {
  readonly version: 1;
  readonly machines: readonly MachineSnapshot[];
}

/** Machine states the coordinator copies into its ClusterView. */
export interface ComponentView {
  readonly systemState: SystemState | null;
  readonly coordinators: readonly { readonly id: string; readonly state: CoordinatorState }[];
  readonly workers: readonly { readonly id: string; readonly state: WorkerState; readonly epoch: number }[];
}

export interface CoherenceReport {
  readonly vertical: VerticalCoherenceReport | null;
  readonly horizontal: HorizontalCoherenceReport;
  readonly temporal: TemporalCoherenceReport;
}

export interface RegistryOptions {
  /** Default time source for report timestamps and staleness. */
  readonly clock?: Clock;
}

const key = (kind: string, id: string): string => `${kind}/${id}`;

export class MachineRegistry {
  private readonly clock: Clock;
  private readonly byKind = new Map<MachineKind, Map<string, AnyMachine>>();
  private readonly detach = new Map<AnyMachine, () => void>();
  private readonly lastReportMs = new Map<string, number>();
  private listeners: readonly TransitionListener[] = [];
  private readonly forward = (event: TransitionEvent): void => {
    let firstError: unknown;
    let failed = false;
    for (const l of this.listeners) {
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
  };

  constructor(options: RegistryOptions = {}) {
    this.clock = options.clock ?? systemClock;
    for (const k of Object.keys(MACHINE_DEFINITIONS) as MachineKind[]) this.byKind.set(k, new Map());
  }

  /** Rebuilds every machine of a registry snapshot (listeners are not part of a snapshot). */
  static restore(snapshot: unknown, options: RegistryOptions = {}): MachineRegistry {
    if (typeof snapshot !== 'object' || snapshot === null) throw new SnapshotError('registry snapshot: not an object');
    const s = snapshot as { version?: unknown; machines?: unknown };
    if (s.version !== 1) throw new SnapshotError(`registry snapshot: unsupported version ${String(s.version)}`);
    if (!Array.isArray(s.machines)) throw new SnapshotError('registry snapshot: machines must be an array');
    const registry = new MachineRegistry(options);
    for (const m of s.machines as unknown[]) {
      const kind = typeof m === 'object' && m !== null ? (m as { kind?: unknown }).kind : undefined;
      if (!isMachineKind(kind)) throw new SnapshotError(`registry snapshot: unknown machine kind ${String(kind)}`);
      registry.add(StateMachine.restore(MACHINE_DEFINITIONS[kind], m, { clock: options.clock }));
    }
    return registry;
  }

  /** Registers a machine; its transitions reach this registry's listeners. Throws on a duplicate kind/id. */
  add<M extends AnyMachine>(machine: M): M {
    if (!isMachineKind(machine.kind)) throw new Error(`unknown machine kind ${machine.kind}`);
    const row = this.byKind.get(machine.kind) as Map<string, AnyMachine>;
    if (row.has(machine.id)) throw new Error(`${machine.kind} ${machine.id} is already registered`);
    row.set(machine.id, machine);
    this.detach.set(machine, machine.onTransition(this.forward));
    return machine;
  }

  remove(kind: MachineKind, id: string): boolean {
    const row = this.byKind.get(kind);
    const m = row?.get(id);
    if (!row || !m) return false;
    row.delete(id);
    this.detach.get(m)?.();
    this.detach.delete(m);
    this.lastReportMs.delete(key(kind, id));
    return true;
  }

  /** Removes every machine matching `predicate` (e.g. finished tasks); returns how many. */
  prune(predicate: (machine: AnyMachine) => boolean): number {
    let removed = 0;
    for (const m of this.all()) {
      if (predicate(m) && this.remove(m.kind as MachineKind, m.id)) removed++;
    }
    return removed;
  }

  get<K extends MachineKind>(kind: K, id: string): MachineByKind[K] | undefined {
    return this.byKind.get(kind)?.get(id) as MachineByKind[K] | undefined;
  }

  list<K extends MachineKind>(kind: K): MachineByKind[K][] {
    return [...(this.byKind.get(kind)?.values() ?? [])] as MachineByKind[K][];
  }

  all(): AnyMachine[] {
    const out: AnyMachine[] = [];
    for (const row of this.byKind.values()) for (const m of row.values()) out.push(m);
    return out;
  }

  get size(): number {
    let n = 0;
    for (const row of this.byKind.values()) n += row.size;
    return n;
  }

  /** The System machine (the first registered, if several). */
  system(): MachineByKind['System'] | undefined {
    return this.list('System')[0];
  }

  /** Hears every transition of every registered machine. Returns a remover. */
  onTransition(listener: TransitionListener): () => void {
    this.listeners = [...this.listeners, listener];
    return () => {
      this.listeners = this.listeners.filter((l) => l !== listener);
    };
  }

  /** Records that a component reported in (a heartbeat); only reported machines are judged for staleness. */
  noteReport(kind: MachineKind, id: string, atMs: number = this.clock.wallTimeMs()): void {
    this.lastReportMs.set(key(kind, id), atMs);
  }

  snapshot(): RegistrySnapshot {
    return { version: 1, machines: this.all().map((m) => m.snapshot()) };
  }

  toJSON(): { readonly machines: readonly MachineJSON[] } {
    return { machines: this.all().map((m) => m.toJSON()) };
  }

  componentView(): ComponentView {
    return {
      systemState: this.system()?.state ?? null,
      coordinators: this.list('Coordinator').map((m) => ({ id: m.id, state: m.state })),
      workers: this.list('Worker').map((m) => ({ id: m.id, state: m.state, epoch: m.epoch })),
    };
  }

  /** null when no System machine is registered (nothing to be coherent with). */
  verticalCoherence(): VerticalCoherenceReport | null {
    const system = this.system();
    if (!system) return null;
    const components: ComponentStateReport[] = [];
    for (const kind of COMPONENT_KINDS) {
      for (const m of this.byKind.get(kind)?.values() ?? []) components.push({ kind, id: m.id, state: m.state });
    }
    return verticalCoherence(system.state, components);
  }

  horizontalCoherence(maxLagAllowed = 1): HorizontalCoherenceReport {
    return horizontalCoherence(
      this.list('Worker').map((w) => ({ id: w.id, epoch: w.epoch, phase: workerPhase(w.state) })),
      maxLagAllowed,
    );
  }

  temporalCoherence(heartbeatIntervalMs: number, nowMs: number = this.clock.wallTimeMs()): TemporalCoherenceReport {
    const reports: { id: string; lastReportMs: number }[] = [];
    for (const [k, lastReportMs] of this.lastReportMs) reports.push({ id: k, lastReportMs });
    return temporalCoherence(reports, nowMs, heartbeatIntervalMs);
  }

  coherence(heartbeatIntervalMs: number, nowMs: number = this.clock.wallTimeMs()): CoherenceReport {
    return {
      vertical: this.verticalCoherence(),
      horizontal: this.horizontalCoherence(),
      temporal: this.temporalCoherence(heartbeatIntervalMs, nowMs),
    };
  }
}
