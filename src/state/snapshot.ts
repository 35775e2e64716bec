/** Validates untrusted snapshot JSON against a definition before a machine is rebuilt from it. */
import type { MachineDefinition, TransitionContext } from './definition.js';
import { SnapshotError } from './errors.js';
import type { MachineSnapshot, SerializedTransitionRecord } from './record.js';
import { parseTrigger } from './trigger.js';

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null;
const isCount = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
const isNsString = (v: unknown): v is string => typeof v === 'string' && /^-?\d+$/.test(v);

export function parseSnapshot<S extends string, C extends TransitionContext>(
  definition: MachineDefinition<S, C>,
  value: unknown,
): MachineSnapshot<S> {
  const bad = (msg: string): never => {
    throw new SnapshotError(`${definition.kind} snapshot: ${msg}`);
  };
  if (!isObject(value)) return bad('not an object');
  if (value['version'] !== 1) bad(`unsupported version ${String(value['version'])}`);
  if (value['kind'] !== definition.kind) bad(`kind ${String(value['kind'])} does not match ${definition.kind}`);
  const id = value['id'];
  if (typeof id !== 'string') return bad('id must be a string');
  const state = value['state'];
  if (!definition.isState(state)) return bad(`unknown state ${String(state)}`);
  const previousState = value['previousState'];
  if (previousState !== null && !definition.isState(previousState)) {
    return bad(`unknown previousState ${String(previousState)}`);
  }
  const epoch = value['epoch'];
  if (!isCount(epoch)) return bad('epoch must be an integer ≥ 0');
  const enteredAtNs = value['enteredAtNs'];
  if (!isNsString(enteredAtNs)) return bad('enteredAtNs must be a decimal string');
  const enteredAtWallMs = value['enteredAtWallMs'];
  if (typeof enteredAtWallMs !== 'number' || !Number.isFinite(enteredAtWallMs)) return bad('enteredAtWallMs');
  const nextRecordId = value['nextRecordId'];
  if (!isCount(nextRecordId) || nextRecordId < 1) return bad('nextRecordId must be an integer ≥ 1');
  const historyCapacity = value['historyCapacity'];
  if (!isCount(historyCapacity) || historyCapacity < 1) return bad('historyCapacity must be an integer ≥ 1');
  const rawHistory = value['history'];
  if (!Array.isArray(rawHistory)) return bad('history must be an array');
  if (rawHistory.length > historyCapacity) bad('history is longer than its capacity');

  const history: SerializedTransitionRecord<S>[] = [];
  let lastId = 0;
  for (const r of rawHistory as unknown[]) {
    if (!isObject(r)) return bad('history record is not an object');
    const rid = r['id'];
    if (!isCount(rid) || rid <= lastId || rid >= nextRecordId) return bad(`history ids must increase (id ${String(rid)})`);
    lastId = rid;
    const from = r['from'];
    const to = r['to'];
    if (!definition.isState(from) || !definition.isState(to)) return bad(`record ${rid} has an unknown state`);
    const trigger = parseTrigger(r['trigger']);
    if (trigger === null) return bad(`record ${rid} has a malformed trigger`);
    const monotonicNs = r['monotonicNs'];
    if (!isNsString(monotonicNs)) return bad(`record ${rid} monotonicNs must be a decimal string`);
    const wallTimeMs = r['wallTimeMs'];
    const recEpoch = r['epoch'];
    const durationUs = r['durationUs'];
    if (typeof wallTimeMs !== 'number' || !isCount(recEpoch) || typeof durationUs !== 'number') {
      return bad(`record ${rid} has malformed numbers`);
    }
    history.push({ id: rid, from, to, trigger, monotonicNs, wallTimeMs, epoch: recEpoch, durationUs });
  }
  // The newest record, when kept, must agree with the current state, or the snapshot was spliced.
  const newest = history[history.length - 1];
  if (newest !== undefined && newest.id === nextRecordId - 1 && (newest.to !== state || newest.from !== previousState)) {
    bad(`newest record ${newest.from} → ${newest.to} disagrees with state ${String(previousState)} → ${state}`);
  }
  if (nextRecordId === 1 && (history.length > 0 || previousState !== null)) bad('a machine that never moved has history');
  return {
    version: 1,
    kind: definition.kind,
    id,
    state,
    previousState: previousState as S | null,
    epoch,
    enteredAtNs,
    enteredAtWallMs,
    nextRecordId,
    historyCapacity,
    history,
  };
}
