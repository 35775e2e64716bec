/**
 * Coherence between components, measured (not enforced):
 * - vertical: each component's state is one the System state allows → a score in %;
 * - horizontal: workers in the same epoch are at most one phase apart;
 * - temporal: no component's last report is older than 2 × the heartbeat interval.
 * Rationale for the vertical table: docs/state-machines.md#vertical-coherence.
 */
import { COMPONENT_KINDS, type ComponentKind } from './catalog.js';
import type { ConnectionState } from './machines/connection.js';
import type { CoordinatorState } from './machines/coordinator.js';
import type { PartitionState } from './machines/partition.js';
import { SYSTEM_STATES, type SystemState } from './machines/system.js';
import { TERMINAL_TASK_STATES, type TaskState } from './machines/task.js';
import type { WorkerState } from './machines/worker.js';
import { Phase } from './phase.js';

interface AllowedStates {
  readonly Coordinator: readonly CoordinatorState[];
  readonly Worker: readonly WorkerState[];
  readonly Task: readonly TaskState[];
  readonly Connection: readonly ConnectionState[];
  readonly Partition: readonly PartitionState[];
}

const ANY_COORDINATOR: readonly CoordinatorState[] = [
  'Standby', 'Elected', 'Monitoring', 'Assigning', 'Coordinating', 'Aggregating', 'Committing', 'Recovering',
];
const ANY_WORKER: readonly WorkerState[] = [
  'Initialized', 'Joined', 'Ready', 'Computing', 'Aggregating', 'Committing', 'Suspect', 'Failed',
];
const LIVE_TASK: readonly TaskState[] = ['Queued', 'Scheduled', 'Dispatched', 'Executing', 'Validating'];
const ANY_TASK: readonly TaskState[] = [...LIVE_TASK, ...TERMINAL_TASK_STATES];
const ANY_CONNECTION: readonly ConnectionState[] = ['Connecting', 'Established', 'Active', 'Idle', 'Suspected', 'Terminated'];
const ANY_PARTITION: readonly PartitionState[] = [
  'Unloaded', 'Fetching', 'Validating', 'Loaded', 'Warming', 'Ready', 'InUse', 'Evicted',
];
const LOADING_PARTITION: readonly PartitionState[] = ['Unloaded', 'Fetching', 'Validating', 'Loaded', 'Warming'];

/**
 * Which component states each System state allows. Standby coordinators are allowed everywhere (non-leaders
 * exist in every system state); finished tasks are allowed wherever the registry may still hold them.
 */
export const VERTICAL_COHERENCE: Readonly<Record<SystemState, AllowedStates>> = {
  Uninitialized: {
    Coordinator: ['Standby'],
    Worker: ['Initialized'],
    Task: [],
    Connection: ['Connecting', 'Terminated'],
    Partition: ['Unloaded'],
  },
  Bootstrapping: {
    Coordinator: ['Standby', 'Elected'],
    Worker: ['Initialized', 'Joined', 'Ready'],
    Task: ['Queued', 'Failed', 'Cancelled'],
    Connection: ['Connecting', 'Established', 'Active', 'Idle', 'Terminated'],
    Partition: [...LOADING_PARTITION, 'Ready', 'Evicted'],
  },
  Ready: {
    Coordinator: ['Standby', 'Elected', 'Monitoring'],
    Worker: ['Joined', 'Ready'],
    Task: ['Queued', 'Scheduled', ...TERMINAL_TASK_STATES],
    Connection: ['Connecting', 'Established', 'Active', 'Idle', 'Terminated'],
    Partition: [...LOADING_PARTITION, 'Ready', 'Evicted'],
  },
  Computing: {
    Coordinator: ['Standby', 'Assigning', 'Coordinating', 'Aggregating'],
    Worker: ['Ready', 'Computing', 'Aggregating', 'Committing'],
    Task: ANY_TASK,
    Connection: ['Established', 'Active', 'Idle'],
    Partition: ['Ready', 'InUse', 'Evicted'],
  },
  Committing: {
    Coordinator: ['Standby', 'Committing'],
    Worker: ['Ready', 'Computing', 'Aggregating', 'Committing'],
    Task: ANY_TASK,
    Connection: ['Established', 'Active', 'Idle'],
    Partition: ['Ready', 'InUse', 'Evicted'],
  },
  Degraded: {
    Coordinator: ['Standby', 'Elected', 'Recovering', 'Assigning'],
    Worker: ANY_WORKER,
    Task: ANY_TASK,
    Connection: ANY_CONNECTION,
    Partition: ANY_PARTITION,
  },
  Shutdown: {
    Coordinator: ANY_COORDINATOR,
    Worker: ANY_WORKER,
    Task: ANY_TASK,
    Connection: ANY_CONNECTION,
    Partition: ANY_PARTITION,
  },
  Terminated: {
    Coordinator: ['Standby'],
    Worker: ['Failed'],
    Task: TERMINAL_TASK_STATES,
    Connection: ['Terminated'],
    Partition: ['Unloaded', 'Evicted'],
  },
};

