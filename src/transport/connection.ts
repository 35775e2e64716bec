/**
 * FramedConnection: one authenticated link to a peer, carrying typed messages over a net.Socket (or TLS socket).
 *
 * Lifecycle (emitted as 'stateChange' so a state machine can mirror it):
 *   handshaking → established → active ⇄ idle → closing → closed
 * 'active' means a non-heartbeat message moved within `idleAfterMs`; 'idle' that none did.
 *
 * Sending resolves once the bytes are handed to the kernel, so awaiting `send` is the backpressure: a producer
 * that awaits never buffers more than one frame in user space. Receiving buffers messages until a consumer is
 * attached (a 'message' listener or async iteration) and pauses the socket when the inbox fills up.
 */
import { EventEmitter } from 'node:events';
import type { Socket } from 'node:net';
import { ConnectionClosedError, ProtocolError, TimeoutError } from './errors.js';
import { DEFAULT_FRAME_LIMITS, FrameDecoder, encodeFrameParts, type FrameLimits, type FrameToEncode } from './frame.js';
import { MessageType, messageTypeName } from './message-types.js';
import { decodeMessage, encodeMessage, type EncodeOptions, type Message, type MessagePayloads, type NodeRole, type HeartbeatPayload } from './messages.js';

export type ConnectionState = 'handshaking' | 'established' | 'active' | 'idle' | 'closing' | 'closed';

/** Who is on the other end, as proven by the handshake. */
export interface PeerInfo {
  readonly nodeId: string;
  readonly role: NodeRole;
  /** "host:port" of the remote socket. */
  readonly address: string;
  readonly sessionId: string;
  readonly protocolVersion: number;
}

export interface CloseInfo {
  readonly reason: string;
  readonly initiator: 'local' | 'remote';
  /** Set when the link failed (protocol violation, socket error, peer timeout) rather than closed cleanly. */
  readonly error?: Error;
}

export interface ConnectionEvents {
  stateChange: [to: ConnectionState, from: ConnectionState];
  message: [message: Message];
  /** A keepalive arrived (they are not delivered as messages). */
  heartbeat: [payload: HeartbeatPayload];
  close: [info: CloseInfo];
  /** Only emitted when someone listens: a failed link must not crash the process. The same error is in CloseInfo. */
  error: [error: Error];
  newListener: [event: string | symbol, listener: (...args: never[]) => void];
}

export interface ConnectionOptions {
  /** Frame limits after authentication (before it, frames are capped at HANDSHAKE_MAX_FRAME_BYTES). */
  readonly limits?: Partial<FrameLimits>;
  /** Time without messages after which the state becomes 'idle'. Default 1000 ms. */
  readonly idleAfterMs?: number;
  /** Send a HEARTBEAT when nothing was sent for this long. 0 disables. Default 0. */
  readonly heartbeatIntervalMs?: number;
  /** Fail the link when nothing arrives for this long. 0 disables. Default 0. */
  readonly peerTimeoutMs?: number;
  /** Received messages buffered before the socket is paused. Default 64. */
  readonly maxQueuedMessages?: number;
  /** Time `close()` waits for the peer to hang up before destroying the socket. Default 2000 ms. */
  readonly closeTimeoutMs?: number;
}

/** Handshake frames are tiny; a stranger must not be able to make us buffer 256 MiB before proving anything. */
export const HANDSHAKE_MAX_FRAME_BYTES = 64 * 1024;

interface Waiter {
  resolve(m: Message): void;
  reject(e: Error): void;
}

