/** Public surface of the state-machine spine. */
export { systemClock, FakeClock, type Clock } from './clock.js';
export { Trigger, TRIGGER_KINDS, describeTrigger, copyTrigger, parseTrigger, type TriggerKind } from './trigger.js';
export { Phase, PHASES } from './phase.js';
export { TransitionError, SnapshotError, type TransitionErrorCode, type TransitionErrorInfo } from './errors.js';
export { BoundedHistory } from './history.js';
export {
  defineMachine,
  type Edge,
  type MachineDefinition,
  type MachineSpec,
  type MachineView,
  type ProofObligation,
  type TransitionContext,
  type TransitionRule,
  type TransitionSpec,
} from './definition.js';
export {
  serializeRecord,
  type MachineJSON,
  type MachineSnapshot,
  type SerializedTransitionRecord,
  type TransitionEvent,
  type TransitionListener,
  type TransitionRecord,
} from './record.js';
export { StateMachine, DEFAULT_HISTORY_CAPACITY, type AnyMachine, type MachineOptions } from './machine.js';
export * from './obligations.js';
export * from './machines/system.js';
export * from './machines/coordinator.js';
export * from './machines/worker.js';
export * from './machines/task.js';
export * from './machines/connection.js';
export * from './machines/partition.js';
export * from './catalog.js';
export * from './invariants.js';
export * from './cluster-invariants.js';
export * from './coherence.js';
export * from './registry.js';
export { renderStateDocs, renderMermaid, applyGeneratedSections, staleSections, writeStateDocs } from './docs.js';
