/**
 * The seed's named cluster invariants, over a view the coordinator assembles (machine states from the registry
 * plus its own assignment, commit, checkpoint and replica-result bookkeeping).
 */
import type { Invariant } from './invariants.js';
import { LEADER_STATES, type CoordinatorState } from './machines/coordinator.js';
import type { SystemState } from './machines/system.js';
import { OPERATIONAL_WORKER_STATES, type WorkerState } from './machines/worker.js';

/** Layers [layerStart, layerEnd) run on `workerId`. With replica verification each replica group is a full pipeline. */
export interface LayerAssignment {
  readonly workerId: string;
  readonly layerStart: number;
  readonly layerEnd: number;
  /** Replica group; default 0. */
  readonly replica?: number;
}

/** One commit round: every participant must commit, or none. */
export interface CommitRecord {
  readonly id: string;
  readonly participants: readonly string[];
  readonly committed: readonly string[];
  /** The round is over (no more acks will arrive); only closed rounds are judged. */
  readonly finalized: boolean;
}

/** A task's progress checkpoint (the tokens so far), taken every K tokens; re-prefill resumes from the latest. */
export interface CheckpointRecord {
  readonly taskId: string;
  readonly seq: number;
  /** null only for seq 0. */
  readonly parentSeq: number | null;
  readonly tokenCount: number;
  readonly epoch: number;
}

/** A replica's digest of a task's output at a step (e.g. logits or token ids so far). */
export interface ReplicaResult {
  readonly taskId: string;
  readonly step: number;
  readonly replica: string;
  readonly digest: string;
}

export interface ClusterView {
  readonly systemState: SystemState;
  /** The leading coordinator's current epoch. */
  readonly epoch: number;
  readonly quorumSize: number;
  readonly coordinators: readonly { readonly id: string; readonly state: CoordinatorState }[];
  readonly workers: readonly { readonly id: string; readonly state: WorkerState; readonly epoch: number }[];
  readonly layerCount: number;
  readonly assignment: readonly LayerAssignment[];
  readonly commits: readonly CommitRecord[];
  readonly checkpoints: readonly CheckpointRecord[];
  readonly results: readonly ReplicaResult[];
}

const MAX_LISTED = 8;
const list = (xs: readonly (string | number)[]): string =>
  xs.length <= MAX_LISTED ? xs.join(', ') : `${xs.slice(0, MAX_LISTED).join(', ')} … (+${xs.length - MAX_LISTED})`;

/** States where the layer map is not expected to be complete. */
const UNASSIGNED_SYSTEM_STATES: ReadonlySet<SystemState> = new Set(['Uninitialized', 'Bootstrapping', 'Shutdown', 'Terminated']);
/** States that already admit the quorum is (or may be) gone. */
const QUORUM_EXEMPT_SYSTEM_STATES: ReadonlySet<SystemState> = new Set([
  'Uninitialized',
  'Bootstrapping',
  'Degraded',
  'Shutdown',
  'Terminated',
]);

export const singleCoordinator: Invariant<ClusterView> = {
  name: 'SingleCoordinator',
  description: 'At most one coordinator is outside Standby (acting as leader).',
  severity: 'Critical',
  check(view) {
    const leaders = view.coordinators.filter((c) => LEADER_STATES.has(c.state)).map((c) => c.id);
    return leaders.length <= 1 ? null : { detail: `${leaders.length} leaders: ${list(leaders)}`, subjects: leaders };
  },
};

export const quorumOperational: Invariant<ClusterView> = {
  name: 'QuorumOperational',
  description: 'Operational workers ≥ quorumSize, unless the System state already says otherwise (Degraded, Shutdown, not yet Ready).',
  severity: 'High',
  check(view) {
    if (QUORUM_EXEMPT_SYSTEM_STATES.has(view.systemState)) return null;
    let operational = 0;
    const down: string[] = [];
    for (const w of view.workers) {
      if (OPERATIONAL_WORKER_STATES.has(w.state)) operational++;
      else down.push(w.id);
    }
    return operational >= view.quorumSize
      ? null
      : { detail: `${operational} operational < quorum ${view.quorumSize} while System is ${view.systemState}`, subjects: down };
  },
};

/**
 * Epochs never go backwards: neither the coordinator's nor any worker's (a worker re-entering Initialized is a new
 * incarnation and starts over), and no worker is ahead of the coordinator (that would mean the coordinator lost
 * epochs it had issued). Stateful: each instance remembers the highest epochs it has seen.
 */