export class FramedConnection extends EventEmitter<ConnectionEvents> {
  private readonly decoder: FrameDecoder;
  private readonly limits: FrameLimits;
  private currentState: ConnectionState = 'handshaking';
  private closeInfo: CloseInfo | null = null;
  private readonly closedPromise: Promise<CloseInfo>;
  private resolveClosed!: (info: CloseInfo) => void;
  private readonly inbox: Message[] = [];
  private readonly waiters: Waiter[] = [];
  private readonly pendingSends = new Set<(err: Error) => void>();
  private peerInfo: PeerInfo | null = null;
  private idleTimer: NodeJS.Timeout | null = null;
  private readonly idleAfterMs: number;
  private heartbeatTimer: NodeJS.Timeout | null = null;
  private lastSentAtMs = Date.now();
  private lastReceivedAtMs = Date.now();
  private heartbeatSeq = 0;
  private readonly maxQueuedMessages: number;
  private readonly closeTimeoutMs: number;
  private readonly heartbeatIntervalMs: number;
  private readonly peerTimeoutMs: number;
  private pendingReason: Omit<CloseInfo, 'error'> | null = null;
  private pendingError: Error | null = null;
  private remoteEnded = false;
  /** Remote "host:port", captured up front: a destroyed socket forgets it. */
  readonly remoteAddress: string;

  constructor(
    readonly socket: Socket,
    options: ConnectionOptions = {},
  ) {
    super();
    this.limits = { ...DEFAULT_FRAME_LIMITS, ...options.limits };
    this.decoder = new FrameDecoder({ maxFrameBytes: HANDSHAKE_MAX_FRAME_BYTES, maxJsonBytes: HANDSHAKE_MAX_FRAME_BYTES });
    this.maxQueuedMessages = options.maxQueuedMessages ?? 64;
    this.closeTimeoutMs = options.closeTimeoutMs ?? 2000;
    this.heartbeatIntervalMs = options.heartbeatIntervalMs ?? 0;
    this.peerTimeoutMs = options.peerTimeoutMs ?? 0;
    this.remoteAddress = `${socket.remoteAddress ?? '?'}:${socket.remotePort ?? '?'}`;
    this.closedPromise = new Promise((resolve) => (this.resolveClosed = resolve));
    this.idleAfterMs = options.idleAfterMs ?? 1000;

    socket.setNoDelay(true);
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.on('end', () => this.onEnd());
    socket.on('error', (err) => this.fail(err, 'remote', `socket error: ${err.message}`));
    socket.on('close', () => this.finishClose({ reason: 'socket closed', initiator: 'remote' }));
    this.on('newListener', (event: string | symbol) => {
      if (event === 'message') queueMicrotask(() => this.drainInbox());
    });
  }

  get state(): ConnectionState {
    return this.currentState;
  }

  /** The authenticated peer; throws before the handshake completes. */
  get peer(): PeerInfo {
    if (!this.peerInfo) throw new Error('the handshake has not completed');
    return this.peerInfo;
  }

  /** Resolves (never rejects) when the link is closed, with why. */
  get closed(): Promise<CloseInfo> {
    return this.closedPromise;
  }

  /** A short name for log lines: `node "w1" (127.0.0.1:40000)`. */
  describe(): string {
    return this.peerInfo ? `node "${this.peerInfo.nodeId}" (${this.remoteAddress})` : this.remoteAddress;
  }

  /** Send a typed message. Resolves when its bytes reach the kernel; rejects with ConnectionClosedError. */
  send<T extends MessageType>(type: T, payload: MessagePayloads[T], options: EncodeOptions = {}): Promise<void> {
    if (this.currentState === 'handshaking' && !isHandshakeType(type)) {
      return Promise.reject(new Error(`cannot send ${messageTypeName(type)} before the handshake completes`));
    }
    let frame: FrameToEncode;
    try {
      frame = encodeMessage(type, payload, options);
    } catch (err) {
      return Promise.reject(err);
    }
    if (type !== MessageType.HEARTBEAT) this.touch();
    return this.sendFrame(frame);
  }

