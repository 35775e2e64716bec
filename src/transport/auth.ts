/**
 * Mutual challenge–response authentication with a shared cluster secret (HMAC-SHA256).
 *
 *   client → HELLO     { nonceC, clientId }
 *   server → CHALLENGE { nonceS, serverId }
 *   client → AUTH      { proof = HMAC(secret, "client" ‖ transcript) }   server checks, else REFUSED
 *   server → WELCOME   { proof = HMAC(secret, "server" ‖ transcript) }   client checks, else hangs up
 *
 * Each side contributes a fresh 32-byte nonce, so proofs cannot be replayed; the role label stops a proof from
 * being reflected back at its sender; ids and version are in the transcript so they cannot be swapped in transit.
 * The secret itself never crosses the wire.
 */
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { NONCE_BYTES } from './messages.js';

export const SECRET_ENV_VAR = 'BUTTERFLY_SECRET';
const SECRET_BYTES = 32;
const PROOF_LABEL = 'butterfly cluster auth v1';

export type ProofRole = 'client' | 'server';

/** Everything both sides saw during the handshake; both proofs cover all of it. */
export interface HandshakeTranscript {
  readonly protocolVersion: number;
  readonly clientId: string;
  readonly clientRole: string;
  readonly serverId: string;
  readonly serverRole: string;
  /** Hex nonces as sent in HELLO and CHALLENGE. */
  readonly clientNonce: string;
  readonly serverNonce: string;
}

/** A fresh random cluster secret (256 bits, base64url) for embedded mode or `butterfly secret`. */
export function generateSecret(): string {
  return randomBytes(SECRET_BYTES).toString('base64url');
}

/** The `--secret` flag wins over BUTTERFLY_SECRET; `undefined` when neither is set (caller decides: generate or refuse). */
export function resolveSecret(flagValue: string | undefined, env: NodeJS.ProcessEnv = process.env): string | undefined {
  if (flagValue !== undefined && flagValue !== '') return flagValue;
  const fromEnv = env[SECRET_ENV_VAR];
  return fromEnv !== undefined && fromEnv !== '' ? fromEnv : undefined;
}

export function assertUsableSecret(secret: string): void {
  if (secret.length === 0) throw new Error('the cluster secret is empty; pass --secret or set BUTTERFLY_SECRET');
}

export function newNonce(): string {
  return randomBytes(NONCE_BYTES).toString('hex');
}

function field(s: string): Buffer {
  const bytes = Buffer.from(s, 'utf8');
  const len = Buffer.alloc(4);
  len.writeUInt32LE(bytes.length);
  return Buffer.concat([len, bytes]);
}

/** Hex HMAC-SHA256 proving knowledge of `secret` for this transcript, in the given role. */
export function computeProof(secret: string, role: ProofRole, t: HandshakeTranscript): string {
  assertUsableSecret(secret);
  const hmac = createHmac('sha256', Buffer.from(secret, 'utf8'));
  // Length-prefixed fields: no two different transcripts serialise to the same bytes.
  for (const part of [PROOF_LABEL, role, String(t.protocolVersion), t.clientId, t.clientRole, t.serverId, t.serverRole, t.clientNonce, t.serverNonce]) {
    hmac.update(field(part));
  }
  return hmac.digest('hex');
}

/** Constant-time check of a peer's proof. Malformed proofs are simply wrong, never an exception. */
export function verifyProof(secret: string, role: ProofRole, t: HandshakeTranscript, proof: string): boolean {
  const expected = Buffer.from(computeProof(secret, role, t), 'hex');
  if (!/^[0-9a-f]*$/.test(proof)) return false;
  const got = Buffer.from(proof, 'hex');
  return got.length === expected.length && timingSafeEqual(got, expected);
}
