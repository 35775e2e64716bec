/** The six machine kinds in one place, for the registry, coherence checks and docs. */
import type { MachineDefinition, TransitionContext } from './definition.js';
import { CONNECTION_MACHINE, type ConnectionMachine } from './machines/connection.js';
import { COORDINATOR_MACHINE, type CoordinatorMachine } from './machines/coordinator.js';
import { PARTITION_MACHINE, type PartitionMachine } from './machines/partition.js';
import { SYSTEM_MACHINE, type SystemMachine } from './machines/system.js';
import { TASK_MACHINE, type TaskMachine } from './machines/task.js';
import { WORKER_MACHINE, type WorkerMachine } from './machines/worker.js';

export const MACHINE_KINDS = ['System', 'Coordinator', 'Worker', 'Task', 'Connection', 'Partition'] as const;
export type MachineKind = (typeof MACHINE_KINDS)[number];
/** Kinds whose states vertical coherence judges against the System state. */
export type ComponentKind = Exclude<MachineKind, 'System'>;
export const COMPONENT_KINDS: readonly ComponentKind[] = ['Coordinator', 'Worker', 'Task', 'Connection', 'Partition'];

export interface MachineByKind {
  System: SystemMachine;
  Coordinator: CoordinatorMachine;
  Worker: WorkerMachine;
  Task: TaskMachine;
  Connection: ConnectionMachine;
  Partition: PartitionMachine;
}

export const MACHINE_DEFINITIONS: { readonly [K in MachineKind]: MachineDefinition<string, TransitionContext> } = {
  System: SYSTEM_MACHINE,
  Coordinator: COORDINATOR_MACHINE,
  Worker: WORKER_MACHINE,
  Task: TASK_MACHINE,
  Connection: CONNECTION_MACHINE,
  Partition: PARTITION_MACHINE,
};

export function isMachineKind(value: unknown): value is MachineKind {
  return typeof value === 'string' && (MACHINE_KINDS as readonly string[]).includes(value);
}
