/** Typed errors, so callers can branch on `code` instead of matching message text. */

export type TransitionErrorCode =
  /** No edge from→to in the machine's table (includes leaving a terminal state). */
  | 'ILLEGAL_TRANSITION'
  /** The edge exists but does not accept this kind of trigger. */
  | 'TRIGGER_NOT_ALLOWED'
  /** A proof obligation on the edge did not hold for the given context. */
  | 'OBLIGATION_UNMET'
  /** A machine-wide or instance rule rejected the move. */
  | 'RULE_VIOLATED'
  /** The context carried an epoch lower than the machine's. */
  | 'EPOCH_REGRESSION';

export interface TransitionErrorInfo {
  readonly code: TransitionErrorCode;
  readonly machineKind: string;
  readonly machineId: string;
  readonly from: string;
  readonly to: string;
  /** The obligation or rule name, or a short reason. */
  readonly detail: string;
}

export class TransitionError extends Error implements TransitionErrorInfo {
  readonly code: TransitionErrorCode;
  readonly machineKind: string;
  readonly machineId: string;
  readonly from: string;
  readonly to: string;
  readonly detail: string;

  constructor(info: TransitionErrorInfo) {
    super(`${info.machineKind} ${info.machineId}: ${info.from} → ${info.to} rejected (${info.code}): ${info.detail}`);
    this.name = 'TransitionError';
    this.code = info.code;
    this.machineKind = info.machineKind;
    this.machineId = info.machineId;
    this.from = info.from;
    this.to = info.to;
    this.detail = info.detail;
  }
}

/** A snapshot could not be restored (wrong kind, unknown state, malformed history…). */
export class SnapshotError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'SnapshotError';
  }
}