  /** Send an already-built frame (no payload checks). For tests and for relaying frames verbatim. */
  sendFrame(frame: FrameToEncode): Promise<void> {
    if (this.closeInfo || this.currentState === 'closing' || this.socket.destroyed) {
      return Promise.reject(new ConnectionClosedError(`cannot send ${messageTypeName(frame.type)}: connection to ${this.describe()} is closed`));
    }
    let parts: [Buffer, Buffer];
    try {
      parts = encodeFrameParts(frame, this.limits);
    } catch (err) {
      return Promise.reject(err);
    }
    this.lastSentAtMs = Date.now();
    return new Promise<void>((resolve, reject) => {
      const abort = (err: Error): void => reject(err);
      this.pendingSends.add(abort);
      const done = (err?: Error | null): void => {
        this.pendingSends.delete(abort);
        if (err) reject(new ConnectionClosedError(`sending ${messageTypeName(frame.type)} to ${this.describe()} failed: ${err.message}`, { cause: err }));
        else resolve();
      };
      const [head, binary] = parts;
      if (binary.length === 0) {
        this.socket.write(head, done);
      } else {
        // cork/uncork: header and tensor leave in one writev without copying the tensor.
        this.socket.cork();
        this.socket.write(head);
        this.socket.write(binary, done);
        this.socket.uncork();
      }
    });
  }

  /**
   * Next message, for request/response code paths. Rejects with ConnectionClosedError when the link closes, or
   * TimeoutError after `timeoutMs` (0 = wait forever).
   */
  receive(timeoutMs = 0): Promise<Message> {
    const queued = this.inbox.shift();
    if (queued) {
      this.resumeIfRoom();
      return Promise.resolve(queued);
    }
    if (this.closeInfo || this.pendingError) return Promise.reject(this.closedError());
    return new Promise<Message>((resolve, reject) => {
      let timer: NodeJS.Timeout | null = null;
      const waiter: Waiter = {
        resolve: (m) => {
          if (timer) clearTimeout(timer);
          resolve(m);
        },
        reject: (e) => {
          if (timer) clearTimeout(timer);
          reject(e);
        },
      };
      if (timeoutMs > 0) {
        timer = setTimeout(() => {
          const i = this.waiters.indexOf(waiter);
          if (i >= 0) this.waiters.splice(i, 1);
          reject(new TimeoutError(`no message from ${this.describe()} within ${timeoutMs} ms`));
        }, timeoutMs);
      }
      this.waiters.push(waiter);
      this.pump();
    });
  }

  /** Messages until the link closes; throws the close error if it failed. */
  async *messages(): AsyncGenerator<Message, void, undefined> {
    for (;;) {
      try {
        yield await this.receive();
      } catch (err) {
        if (err instanceof ConnectionClosedError && !(this.closeInfo?.error ?? this.pendingError)) return;
        throw err;
      }
    }
  }

  [Symbol.asyncIterator](): AsyncGenerator<Message, void, undefined> {
    return this.messages();
  }

  /**
   * Close gracefully: flush what was sent, half-close, wait for the peer to hang up (at most closeTimeoutMs).
   * Resolves with the close info; idempotent.
   */
  async close(reason = 'closed by local side'): Promise<CloseInfo> {
    if (!this.closeInfo && !this.pendingError && this.currentState !== 'closing') {
      this.setState('closing');
      this.pendingReason = { reason, initiator: 'local' };
      this.socket.end();
      const timer = setTimeout(() => this.socket.destroy(), this.closeTimeoutMs).unref();
      void this.closedPromise.then(() => clearTimeout(timer));
    }
    return this.closedPromise;
  }

  /** Fail the link now, e.g. on a peer that sent nonsense. */
  destroy(error: Error, reason = error.message): void {
    this.fail(error, 'local', reason);
  }

  // ---- used by the handshake (handshake.ts) ----