export function epochMonotonicity(): Invariant<ClusterView> {
  let clusterMax = -1;
  const workerMax = new Map<string, number>();
  return {
    name: 'EpochMonotonicity',
    description: 'Epochs only increase, and no worker is ahead of the coordinator.',
    severity: 'Critical',
    check(view) {
      const problems: string[] = [];
      const subjects: string[] = [];
      if (view.epoch < clusterMax) problems.push(`coordinator epoch ${view.epoch} < ${clusterMax} seen before`);
      clusterMax = Math.max(clusterMax, view.epoch);
      for (const w of view.workers) {
        if (w.state === 'Initialized') {
          workerMax.delete(w.id);
          continue;
        }
        const seen = workerMax.get(w.id);
        if (seen !== undefined && w.epoch < seen) {
          problems.push(`${w.id} epoch ${w.epoch} < ${seen}`);
          subjects.push(w.id);
        } else if (w.epoch > view.epoch) {
          problems.push(`${w.id} epoch ${w.epoch} ahead of coordinator ${view.epoch}`);
          subjects.push(w.id);
        }
        workerMax.set(w.id, Math.max(seen ?? -1, w.epoch));
      }
      return problems.length === 0 ? null : { detail: problems.join('; '), subjects };
    },
  };
}

/** Coverage count per layer for each replica group; out-of-range ranges are reported separately. */
function coverage(view: ClusterView): { groups: Map<number, Map<number, string[]>>; outOfRange: LayerAssignment[] } {
  const groups = new Map<number, Map<number, string[]>>();
  const outOfRange: LayerAssignment[] = [];
  for (const a of view.assignment) {
    if (!(Number.isInteger(a.layerStart) && Number.isInteger(a.layerEnd) && a.layerStart >= 0 && a.layerEnd <= view.layerCount && a.layerStart < a.layerEnd)) {
      outOfRange.push(a);
      continue;
    }
    const replica = a.replica ?? 0;
    let group = groups.get(replica);
    if (!group) groups.set(replica, (group = new Map()));
    for (let layer = a.layerStart; layer < a.layerEnd; layer++) {
      const owners = group.get(layer);
      if (owners) owners.push(a.workerId);
      else group.set(layer, [a.workerId]);
    }
  }
  return { groups, outOfRange };
}

export const assignmentCoversModel: Invariant<ClusterView> = {
  name: 'AssignmentCoversModel',
  description: 'Once the cluster is formed, every layer is assigned in every replica group, and no range falls outside the model.',
  severity: 'High',
  check(view) {
    if (UNASSIGNED_SYSTEM_STATES.has(view.systemState)) return null;
    const { groups, outOfRange } = coverage(view);
    const problems: string[] = [];
    if (outOfRange.length > 0) {
      problems.push(`ranges outside [0, ${view.layerCount}): ${list(outOfRange.map((a) => `${a.workerId}[${a.layerStart}, ${a.layerEnd})`))}`);
    }
    if (groups.size === 0) groups.set(0, new Map());
    for (const [replica, group] of groups) {
      const missing: number[] = [];
      for (let layer = 0; layer < view.layerCount; layer++) if (!group.has(layer)) missing.push(layer);
      if (missing.length > 0) problems.push(`replica ${replica} misses layers ${list(missing)}`);
    }
    return problems.length === 0
      ? null
      : { detail: problems.join('; '), subjects: outOfRange.map((a) => a.workerId) };
  },
};

export const noAssignmentOverlap: Invariant<ClusterView> = {
  name: 'NoAssignmentOverlap',
  description: 'Within a replica group no layer has two owners, and no worker is its own replica.',
  severity: 'High',
  check(view) {
    const { groups } = coverage(view);
    const problems: string[] = [];
    const subjects = new Set<string>();
    const ownerOfLayerAcrossGroups = new Map<number, Set<string>>();
    for (const [replica, group] of groups) {
      for (const [layer, owners] of group) {
        if (owners.length > 1) {
          problems.push(`replica ${replica} layer ${layer}: ${owners.join(', ')}`);
          for (const o of owners) subjects.add(o);
        }
        let across = ownerOfLayerAcrossGroups.get(layer);
        if (!across) ownerOfLayerAcrossGroups.set(layer, (across = new Set()));
        for (const o of new Set(owners)) {
          if (across.has(o)) {
            problems.push(`${o} holds layer ${layer} in two replica groups`);
            subjects.add(o);
          }
          across.add(o);
        }
      }
    }
    return problems.length === 0 ? null : { detail: list(problems), subjects: [...subjects] };
  },
};

