import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { computeProof, generateSecret } from '../src/transport/auth.js';
import { FramedConnection, type ConnectionState } from '../src/transport/connection.js';
import { connect, listen, type Listener, type ListenOptions, type TransportLogger } from '../src/transport/endpoints.js';
import { AuthError } from '../src/transport/errors.js';
import { FrameDecoder, FrameFlags, encodeFrame, encodeFrameParts } from '../src/transport/frame.js';
import { MessageType, decodeMessage, encodeMessage, type Message } from '../src/transport/messages.js';

interface CapturedLog extends TransportLogger {
  readonly lines: string[];
}

function captureLog(): CapturedLog {
  const lines: string[] = [];
  return {
    lines,
    info: (m) => lines.push(`info ${m}`),
    warn: (m) => lines.push(`warn ${m}`),
    error: (m) => lines.push(`error ${m}`),
  };
}

async function waitFor(predicate: () => boolean, what: string, timeoutMs = 3000): Promise<void> {
  const start = Date.now();
  while (!predicate()) {
    if (Date.now() - start > timeoutMs) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

const secret = generateSecret();
const listeners: Listener[] = [];
const clients: FramedConnection[] = [];
const rawSockets: net.Socket[] = [];

afterEach(async () => {
  for (const s of rawSockets.splice(0)) s.destroy();
  await Promise.all(clients.splice(0).map((c) => c.close()));
  await Promise.all(listeners.splice(0).map((l) => l.close()));
});

/** A coordinator that echoes FORWARD batches back as RESULTs and records what it saw. */
async function startServer(overrides: Partial<ListenOptions> = {}): Promise<{ listener: Listener; log: CapturedLog; accepted: FramedConnection[] }> {
  const log = captureLog();
  const accepted: FramedConnection[] = [];
  const listener = await listen({
    port: 0,
    secret,
    nodeId: 'coord',
    logger: log,
    closeTimeoutMs: 500,
    onConnection: (conn) => {
      accepted.push(conn);
      conn.on('message', (m) => {
        if (m.type === MessageType.FORWARD) {
          void conn.send(
            MessageType.RESULT,
            { batchId: m.payload.batchId, output: { kind: 'hidden', dtype: m.payload.input.dtype, shape: m.payload.input.shape }, computeMs: 0 },
            { binary: m.binary, flags: FrameFlags.REPLY, streamId: m.streamId },
          );
        }
      });
    },
    ...overrides,
  });
  listeners.push(listener);
  return { listener, log, accepted };
}

async function joinCluster(listener: Listener, nodeId = 'w1', clientSecret = secret): Promise<FramedConnection> {
  const conn = await connect('127.0.0.1', listener.port, { secret: clientSecret, nodeId, timeoutMs: 3000, closeTimeoutMs: 500 });
  clients.push(conn);
  return conn;
}

async function forwardRoundTrip(conn: FramedConnection, batchId: number): Promise<void> {
  const hidden = Float32Array.from([1, 2, 3, 4, 5, 6]);
  const reply = conn.receive(2000);
  await conn.send(
    MessageType.FORWARD,
    { batchId, seqIds: [0, 1], positions: [5, 9], input: { kind: 'hidden', dtype: 'f32', shape: [2, 3] }, logitRows: [] },
    { binary: new Uint8Array(hidden.buffer), streamId: batchId },
  );
  const m = await reply;
  expect(m.type).toBe(MessageType.RESULT);
  if (m.type !== MessageType.RESULT) return;
  expect(m.payload.batchId).toBe(batchId);
  expect(m.streamId).toBe(batchId);
  expect(Array.from(new Float32Array(m.binary.buffer, m.binary.byteOffset, 6))).toEqual([1, 2, 3, 4, 5, 6]);
}

/** Open a plain TCP socket and collect the frames the server sends back. */
async function rawClient(port: number): Promise<{ socket: net.Socket; frames: Message[]; ended: Promise<void> }> {
  const socket = net.connect({ host: '127.0.0.1', port });
  rawSockets.push(socket);
  await new Promise<void>((r) => socket.once('connect', () => r()));
  const frames: Message[] = [];
  const dec = new FrameDecoder();
  socket.on('data', (c) => frames.push(...dec.push(c).map(decodeMessage)));
  socket.on('error', () => undefined);
  const ended = new Promise<void>((r) => socket.once('close', () => r()));
  return { socket, frames, ended };
}

/** Handshake by hand on a raw socket, so the test can then misbehave at the byte level. */
async function rawAuthenticatedClient(port: number): Promise<{ socket: net.Socket; frames: Message[]; ended: Promise<void> }> {
  const raw = await rawClient(port);
  const nonce = 'cd'.repeat(32);
  raw.socket.write(encodeFrame(encodeMessage(MessageType.HELLO, { protocolVersions: [1], nodeId: 'raw', role: 'worker', nonce, software: 'test' })));
  await waitFor(() => raw.frames.length === 1, 'CHALLENGE');
  const ch = raw.frames[0]!;
  if (ch.type !== MessageType.CHALLENGE) throw new Error('expected CHALLENGE');
  const proof = computeProof(secret, 'client', {
    protocolVersion: 1,
    clientId: 'raw',
    clientRole: 'worker',
    serverId: ch.payload.nodeId,
    serverRole: ch.payload.role,
    clientNonce: nonce,
    serverNonce: ch.payload.nonce,
  });
  raw.socket.write(encodeFrame(encodeMessage(MessageType.AUTH, { proof })));
  await waitFor(() => raw.frames.length === 2, 'WELCOME');
  expect(raw.frames[1]!.type).toBe(MessageType.WELCOME);
  return raw;
}

describe('handshake', () => {
  it('a node with the right secret joins and messages flow both ways', async () => {
    const { listener, log, accepted } = await startServer();
    const conn = await joinCluster(listener, 'w1');
    expect(conn.peer.nodeId).toBe('coord');
    expect(conn.peer.role).toBe('coordinator');
    await forwardRoundTrip(conn, 1);
    await forwardRoundTrip(conn, 2 ** 40);
    expect(accepted).toHaveLength(1);
    expect(accepted[0]!.peer.nodeId).toBe('w1');
    expect(accepted[0]!.peer.sessionId).toBe(conn.peer.sessionId);
    expect(listener.connections.size).toBe(1);
    expect(log.lines).toEqual([expect.stringMatching(/^info worker node "w1" joined from 127\.0\.0\.1:\d+$/)]);
  });

  it('a node with the wrong secret is refused and logged; the server keeps serving', async () => {
    const { listener, log } = await startServer();
    const err = await joinCluster(listener, 'intruder', 'not-the-secret').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(AuthError);
    expect((err as AuthError).code).toBe('bad-secret');
    expect((err as AuthError).message).toMatch(/refused by server 127\.0\.0\.1:\d+ \(node "coord"\): wrong cluster secret/);
    await waitFor(() => log.lines.length > 0, 'log line');
    expect(log.lines).toEqual([expect.stringMatching(/^warn refused connection from 127\.0\.0\.1:\d+: node "intruder" \(127\.0\.0\.1:\d+\) presented a wrong cluster secret$/)]);
    expect(listener.connections.size).toBe(0);

    const good = await joinCluster(listener, 'w2');
    await forwardRoundTrip(good, 3);
  });

  it('a server that cannot prove the secret is rejected by the client', async () => {
    // A rogue server that plays along but does not know the secret.
    const rogue = net.createServer((socket) => {
      const conn = new FramedConnection(socket);
      void (async () => {
        const hello = await conn.receive(2000);
        if (hello.type !== MessageType.HELLO) return;
        await conn.send(MessageType.CHALLENGE, { protocolVersion: 1, nodeId: 'rogue', role: 'coordinator', nonce: 'ef'.repeat(32) });
        await conn.receive(2000);
        await conn.send(MessageType.WELCOME, { proof: '00'.repeat(32), sessionId: 'x' });
      })().catch(() => undefined);
    });
    await new Promise<void>((r) => rogue.listen(0, '127.0.0.1', () => r()));
    try {
      const port = (rogue.address() as net.AddressInfo).port;
      const err = await connect('127.0.0.1', port, { secret, nodeId: 'w1', timeoutMs: 2000 }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(AuthError);
      expect((err as AuthError).code).toBe('peer-failed-proof');
      expect((err as Error).message).toMatch(/node "rogue"\) failed to prove it knows the cluster secret/);
    } finally {
      rogue.close();
    }
  });

  it('garbage instead of HELLO: refused with a clear log line, server keeps serving', async () => {
    const { listener, log } = await startServer();
    const raw = await rawClient(listener.port);
    raw.socket.write('GET / HTTP/1.1\r\nHost: localhost\r\n\r\n');
    await raw.ended;
    expect(raw.frames.map((m) => m.type)).toEqual([MessageType.REFUSED]);
    expect(raw.frames[0]!.payload).toMatchObject({ code: 'malformed' });
    expect(log.lines).toEqual([expect.stringMatching(/^warn refused connection from 127\.0\.0\.1:\d+: malformed handshake: bad frame magic 0x47455420/)]);
    await forwardRoundTrip(await joinCluster(listener), 4);
  });

  it('a silent peer is refused after the handshake timeout', async () => {
    const { listener, log } = await startServer({ handshakeTimeoutMs: 150 });
    const raw = await rawClient(listener.port);
    await raw.ended;
    expect(raw.frames.map((m) => m.type)).toEqual([MessageType.REFUSED]);
    expect(log.lines).toEqual([expect.stringMatching(/^warn refused connection from .*: handshake with 127\.0\.0\.1:\d+ timed out after 150 ms$/)]);
  });

  it('refuses a node the admit hook vetoes, after it proved the secret', async () => {
    const { listener } = await startServer({ admit: (hello) => (hello.nodeId === 'dup' ? { code: 'duplicate-node', reason: 'node "dup" is already connected' } : undefined) });
    const err = await joinCluster(listener, 'dup').catch((e: unknown) => e);
    expect((err as AuthError).code).toBe('refused');
    expect((err as Error).message).toMatch(/duplicate-node.*already connected/);
  });

  it('messages sent right after WELCOME are delivered, even large ones', async () => {
    const big = Buffer.alloc(300_000, 0x5a); // over the 64 KiB handshake frame limit
    const { listener } = await startServer({
      onConnection: (conn) => {
        void conn.send(MessageType.TENSOR_CHUNK, { name: 'token_embd.weight', offset: 0, totalBytes: big.length }, { binary: big, flags: FrameFlags.END_OF_STREAM });
        void conn.send(MessageType.SHUTDOWN, { reason: 'test', graceMs: 0 });
      },
    });
    const conn = await joinCluster(listener);
    await new Promise((r) => setTimeout(r, 50)); // let both frames arrive before anyone listens
    const got: Message[] = [];
    for await (const m of conn) {
      got.push(m);
      if (got.length === 2) break;
    }
    expect(got.map((m) => m.type)).toEqual([MessageType.TENSOR_CHUNK, MessageType.SHUTDOWN]);
    expect(got[0]!.binary.equals(big)).toBe(true);
    expect(got[0]!.flags & FrameFlags.END_OF_STREAM).toBeTruthy();
  });
});

describe('misbehaving authenticated peers', () => {
  it('a malformed frame (flipped tensor bit) closes that link with a clear log line; others keep working', async () => {
    const { listener, log } = await startServer();
    const bystander = await joinCluster(listener, 'bystander');
    const raw = await rawAuthenticatedClient(listener.port);
    const wire = encodeFrame(encodeMessage(MessageType.TENSOR_CHUNK, { name: 'blk.3.ffn_up.weight', offset: 0, totalBytes: 64 }, { binary: Buffer.alloc(64, 1) }));
    wire[wire.length - 10]! ^= 0x01;
    raw.socket.write(wire);
    await raw.ended;
    const last = raw.frames.at(-1)!;
    expect(last.type).toBe(MessageType.ERROR);
    expect(last.payload).toMatchObject({ code: 'protocol:binary-checksum' });
    await waitFor(() => log.lines.some((l) => l.startsWith('warn')), 'warning');
    expect(log.lines.filter((l) => l.startsWith('warn'))).toEqual([
      expect.stringMatching(/^warn connection to node "raw" \(127\.0\.0\.1:\d+\) failed: protocol error: TENSOR_CHUNK binary part checksum mismatch over 64 bytes/),
    ]);
    await forwardRoundTrip(bystander, 5);
  });

  it('a truncated tensor stream is reported, not silently dropped; others keep working', async () => {
    const { listener, log, accepted } = await startServer();
    const bystander = await joinCluster(listener, 'bystander');
    const raw = await rawAuthenticatedClient(listener.port);
    const wire = encodeFrame(encodeMessage(MessageType.TENSOR_CHUNK, { name: 'output.weight', offset: 0, totalBytes: 100_000 }, { binary: Buffer.alloc(100_000, 3) }));
    raw.socket.end(wire.subarray(0, 60_000));
    await waitFor(() => log.lines.some((l) => l.startsWith('warn')), 'warning');
    expect(log.lines.filter((l) => l.startsWith('warn'))).toEqual([
      expect.stringMatching(/^warn connection to node "raw" .* failed: stream ended mid-frame: TENSOR_CHUNK frame cut off after \d+ of 100\d+ payload bytes$/),
    ]);
    const rawConn = accepted.find((c) => c.peer.nodeId === 'raw')!;
    const info = await rawConn.closed;
    expect(info.error?.message).toMatch(/cut off/);
    await forwardRoundTrip(bystander, 6);
  });

  it('an oversize frame header is refused without allocating', async () => {
    const { listener, log } = await startServer({ limits: { maxFrameBytes: 1 << 20 } });
    const raw = await rawAuthenticatedClient(listener.port);
    const [head] = encodeFrameParts({ type: MessageType.TENSOR_CHUNK, json: { name: 'w', offset: 0, totalBytes: 1 }, binary: Buffer.alloc(2 << 20) }, { maxFrameBytes: 4 << 20, maxJsonBytes: 1 << 20 });
    raw.socket.write(head);
    await raw.ended;
    await waitFor(() => log.lines.length === 2, 'warning');
    expect(log.lines[1]).toMatch(/^warn connection to node "raw" .* failed: protocol error: TENSOR_CHUNK frame of \d+ bytes exceeds the limit of 1048576$/);
  });
});

describe('connection behaviour', () => {
  it('backpressure: a 50 MB tensor send does not complete until the receiver reads', async () => {
    let serverConn: FramedConnection | undefined;
    const { listener } = await startServer({
      onConnection: (conn) => {
        serverConn = conn;
        conn.socket.pause(); // a receiver that is not reading
      },
    });
    const conn = await joinCluster(listener);
    await waitFor(() => serverConn !== undefined, 'server side');
    const tensor = Buffer.allocUnsafe(50 * 1024 * 1024);
    for (let i = 0; i < tensor.length; i += 4) tensor.writeUInt32LE((i * 2654435761) >>> 0, i);

    let sent = false;
    const sending = conn
      .send(MessageType.TENSOR_CHUNK, { name: 'blk.0.ffn_down.weight', offset: 0, totalBytes: tensor.length }, { binary: tensor, flags: FrameFlags.END_OF_STREAM })
      .then(() => (sent = true));
    await new Promise((r) => setTimeout(r, 300));
    expect(sent).toBe(false); // kernel buffers hold a few MB at most; the rest waits for the reader
    expect(conn.socket.writableLength).toBeGreaterThan(10 * 1024 * 1024);

    const received = serverConn!.receive(10_000);
    serverConn!.socket.resume();
    const m = await received;
    await sending;
    expect(sent).toBe(true);
    expect(m.type).toBe(MessageType.TENSOR_CHUNK);
    expect(m.binary.length).toBe(tensor.length);
    expect(m.binary.equals(tensor)).toBe(true);
  });

  it('reports established → active → idle → closing → closed', async () => {
    const { listener } = await startServer({ idleAfterMs: 50 });
    const conn = await connect('127.0.0.1', listener.port, { secret, nodeId: 'w1', idleAfterMs: 50, closeTimeoutMs: 500 });
    const states: ConnectionState[] = [conn.state];
    conn.on('stateChange', (to) => states.push(to));
    await forwardRoundTrip(conn, 7);
    await waitFor(() => conn.state === 'idle', 'idle');
    const info = await conn.close('test done');
    expect(info).toEqual({ reason: 'test done', initiator: 'local' });
    expect(states).toEqual(['established', 'active', 'idle', 'closing', 'closed']);
    await expect(conn.send(MessageType.LEAVE, { reason: 'late' })).rejects.toThrow(/closed/);
  });

  it('a graceful close ends the peer iterator cleanly', async () => {
    const { listener, accepted, log } = await startServer();
    const conn = await joinCluster(listener);
    await waitFor(() => accepted.length === 1, 'accept');
    const seen: number[] = [];
    const iterating = (async () => {
      for await (const m of accepted[0]!) seen.push(m.type);
    })();
    await conn.send(MessageType.LEAVE, { reason: 'bye' });
    await conn.close();
    await iterating;
    expect(seen).toEqual([MessageType.LEAVE]);
    await waitFor(() => log.lines.length === 2, 'close log');
    expect(log.lines[1]).toMatch(/^info connection to node "w1" .* closed: closed by peer$/);
  });

  it('heartbeats keep a quiet link alive; a silent peer times out', async () => {
    const { listener, accepted } = await startServer({ peerTimeoutMs: 200 });
    const chatty = await connect('127.0.0.1', listener.port, { secret, nodeId: 'chatty', heartbeatIntervalMs: 40 });
    clients.push(chatty);
    const silent = await joinCluster(listener, 'silent');
    await waitFor(() => accepted.length === 2, 'accept');
    const silentServerSide = accepted.find((c) => c.peer.nodeId === 'silent')!;
    const info = await silentServerSide.closed;
    expect(info.reason).toBe('peer timed out');
    expect(info.error?.message).toMatch(/node "silent" .* sent nothing for \d+ ms/);
    expect(accepted.find((c) => c.peer.nodeId === 'chatty')!.state).not.toBe('closed');
    await silent.closed;
  });
});

describe('TLS', () => {
  let dir = '';
  let haveOpenssl = true;
  try {
    execFileSync('openssl', ['version'], { stdio: 'ignore' });
  } catch {
    haveOpenssl = false;
  }

  it.skipIf(!haveOpenssl)('authenticates inside TLS', async () => {
    dir = mkdtempSync(join(tmpdir(), 'bfly-tls-'));
    try {
      execFileSync(
        'openssl',
        ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '1', '-subj', '/CN=localhost', '-addext', 'subjectAltName=IP:127.0.0.1', '-keyout', join(dir, 'key.pem'), '-out', join(dir, 'cert.pem')],
        { stdio: 'ignore' },
      );
      const cert = readFileSync(join(dir, 'cert.pem'));
      const key = readFileSync(join(dir, 'key.pem'));
      const { listener } = await startServer({ tls: { key, cert } });
      const conn = await connect('127.0.0.1', listener.port, { secret, nodeId: 'tls-worker', tls: { ca: cert } });
      clients.push(conn);
      await forwardRoundTrip(conn, 8);
      const refused = await connect('127.0.0.1', listener.port, { secret: 'wrong', nodeId: 'x', tls: { ca: cert } }).catch((e: unknown) => e);
      expect((refused as AuthError).code).toBe('bad-secret');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