  /** @internal The handshake succeeded: lift the frame limits, start timers, deliver messages. */
  markEstablished(peer: PeerInfo): void {
    if (this.currentState !== 'handshaking') return;
    this.peerInfo = peer;
    this.decoder.setLimits(this.limits);
    this.setState('established');
    this.idleTimer = setTimeout(() => this.setState('idle'), this.idleAfterMs).unref();
    this.lastReceivedAtMs = Date.now();
    if (this.heartbeatIntervalMs > 0 || this.peerTimeoutMs > 0) {
      const tickMs = Math.max(10, Math.min(this.heartbeatIntervalMs || Infinity, this.peerTimeoutMs || Infinity) / 2);
      this.heartbeatTimer = setInterval(() => this.heartbeatTick(), tickMs).unref();
    }
    this.drainInbox();
  }

  // ---- internals ----

  private setState(to: ConnectionState): void {
    const from = this.currentState;
    if (from === to || from === 'closed') return;
    if (from === 'closing' && to !== 'closed') return;
    this.currentState = to;
    this.emit('stateChange', to, from);
  }

  /** A message moved: mark active and re-arm the idle timer. */
  private touch(): void {
    if (this.currentState === 'handshaking' || this.currentState === 'closing' || this.currentState === 'closed') return;
    this.setState('active');
    if (this.idleTimer) this.idleTimer.refresh();
    else this.idleTimer = setTimeout(() => this.setState('idle'), this.idleAfterMs).unref();
  }

  private onData(chunk: Buffer): void {
    if (this.pendingError) return; // failing: drain and drop whatever else the peer sends
    this.lastReceivedAtMs = Date.now();
    try {
      this.decoder.write(chunk);
    } catch (err) {
      this.protocolFailure(err as Error);
      return;
    }
    this.pump();
  }

  /**
   * Decode and deliver frames. During the handshake only as many frames are decoded as the handshake asked for:
   * whatever follows WELCOME must be decoded under the post-handshake limits, and unauthenticated bytes must not
   * pile up (the socket stays paused while any are unread).
   */
  private pump(): void {
    while (!this.pendingError && !this.closeInfo) {
      if (this.currentState === 'handshaking' && this.waiters.length === 0) break;
      let message: Message;
      try {
        const frame = this.decoder.read();
        if (!frame) break;
        message = decodeMessage(frame);
      } catch (err) {
        this.protocolFailure(err as Error);
        return;
      }
      if (message.type === MessageType.HEARTBEAT) {
        // Keepalives stay out of the message stream, but liveness tracking (the failure detector) needs them.
        this.emit('heartbeat', message.payload as HeartbeatPayload);
        continue;
      }
      if (!isHandshakeType(message.type)) this.touch();
      this.deliver(message);
    }
    if (this.pendingError || this.closeInfo) return;
    const holding = this.currentState === 'handshaking' && this.decoder.unreadBytes > 0;
    if (holding || this.inbox.length >= this.maxQueuedMessages) this.socket.pause();
    else if (this.socket.isPaused() && !this.socket.destroyed) this.socket.resume();
    if (this.remoteEnded && this.decoder.unreadBytes === 0) this.checkEnd();
  }

  private onEnd(): void {
    this.remoteEnded = true;
    this.pump();
  }

  /** The peer finished sending and every byte was decoded: a partial frame left over means a truncated stream. */
  private checkEnd(): void {
    try {
      this.decoder.end();
    } catch (err) {
      this.fail(err as Error, 'remote', (err as Error).message);
      return;
    }
    if (this.currentState !== 'closing') {
      this.pendingReason = { reason: 'closed by peer', initiator: 'remote' };
      this.setState('closing');
    }
    this.socket.end();
  }

  private protocolFailure(err: Error): void {
    if (!(err instanceof ProtocolError)) {
      this.fail(err, 'local', err.message);
      return;
    }
    // Tell the peer why before hanging up (our outgoing framing is still intact even if theirs is lost).
    const notice =
      this.currentState === 'handshaking'
        ? encodeMessage(MessageType.REFUSED, { code: 'malformed', reason: err.message.slice(0, 4000) })
        : encodeMessage(MessageType.ERROR, { code: `protocol:${err.code}`, message: err.message, batchId: null });
    this.fail(err, 'remote', `protocol error: ${err.message}`, Buffer.concat(encodeFrameParts(notice)));
  }

