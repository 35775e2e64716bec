/**
 * The join handshake run on a fresh FramedConnection (see auth.ts for the cryptography):
 *   HELLO → CHALLENGE → AUTH → WELCOME (or REFUSED at any server step).
 * Each function either marks the connection established and returns the proven peer, or throws AuthError /
 * ProtocolError; the caller closes the connection on failure.
 */
import { randomBytes } from 'node:crypto';
import { computeProof, newNonce, verifyProof, type HandshakeTranscript } from './auth.js';
import { AuthError, ProtocolError, TimeoutError } from './errors.js';
import { PROTOCOL_VERSION } from './frame.js';
import type { FramedConnection, PeerInfo } from './connection.js';
import { MessageType, messageTypeName, type HelloPayload, type Message, type NodeRole, type RefusedPayload } from './messages.js';

export const SOFTWARE_ID = 'butterfly/0.1';
export const DEFAULT_HANDSHAKE_TIMEOUT_MS = 5000;

export interface ClientHandshakeOptions {
  readonly secret: string;
  readonly nodeId: string;
  readonly role?: NodeRole;
  readonly timeoutMs?: number;
}

export interface ServerHandshakeOptions {
  readonly secret: string;
  /** This server's node id and role, sent in CHALLENGE. */
  readonly nodeId: string;
  readonly role?: NodeRole;
  readonly timeoutMs?: number;
  /** Veto an authenticated-to-be peer (duplicate id, cluster full…): return a refusal, or undefined to accept. */
  readonly admit?: (hello: HelloPayload, remoteAddress: string) => RefusedPayload | undefined;
}

/** Deadline shared by every step: the whole handshake, not each message, gets `timeoutMs`. */
class Deadline {
  private readonly atMs: number;
  constructor(
    readonly timeoutMs: number,
    private readonly who: string,
  ) {
    this.atMs = Date.now() + timeoutMs;
  }
  async receive(conn: FramedConnection): Promise<Message> {
    const leftMs = this.atMs - Date.now();
    if (leftMs <= 0) throw this.expired();
    try {
      return await conn.receive(leftMs);
    } catch (err) {
      if (err instanceof TimeoutError) throw this.expired();
      throw err;
    }
  }
  private expired(): AuthError {
    return new AuthError('timeout', `handshake with ${this.who} timed out after ${this.timeoutMs} ms`);
  }
}

function unexpected(got: Message, wanted: string, step: string): ProtocolError {
  return new ProtocolError('unexpected-message', `expected ${wanted} ${step}, got ${messageTypeName(got.type)}`);
}

function refusalError(refused: RefusedPayload, server: string): AuthError {
  switch (refused.code) {
    case 'bad-secret':
      return new AuthError('bad-secret', `refused by ${server}: wrong cluster secret (check --secret / BUTTERFLY_SECRET)`);
    case 'unsupported-version':
      return new AuthError('version-mismatch', `refused by ${server}: ${refused.reason}`);
    default:
      return new AuthError('refused', `refused by ${server} (${refused.code}): ${refused.reason}`);
  }
}

