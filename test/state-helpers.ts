/** Shared helpers for the state tests. */
import {
  FakeClock,
  MACHINE_DEFINITIONS,
  StateMachine,
  Trigger,
  type MachineDefinition,
  type MachineKind,
  type TransitionContext,
  type TriggerKind,
} from '../src/state/index.js';

export function triggerOf(kind: TriggerKind): Trigger {
  switch (kind) {
    case 'Command':
      return Trigger.Command('test-command');
    case 'Event':
      return Trigger.Event('test-event');
    case 'Cascade':
      return Trigger.Cascade('coordinator', 'test-cascade');
    case 'Timeout':
      return Trigger.Timeout(300);
    case 'Failure':
      return Trigger.Failure('w1', 'missed 3 heartbeats');
    case 'Recovery':
      return Trigger.Recovery(['w1']);
  }
}

export type LooseMachine = StateMachine<string, TransitionContext>;

export function definitionOf(kind: string): MachineDefinition<string, TransitionContext> {
  return MACHINE_DEFINITIONS[kind as MachineKind];
}

/** A machine placed directly in `state` (via a synthetic snapshot), with `previousState` if given. */
export function machineAt(
  kind: string,
  state: string,
  previousState: string | null = null,
  clock: FakeClock = new FakeClock(),
): LooseMachine {
  return StateMachine.restore(
    definitionOf(kind),
    {
      version: 1,
      kind,
      id: `${kind.toLowerCase()}-1`,
      state,
      previousState,
      epoch: 0,
      enteredAtNs: '0',
      enteredAtWallMs: 0,
      nextRecordId: previousState === null ? 1 : 2,
      historyCapacity: 100,
      history: [],
    },
    { clock },
  );
}