  private deliver(message: Message): void {
    const waiter = this.waiters.shift();
    if (waiter) {
      waiter.resolve(message);
      return;
    }
    if (this.currentState !== 'handshaking' && this.listenerCount('message') > 0 && this.inbox.length === 0) {
      this.emit('message', message);
      return;
    }
    this.inbox.push(message);
  }

  private drainInbox(): void {
    if (this.currentState === 'handshaking') return;
    while (this.inbox.length > 0 && this.listenerCount('message') > 0) {
      this.emit('message', this.inbox.shift()!);
    }
    this.resumeIfRoom();
  }

  private resumeIfRoom(): void {
    if (this.inbox.length < this.maxQueuedMessages) this.pump();
  }

  private heartbeatTick(): void {
    const nowMs = Date.now();
    if (this.peerTimeoutMs > 0 && nowMs - this.lastReceivedAtMs > this.peerTimeoutMs) {
      this.fail(new ConnectionClosedError(`${this.describe()} sent nothing for ${nowMs - this.lastReceivedAtMs} ms`), 'remote', 'peer timed out');
      return;
    }
    if (this.heartbeatIntervalMs > 0 && nowMs - this.lastSentAtMs >= this.heartbeatIntervalMs) {
      this.send(MessageType.HEARTBEAT, { seq: this.heartbeatSeq++, sentAtMs: nowMs }).catch(() => {
        /* a failed heartbeat surfaces as the close that caused it */
      });
    }
  }

  /**
   * Record why the link failed and take it down. With a `notice` (a last frame telling the peer why), the socket
   * is half-closed so the notice gets out, and destroyed after closeTimeoutMs at the latest.
   */
  private fail(error: Error, initiator: CloseInfo['initiator'], reason: string, notice?: Buffer): void {
    if (this.closeInfo || this.pendingError) return;
    this.pendingReason = { reason, initiator };
    this.pendingError = error;
    if (this.listenerCount('error') > 0) this.emit('error', error);
    // Waiters learn now, not when the socket finally closes.
    const closedErr = new ConnectionClosedError(`connection to ${this.describe()} failed: ${error.message}`, { cause: error });
    for (const w of this.waiters.splice(0)) w.reject(closedErr);
    if (notice && !this.socket.destroyed && this.socket.writable) {
      this.socket.end(notice);
      setTimeout(() => this.socket.destroy(), this.closeTimeoutMs).unref();
    } else {
      this.socket.destroy();
    }
    // 'close' follows asynchronously; finishClose runs then.
  }

  private finishClose(fallback: Omit<CloseInfo, 'error'>): void {
    if (this.closeInfo) return;
    const base = this.pendingReason ?? fallback;
    const info: CloseInfo = this.pendingError ? { ...base, error: this.pendingError } : base;
    this.closeInfo = info;
    if (this.idleTimer) clearTimeout(this.idleTimer);
    if (this.heartbeatTimer) clearInterval(this.heartbeatTimer);
    const closedErr = this.closedError();
    for (const abort of this.pendingSends) abort(closedErr);
    this.pendingSends.clear();
    for (const w of this.waiters.splice(0)) w.reject(closedErr);
    this.setState('closed');
    this.emit('close', info);
    this.resolveClosed(info);
  }

  private closedError(): ConnectionClosedError {
    const error = this.closeInfo?.error ?? this.pendingError ?? undefined;
    const why = error ? error.message : (this.closeInfo?.reason ?? 'closed');
    return new ConnectionClosedError(`connection to ${this.describe()} closed: ${why}`, { cause: error });
  }
}

function isHandshakeType(type: number): boolean {
  return type >= MessageType.HELLO && type <= MessageType.REFUSED;
}
