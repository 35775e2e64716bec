/** A worker's slice of the model weights. Rationale: docs/state-machines.md#partition. */
import { defineMachine, type ProofObligation, type TransitionContext } from '../definition.js';
import { StateMachine, type MachineOptions } from '../machine.js';

export const PARTITION_STATES = [
  'Unloaded',
  'Fetching',
  'Validating',
  'Loaded',
  'Warming',
  'Ready',
  'InUse',
  'Evicted',
] as const;
export type PartitionState = (typeof PARTITION_STATES)[number];

export interface PartitionContext extends TransitionContext {
  /** The fetched bytes hash to the digest the coordinator announced. */
  readonly checksumMatches?: boolean;
}

const checksumMatches: ProofObligation<PartitionContext> = {
  name: 'ChecksumMatches',
  description: 'checksumMatches = true',
  holds: (c) => c.checksumMatches === true,
};

export const PARTITION_MACHINE = defineMachine<PartitionState, PartitionContext>({
  kind: 'Partition',
  description: 'A contiguous range of layers on one worker.',
  states: PARTITION_STATES,
  initial: 'Unloaded',
  stateDescriptions: {
    Unloaded: 'Known (layer range, digest) but no bytes held.',
    Fetching: 'Reading tensors from the GGUF file or receiving them from the coordinator.',
    Validating: 'Checking the digest and shapes of the fetched tensors.',
    Loaded: 'Weights in memory, not yet prepared for kernels.',
    Warming: 'Repacking/aligning weights and running a first forward pass.',
    Ready: 'Prepared; can serve tasks at once.',
    InUse: 'Serving at least one task; must not be evicted.',
    Evicted: 'Memory released; metadata kept for a fast reload.',
  },
  transitions: [
    { from: 'Unloaded', to: 'Fetching', event: 'fetch_initiated' },
    { from: 'Fetching', to: 'Validating', event: 'fetch_complete' },
    { from: 'Fetching', to: 'Unloaded', event: 'fetch_failed', triggers: ['Failure', 'Timeout'] },
    { from: 'Validating', to: 'Loaded', event: 'validation_passed', obligations: [checksumMatches] },
    { from: 'Validating', to: 'Unloaded', event: 'validation_failed' },
    { from: 'Loaded', to: 'Warming', event: 'warmup_initiated' },
    { from: 'Warming', to: 'Ready', event: 'warmup_complete' },
    { from: ['Loaded', 'Warming', 'Ready'], to: 'Evicted', event: 'evict' },
    { from: 'Ready', to: 'InUse', event: 'assigned' },
    { from: 'InUse', to: 'Ready', event: 'released' },
    { from: 'Evicted', to: 'Fetching', event: 'reload' },
  ],
});

export type PartitionMachine = StateMachine<PartitionState, PartitionContext>;

export function createPartitionMachine(id: string, options?: MachineOptions): PartitionMachine {
  return new StateMachine(PARTITION_MACHINE, id, options);
}