export async function clientHandshake(conn: FramedConnection, options: ClientHandshakeOptions): Promise<PeerInfo> {
  const server = `server ${conn.remoteAddress}`;
  const deadline = new Deadline(options.timeoutMs ?? DEFAULT_HANDSHAKE_TIMEOUT_MS, server);
  const role = options.role ?? 'worker';
  const clientNonce = newNonce();
  await conn.send(MessageType.HELLO, { protocolVersions: [PROTOCOL_VERSION], nodeId: options.nodeId, role, nonce: clientNonce, software: SOFTWARE_ID });

  const challenge = await deadline.receive(conn);
  if (challenge.type === MessageType.REFUSED) throw refusalError(challenge.payload, server);
  if (challenge.type !== MessageType.CHALLENGE) throw unexpected(challenge, 'CHALLENGE', 'after HELLO');
  const transcript: HandshakeTranscript = {
    protocolVersion: challenge.payload.protocolVersion,
    clientId: options.nodeId,
    clientRole: role,
    serverId: challenge.payload.nodeId,
    serverRole: challenge.payload.role,
    clientNonce,
    serverNonce: challenge.payload.nonce,
  };
  await conn.send(MessageType.AUTH, { proof: computeProof(options.secret, 'client', transcript) });

  const verdict = await deadline.receive(conn);
  if (verdict.type === MessageType.REFUSED) throw refusalError(verdict.payload, `${server} (node "${transcript.serverId}")`);
  if (verdict.type !== MessageType.WELCOME) throw unexpected(verdict, 'WELCOME or REFUSED', 'after AUTH');
  if (!verifyProof(options.secret, 'server', transcript, verdict.payload.proof)) {
    throw new AuthError('peer-failed-proof', `${server} (node "${transcript.serverId}") failed to prove it knows the cluster secret: it is not part of this cluster`);
  }
  const peer: PeerInfo = {
    nodeId: transcript.serverId,
    role: challenge.payload.role,
    address: conn.remoteAddress,
    sessionId: verdict.payload.sessionId,
    protocolVersion: transcript.protocolVersion,
  };
  conn.markEstablished(peer);
  return peer;
}

export async function serverHandshake(conn: FramedConnection, options: ServerHandshakeOptions): Promise<PeerInfo> {
  const who = conn.remoteAddress;
  const deadline = new Deadline(options.timeoutMs ?? DEFAULT_HANDSHAKE_TIMEOUT_MS, who);
  const refuse = async (refusal: RefusedPayload, error: AuthError): Promise<never> => {
    await conn.send(MessageType.REFUSED, refusal).catch(() => undefined);
    throw error;
  };

  const hello = await deadline.receive(conn);
  if (hello.type !== MessageType.HELLO) throw unexpected(hello, 'HELLO', 'as the first message');
  const h = hello.payload;
  const client = `node "${h.nodeId}" (${who})`;
  if (!h.protocolVersions.includes(PROTOCOL_VERSION)) {
    const reason = `${client} speaks protocol versions ${h.protocolVersions.join(', ')}; this server speaks ${PROTOCOL_VERSION}`;
    await refuse({ code: 'unsupported-version', reason }, new AuthError('version-mismatch', reason));
  }
  const serverNonce = newNonce();
  const serverRole = options.role ?? 'coordinator';
  await conn.send(MessageType.CHALLENGE, {
    protocolVersion: PROTOCOL_VERSION,
    nodeId: options.nodeId,
    role: serverRole,
    nonce: serverNonce,
  });

  const auth = await deadline.receive(conn);
  if (auth.type !== MessageType.AUTH) throw unexpected(auth, 'AUTH', 'after CHALLENGE');
  const transcript: HandshakeTranscript = {
    protocolVersion: PROTOCOL_VERSION,
    clientId: h.nodeId,
    clientRole: h.role,
    serverId: options.nodeId,
    serverRole: serverRole,
    clientNonce: h.nonce,
    serverNonce,
  };
  if (!verifyProof(options.secret, 'client', transcript, auth.payload.proof)) {
    await refuse({ code: 'bad-secret', reason: 'wrong cluster secret' }, new AuthError('bad-secret', `${client} presented a wrong cluster secret`));
  }
  // Admission is checked only after the proof, so strangers learn nothing about who is in the cluster.
  const veto = options.admit?.(h, who);
  if (veto) await refuse(veto, new AuthError('refused', `${client} not admitted (${veto.code}): ${veto.reason}`));

  const peer: PeerInfo = {
    nodeId: h.nodeId,
    role: h.role,
    address: who,
    sessionId: randomBytes(16).toString('hex'),
    protocolVersion: PROTOCOL_VERSION,
  };
  // Established before WELCOME leaves: the client may start sending the moment it reads it.
  conn.markEstablished(peer);
  await conn.send(MessageType.WELCOME, { proof: computeProof(options.secret, 'server', transcript), sessionId: peer.sessionId });
  return peer;
}
