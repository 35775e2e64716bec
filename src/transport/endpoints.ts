/**
 * `connect` and `listen`: TCP (optionally TLS) endpoints that hand out only authenticated FramedConnections.
 * A peer that fails the handshake — wrong secret, garbage bytes, silence — is refused, logged in one line and
 * dropped; the listener keeps serving everyone else.
 */
import net from 'node:net';
import tls from 'node:tls';
import { FramedConnection, type ConnectionOptions } from './connection.js';
import { AuthError, ConnectionClosedError, ProtocolError } from './errors.js';
import { DEFAULT_HANDSHAKE_TIMEOUT_MS, clientHandshake, serverHandshake, type ServerHandshakeOptions } from './handshake.js';
import { MessageType, type NodeRole, type RefusedPayload } from './messages.js';

export interface TransportLogger {
  info(message: string): void;
  warn(message: string): void;
  error(message: string): void;
}

export const silentLogger: TransportLogger = { info: () => {}, warn: () => {}, error: () => {} };

/** One line per event on stderr (stdout belongs to the CLI's output). */
export const stderrLogger: TransportLogger = {
  info: (m) => process.stderr.write(`[transport] ${m}\n`),
  warn: (m) => process.stderr.write(`[transport] warning: ${m}\n`),
  error: (m) => process.stderr.write(`[transport] error: ${m}\n`),
};

export interface ConnectOptions extends ConnectionOptions {
  readonly secret: string;
  readonly nodeId: string;
  readonly role?: NodeRole;
  /** Covers the TCP connect and the whole handshake. Default 5000 ms. */
  readonly timeoutMs?: number;
  /** Connect over TLS with these options (servername, ca, …). The secret is still checked inside TLS. */
  readonly tls?: tls.ConnectionOptions;
}

/** Open an authenticated connection. Rejects with AuthError (refused, wrong secret, timeout) or a socket error. */
export async function connect(host: string, port: number, options: ConnectOptions): Promise<FramedConnection> {
  const timeoutMs = options.timeoutMs ?? DEFAULT_HANDSHAKE_TIMEOUT_MS;
  const startedAtMs = Date.now();
  const socket = await openSocket(host, port, timeoutMs, options.tls);
  const conn = new FramedConnection(socket, options);
  try {
    await clientHandshake(conn, {
      secret: options.secret,
      nodeId: options.nodeId,
      role: options.role,
      timeoutMs: Math.max(1, timeoutMs - (Date.now() - startedAtMs)),
    });
    return conn;
  } catch (err) {
    conn.destroy(err as Error);
    await conn.closed;
    throw err;
  }
}

function openSocket(host: string, port: number, timeoutMs: number, tlsOptions: tls.ConnectionOptions | undefined): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const socket = tlsOptions ? tls.connect({ ...tlsOptions, host, port }) : net.connect({ host, port });
    const readyEvent = tlsOptions ? 'secureConnect' : 'connect';
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new AuthError('timeout', `connecting to ${host}:${port} timed out after ${timeoutMs} ms`));
    }, timeoutMs);
    const onError = (err: Error): void => {
      clearTimeout(timer);
      reject(err);
    };
    socket.once('error', onError);
    socket.once(readyEvent, () => {
      clearTimeout(timer);
      socket.off('error', onError);
      resolve(socket);
    });
  });
}

export interface ListenOptions extends ConnectionOptions {
  /** Default 127.0.0.1: exposing a node to the network should be a decision. */
  readonly host?: string;
  /** 0 picks a free port (see Listener.port). */
  readonly port: number;
  readonly secret: string;
  readonly nodeId: string;
  readonly role?: NodeRole;
  readonly handshakeTimeoutMs?: number;
  readonly logger?: TransportLogger;
  /** Serve TLS with these options (key, cert, …). */
  readonly tls?: tls.TlsOptions;
  /** Optional admission check after a successful proof (e.g. refuse a duplicate node id). */
  readonly admit?: ServerHandshakeOptions['admit'];
  /** Receives each authenticated connection. Attach listeners synchronously or iterate; messages wait until you do. */
  readonly onConnection: (conn: FramedConnection) => void;
}

export interface Listener {
  readonly host: string;
  readonly port: number;
  /** Authenticated, open connections. */
  readonly connections: ReadonlySet<FramedConnection>;
  /** Stop accepting, close every connection (gracefully, then by force), resolve when all are gone. */
  close(reason?: string): Promise<void>;
}

export async function listen(options: ListenOptions): Promise<Listener> {
  const logger = options.logger ?? stderrLogger;
  const host = options.host ?? '127.0.0.1';
  const all = new Set<FramedConnection>();
  const established = new Set<FramedConnection>();

  const onSocket = (socket: net.Socket): void => {
    const conn = new FramedConnection(socket, options);
    all.add(conn);
    void conn.closed.then((info) => {
      all.delete(conn);
      if (!established.delete(conn)) return;
      if (info.error) logger.warn(`connection to ${conn.describe()} failed: ${info.reason}`);
      else logger.info(`connection to ${conn.describe()} closed: ${info.reason}`);
    });
    serverHandshake(conn, {
      secret: options.secret,
      nodeId: options.nodeId,
      role: options.role,
      timeoutMs: options.handshakeTimeoutMs,
      admit: options.admit,
    }).then(
      (peer) => {
        if (conn.state === 'closed' || conn.state === 'closing') return;
        established.add(conn);
        logger.info(`${peer.role} node "${peer.nodeId}" joined from ${peer.address}`);
        try {
          options.onConnection(conn);
        } catch (err) {
          logger.error(`onConnection handler threw for ${conn.describe()}: ${(err as Error).message}`);
          conn.destroy(err as Error);
        }
      },
      (err: Error) => {
        logger.warn(`refused connection from ${conn.remoteAddress}: ${handshakeFailure(err)}`);
        const refusal = refusalFor(err);
        if (refusal) conn.send(MessageType.REFUSED, refusal).catch(() => undefined);
        void conn.close('handshake refused');
      },
    );
  };

  const server = options.tls ? tls.createServer(options.tls, onSocket) : net.createServer(onSocket);
  if (options.tls) {
    server.on('tlsClientError', (err, socket) => {
      logger.warn(`refused TLS connection from ${socket.remoteAddress}:${socket.remotePort}: ${err.message}`);
    });
  }
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  server.on('error', (err) => logger.error(`listener on ${host}: ${err.message}`));
  const address = server.address() as net.AddressInfo;

  return {
    host: address.address,
    port: address.port,
    connections: established,
    async close(reason = 'listener closing'): Promise<void> {
      const stopped = new Promise<void>((resolve) => server.close(() => resolve()));
      await Promise.all([...all].map((c) => c.close(reason)));
      await stopped;
    },
  };
}

/** The one-line reason a handshake failed, for the server log. */
function handshakeFailure(err: Error): string {
  const cause = err instanceof ConnectionClosedError ? err.cause : err;
  if (cause instanceof ProtocolError) return `malformed handshake: ${cause.message}`;
  if (err instanceof ConnectionClosedError) return cause instanceof Error ? cause.message : 'peer hung up during the handshake';
  return err.message;
}

/** REFUSED for failures the handshake did not already answer (it answers wrong secrets and versions itself). */
function refusalFor(err: Error): RefusedPayload | undefined {
  if (err instanceof AuthError && err.code === 'timeout') return { code: 'timeout', reason: err.message };
  if (err instanceof ProtocolError) return { code: 'malformed', reason: err.message };
  return undefined;
}
