/** Transition records and their JSON forms (bigint nanoseconds travel as decimal strings). */
import type { Trigger, TriggerKind } from './trigger.js';

export interface TransitionRecord<S extends string = string> {
  /** Per-machine sequence number, starting at 1; strictly increasing. */
  readonly id: number;
  readonly from: S;
  readonly to: S;
  readonly trigger: Trigger;
  /** Monotonic clock reading when the transition started. */
  readonly monotonicNs: bigint;
  readonly wallTimeMs: number;
  readonly epoch: number;
  /** Time spent validating and applying the transition (listeners excluded). */
  readonly durationUs: number;
}

export interface SerializedTransitionRecord<S extends string = string> {
  readonly id: number;
  readonly from: S;
  readonly to: S;
  readonly trigger: Trigger;
  readonly monotonicNs: string;
  readonly wallTimeMs: number;
  readonly epoch: number;
  readonly durationUs: number;
}

/** What a listener hears after each successful transition; shaped for metrics labels. */
export interface TransitionEvent<S extends string = string> {
  readonly kind: string;
  readonly machineId: string;
  readonly from: S;
  readonly to: S;
  readonly triggerKind: TriggerKind;
  readonly durationUs: number;
  /** How long the machine had been in `from`. */
  readonly dwellMs: number;
  readonly epoch: number;
  readonly record: TransitionRecord<S>;
}

export type TransitionListener<S extends string = string> = (event: TransitionEvent<S>) => void;

/** Everything needed to rebuild a machine exactly (listeners and rules are code, not state). */
export interface MachineSnapshot<S extends string = string> {
  readonly version: 1;
  readonly kind: string;
  readonly id: string;
  readonly state: S;
  readonly previousState: S | null;
  readonly epoch: number;
  /** Monotonic time the current state was entered; only meaningful within the process that took the snapshot. */
  readonly enteredAtNs: string;
  readonly enteredAtWallMs: number;
  readonly nextRecordId: number;
  readonly historyCapacity: number;
  readonly history: readonly SerializedTransitionRecord<S>[];
}

/** The shape served at GET /api/v1/state for one machine. */
export interface MachineJSON<S extends string = string> {
  readonly kind: string;
  readonly id: string;
  readonly state: S;
  readonly previousState: S | null;
  readonly terminal: boolean;
  readonly epoch: number;
  readonly timeInStateMs: number;
  readonly enteredAtWallMs: number;
  readonly history: readonly SerializedTransitionRecord<S>[];
}

export function serializeRecord<S extends string>(r: TransitionRecord<S>): SerializedTransitionRecord<S> {
  return {
    id: r.id,
    from: r.from,
    to: r.to,
    trigger: r.trigger.kind === 'Recovery' ? { kind: 'Recovery', nodes: [...r.trigger.nodes] } : { ...r.trigger },
    monotonicNs: r.monotonicNs.toString(),
    wallTimeMs: r.wallTimeMs,
    epoch: r.epoch,
    durationUs: r.durationUs,
  };
}
