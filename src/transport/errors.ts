/** Why a peer's bytes were rejected; stable strings so logs and tests can match on them. */
export type ProtocolErrorCode =
  | 'bad-magic'
  | 'unsupported-version'
  | 'bad-header'
  | 'header-checksum'
  | 'json-checksum'
  | 'binary-checksum'
  | 'frame-too-large'
  | 'bad-json'
  | 'truncated'
  | 'unknown-type'
  | 'bad-payload'
  | 'unexpected-message';

/** The peer broke the wire protocol. The link cannot be trusted afterwards (framing may be lost): close it. */
export class ProtocolError extends Error {
  override readonly name = 'ProtocolError';
  constructor(
    readonly code: ProtocolErrorCode,
    message: string,
  ) {
    super(message);
  }
}

export type AuthErrorCode = 'bad-secret' | 'peer-failed-proof' | 'refused' | 'timeout' | 'version-mismatch';

/** The handshake failed: wrong secret on either side, refusal, or timeout. */
export class AuthError extends Error {
  override readonly name = 'AuthError';
  constructor(
    readonly code: AuthErrorCode,
    message: string,
  ) {
    super(message);
  }
}

/** A send or wait was cut short because the connection closed. */
export class ConnectionClosedError extends Error {
  override readonly name = 'ConnectionClosedError';
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
  }
}

/** Nothing arrived in time. The connection itself may still be fine. */
export class TimeoutError extends Error {
  override readonly name = 'TimeoutError';
}