export const noPartialCommits: Invariant<ClusterView> = {
  name: 'NoPartialCommits',
  description: 'A finished commit round was committed by all of its participants or by none.',
  severity: 'Critical',
  check(view) {
    const problems: string[] = [];
    const subjects: string[] = [];
    for (const c of view.commits) {
      const participants = new Set(c.participants);
      const committed = new Set(c.committed);
      const strangers = [...committed].filter((id) => !participants.has(id));
      if (strangers.length > 0) {
        problems.push(`${c.id}: committed by non-participants ${list(strangers)}`);
        subjects.push(...strangers);
      }
      if (!c.finalized) continue;
      const missing = [...participants].filter((id) => !committed.has(id));
      if (missing.length > 0 && missing.length < participants.size) {
        problems.push(`${c.id}: ${participants.size - missing.length}/${participants.size} committed, missing ${list(missing)}`);
        subjects.push(...missing);
      }
    }
    return problems.length === 0 ? null : { detail: problems.join('; '), subjects };
  },
};

export const checkpointCausality: Invariant<ClusterView> = {
  name: 'CheckpointCausality',
  description: 'Checkpoint k+1 of a task descends from checkpoint k: parent = k, more tokens, epoch not lower.',
  severity: 'High',
  check(view) {
    const byTask = new Map<string, Map<number, (typeof view.checkpoints)[number]>>();
    const problems: string[] = [];
    const subjects = new Set<string>();
    for (const cp of view.checkpoints) {
      let seqs = byTask.get(cp.taskId);
      if (!seqs) byTask.set(cp.taskId, (seqs = new Map()));
      if (seqs.has(cp.seq)) {
        problems.push(`${cp.taskId}: duplicate checkpoint ${cp.seq}`);
        subjects.add(cp.taskId);
      }
      seqs.set(cp.seq, cp);
    }
    for (const [taskId, seqs] of byTask) {
      for (const cp of seqs.values()) {
        const expectedParent = cp.seq === 0 ? null : cp.seq - 1;
        if (cp.parentSeq !== expectedParent) {
          problems.push(`${taskId}: checkpoint ${cp.seq} has parent ${String(cp.parentSeq)}, expected ${String(expectedParent)}`);
          subjects.add(taskId);
          continue;
        }
        const parent = expectedParent === null ? undefined : seqs.get(expectedParent); // may be pruned
        if (parent && !(cp.tokenCount > parent.tokenCount)) {
          problems.push(`${taskId}: checkpoint ${cp.seq} has ${cp.tokenCount} tokens, parent ${parent.tokenCount}`);
          subjects.add(taskId);
        }
        if (parent && cp.epoch < parent.epoch) {
          problems.push(`${taskId}: checkpoint ${cp.seq} epoch ${cp.epoch} < parent epoch ${parent.epoch}`);
          subjects.add(taskId);
        }
      }
    }
    return problems.length === 0 ? null : { detail: list(problems), subjects: [...subjects] };
  },
};

export const resultDeterminism: Invariant<ClusterView> = {
  name: 'ResultDeterminism',
  description: 'Replicas report identical digests for the same task and step.',
  severity: 'Critical',
  check(view) {
    const byStep = new Map<string, { taskId: string; step: number; digests: Map<string, string[]> }>();
    for (const r of view.results) {
      const key = `${r.taskId}\u0000${r.step}`;
      let entry = byStep.get(key);
      if (!entry) byStep.set(key, (entry = { taskId: r.taskId, step: r.step, digests: new Map() }));
      const replicas = entry.digests.get(r.digest);
      if (replicas) replicas.push(r.replica);
      else entry.digests.set(r.digest, [r.replica]);
    }
    const problems: string[] = [];
    const subjects = new Set<string>();
    for (const e of byStep.values()) {
      if (e.digests.size <= 1) continue;
      const groups = [...e.digests].map(([digest, replicas]) => `${replicas.join('+')}=${digest.slice(0, 12)}`);
      problems.push(`${e.taskId} step ${e.step}: ${groups.join(' vs ')}`);
      for (const replicas of e.digests.values()) for (const r of replicas) subjects.add(r);
    }
    return problems.length === 0 ? null : { detail: list(problems), subjects: [...subjects] };
  },
};

/** All eight, with a fresh (stateful) EpochMonotonicity. */
export function clusterInvariants(): Invariant<ClusterView>[] {
  return [
    singleCoordinator,
    quorumOperational,
    epochMonotonicity(),
    assignmentCoversModel,
    noAssignmentOverlap,
    noPartialCommits,
    checkpointCausality,
    resultDeterminism,
  ];
}