// Sets for O(1) lookups, built once.
const VERTICAL_SETS = new Map<SystemState, Map<ComponentKind, ReadonlySet<string>>>();
for (const systemState of SYSTEM_STATES) {
  const row = new Map<ComponentKind, ReadonlySet<string>>();
  for (const kind of COMPONENT_KINDS) row.set(kind, new Set<string>(VERTICAL_COHERENCE[systemState][kind]));
  VERTICAL_SETS.set(systemState, row);
}

export interface ComponentStateReport {
  readonly kind: ComponentKind;
  readonly id: string;
  readonly state: string;
}

export interface VerticalCoherenceReport {
  readonly systemState: SystemState;
  /** 100 × coherent / total; 100 when there are no components. */
  readonly scorePct: number;
  readonly total: number;
  readonly coherent: number;
  readonly incoherent: readonly ComponentStateReport[];
}

export function isVerticallyCoherent(systemState: SystemState, kind: ComponentKind, state: string): boolean {
  return VERTICAL_SETS.get(systemState)?.get(kind)?.has(state) ?? false;
}

export function verticalCoherence(
  systemState: SystemState,
  components: readonly ComponentStateReport[],
): VerticalCoherenceReport {
  const incoherent: ComponentStateReport[] = [];
  for (const c of components) if (!isVerticallyCoherent(systemState, c.kind, c.state)) incoherent.push(c);
  const total = components.length;
  const coherent = total - incoherent.length;
  return { systemState, scorePct: total === 0 ? 100 : (100 * coherent) / total, total, coherent, incoherent };
}

export interface PhaseReport {
  readonly id: string;
  readonly epoch: number;
  /** null = not in a phased state (joining, suspect, failed); such workers are left out. */
  readonly phase: Phase | null;
}

export interface EpochPhaseSpread {
  readonly epoch: number;
  readonly workers: number;
  readonly minPhase: Phase;
  readonly maxPhase: Phase;
  readonly lag: number;
  /** Ids at the lowest phase (the stragglers), for diagnosis. */
  readonly behind: readonly string[];
}

export interface HorizontalCoherenceReport {
  readonly maxLagAllowed: number;
  /** Largest lag over all epochs; 0 when no worker is in a phase. */
  readonly maxLag: number;
  readonly coherent: boolean;
  readonly epochs: readonly EpochPhaseSpread[];
}

export function horizontalCoherence(reports: readonly PhaseReport[], maxLagAllowed = 1): HorizontalCoherenceReport {
  const byEpoch = new Map<number, PhaseReport[]>();
  for (const r of reports) {
    if (r.phase === null) continue;
    const list = byEpoch.get(r.epoch);
    if (list) list.push(r);
    else byEpoch.set(r.epoch, [r]);
  }
  const epochs: EpochPhaseSpread[] = [];
  let maxLag = 0;
  for (const [epoch, list] of [...byEpoch].sort((a, b) => a[0] - b[0])) {
    let min = list[0]?.phase as Phase;
    let max = min;
    for (const r of list) {
      const p = r.phase as Phase;
      if (Phase.compare(p, min) < 0) min = p;
      if (Phase.compare(p, max) > 0) max = p;
    }
    const lag = Phase.distance(min, max);
    maxLag = Math.max(maxLag, lag);
    epochs.push({
      epoch,
      workers: list.length,
      minPhase: min,
      maxPhase: max,
      lag,
      behind: list.filter((r) => r.phase === min).map((r) => r.id),
    });
  }
  return { maxLagAllowed, maxLag, coherent: maxLag <= maxLagAllowed, epochs };
}

export interface ReportTimestamp {
  readonly id: string;
  readonly lastReportMs: number;
}

export interface TemporalCoherenceReport {
  readonly nowMs: number;
  readonly heartbeatIntervalMs: number;
  /** 2 × heartbeatIntervalMs. */
  readonly maxStalenessMs: number;
  /** Largest staleness observed; 0 when nothing reported. */
  readonly worstStalenessMs: number;
  readonly stale: readonly { readonly id: string; readonly stalenessMs: number }[];
  readonly coherent: boolean;
}

export function temporalCoherence(
  reports: readonly ReportTimestamp[],
  nowMs: number,
  heartbeatIntervalMs: number,
): TemporalCoherenceReport {
  if (!(heartbeatIntervalMs > 0)) throw new RangeError(`heartbeatIntervalMs must be > 0, got ${heartbeatIntervalMs}`);
  const maxStalenessMs = 2 * heartbeatIntervalMs;
  const stale: { id: string; stalenessMs: number }[] = [];
  let worst = 0;
  for (const r of reports) {
    const stalenessMs = Math.max(0, nowMs - r.lastReportMs);
    worst = Math.max(worst, stalenessMs);
    if (stalenessMs > maxStalenessMs) stale.push({ id: r.id, stalenessMs });
  }
  return {
    nowMs,
    heartbeatIntervalMs,
    maxStalenessMs,
    worstStalenessMs: worst,
    stale,
    coherent: stale.length === 0,
  };
}
