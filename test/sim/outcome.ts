/** What a simulated run reports back: per-task records and the cluster's state and history. */
import type { CoordinatorCore, CorePhase } from '../../src/cluster/coordinator/core.js';
import type { FinishReason, TaskEvent } from '../../src/cluster/scheduler.js';
import type { Scenario, SimTask } from './scenario.js';

export interface TaskRecord {
  readonly task: SimTask;
  submittedAtMs: number | null;
  phaseAtSubmit: CorePhase | null;
  cancelRequestedAtMs: number | null;
  readonly events: TaskEvent[];
  readonly streamed: number[];
  finishes: number;
  finish: {
    readonly reason: FinishReason;
    readonly seqId: number;
    readonly tokens: readonly number[];
    readonly atMs: number;
    /** It ended because a stage refused a batch it was in. */
    readonly inRefusedBatch: boolean;
  } | null;
}

export interface SimOutcome {
  readonly scenario: Scenario;
  readonly core: CoordinatorCore;
  readonly tasks: ReadonlyMap<string, TaskRecord>;
  /** What core.step threw, if it did (the run stops there). */
  readonly thrown: unknown;
  /** Tasks were still unfinished at the horizon. */
  readonly hung: boolean;
  readonly endMs: number;
  readonly readyAtMs: number | null;
  readonly lostAtMs: number | null;
  readonly kills: readonly { readonly nodeId: string; readonly atMs: number; readonly wasStage: boolean }[];
  /** When a stage lost its KV caches (the 'forget' fault). */
  readonly forgets: readonly number[];
  readonly stageErrors: readonly { readonly nodeId: string; readonly batchId: number; readonly message: string; readonly atMs: number }[];
  /** Task events the core emitted for ids nobody submitted. */
  readonly strayEvents: readonly TaskEvent[];
  /** Each live stage's cached length per sequence once the run went quiet (before shutdown). */
  readonly finalCaches: readonly { readonly nodeId: string; readonly stageIndex: number; readonly lengths: ReadonlyMap<number, number> }[];
  /** Core phase and System state once the run went quiet (before shutdown), and the System state after it. */
  readonly quietPhase: CorePhase;
  readonly quietSystemState: string;
  readonly quietCoordinatorState: string;
  readonly finalSystemState: string;
  readonly suspectAtEnd: readonly string[];
  /** How often each machine kind entered each state ("Worker→Suspect"), for coverage figures. */
  readonly transitions: ReadonlyMap<string, number>;
  readonly truncates: number;
  readonly forwards: number;
  readonly stageCount: number;
  readonly trace: readonly string[];
}
