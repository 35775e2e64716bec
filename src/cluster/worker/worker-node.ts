/**
 * A worker process: joins the coordinator, loads the layers it is assigned (from its own copy of the model or
 * streamed from the coordinator, checksummed either way), then runs its stage on every batch that arrives and
 * passes the result on — hidden states to the next worker directly, logits back to the coordinator.
 * The Worker, Partition and Connection machines record what really happens.
 */
import { hostname } from 'node:os';
import { createKernels, type Kernels } from '../../engine/kernels/index.js';
import { openModel } from '../../engine/model/load.js';
import { Stage } from '../../engine/model/stage.js';
import { Sampler, topLogprobs } from '../../engine/sampler.js';
import { loadStageWeights } from '../../engine/model/weights.js';
import type { LlamaConfig } from '../../engine/model/config.js';
import { createPartitionMachine, createWorkerMachine, Trigger, type PartitionMachine, type WorkerMachine } from '../../state/index.js';
import { connect, listen, type Listener } from '../../transport/endpoints.js';
import type { FramedConnection } from '../../transport/connection.js';
import { MessageType, type AssignPayload, type ForwardPayload, type Message } from '../../transport/messages.js';
import { bytesOf, viewTensor } from '../../transport/tensor-bytes.js';
import type { Logger } from '../log.js';
import { measureSpeedBytesPerSecond } from './speed.js';
import { StageTensorStore, TensorIntegrityError } from './tensor-store.js';
import { ConnectionTracker } from '../connection-tracker.js';

export interface WorkerOptions {
  readonly coordinatorHost: string;
  readonly coordinatorPort: number;
  readonly secret: string;
  readonly nodeId: string;
  /** Local copy of the model; when absent the coordinator streams the tensors. */
  readonly modelPath?: string;
  readonly memoryBytes: number;
  readonly threads: number;
  /** Address this worker accepts activations on (for the previous stage). */
  readonly peerHost: string;
  readonly peerPort?: number;
  readonly heartbeatIntervalMs?: number;
  /** How long to keep retrying a coordinator that refuses connections. Default 30 s. */
  readonly joinTimeoutMs?: number;
  readonly logger: Logger;
}

export class WorkerNode {
  readonly machine: WorkerMachine;
  private partition: PartitionMachine | null = null;
  private coordinator: FramedConnection | null = null;
  private peerListener: Listener | null = null;
  private next: FramedConnection | null = null;
  private stage: Stage | null = null;
  private store: StageTensorStore | null = null;
  private assign: AssignPayload | null = null;
  private kernels: Kernels | null = null;
  private logitsBuffer = new Float32Array(0);
  private heartbeatTimer: NodeJS.Timeout | null = null;
  private heartbeatSeq = 0;
  private queue: Promise<void> = Promise.resolve();
  private readonly connections: ConnectionTracker;
  private stopping = false;
  private readonly done: Promise<string>;
  private resolveDone!: (reason: string) => void;

  constructor(private readonly opts: WorkerOptions) {
    this.machine = createWorkerMachine(opts.nodeId);
    this.connections = new ConnectionTracker(opts.logger);
    this.done = new Promise((r) => (this.resolveDone = r));
  }

  /** Resolves with the reason when the worker stops. */
  get finished(): Promise<string> {
    return this.done;
  }

  async start(): Promise<void> {
    const { opts } = this;
    this.kernels = createKernels({ threads: opts.threads });
    this.peerListener = await listen({
      host: opts.peerHost, port: opts.peerPort ?? 0, secret: opts.secret, nodeId: opts.nodeId, role: 'worker',
      logger: opts.logger, limits: { maxFrameBytes: 512 * 2 ** 20 },
      onConnection: (conn) => {
        this.connections.track(conn, `peer:${conn.peer.nodeId}`);
        conn.on('message', (m) => this.enqueue(() => this.onMessage(m, conn)));
      },
    });
    let conn: FramedConnection;
    try {
      conn = await this.connectWithRetry();
    } catch (err) {
      await this.peerListener.close('could not join the coordinator');
      this.kernels.dispose();
      throw err;
    }
    this.coordinator = conn;
    this.connections.track(conn, 'coordinator');
    conn.on('message', (m) => this.enqueue(() => this.onMessage(m, conn)));
    void conn.closed.then((info) => {
      if (!this.stopping) void this.stop(`coordinator link closed: ${info.reason}`);
    });
    const speed = measureSpeedBytesPerSecond(this.kernels);
    await conn.send(MessageType.JOIN, {
      memoryBytes: opts.memoryBytes, speedBytesPerSecond: speed, threads: opts.threads,
      hasModelFile: opts.modelPath !== undefined, modelSha256: null, hostname: hostname(),
      peerHost: opts.peerHost, peerPort: this.peerListener.port,
    });
    this.machine.transition('Joined', Trigger.Event('coordinator_connected'));
    opts.logger.info(`joined coordinator ${opts.coordinatorHost}:${opts.coordinatorPort} as ${opts.nodeId} (${(speed / 1e9).toFixed(1)} GB/s, ${opts.threads} thread(s), peer port ${this.peerListener.port})`);
    const interval = opts.heartbeatIntervalMs ?? 250;
    this.heartbeatTimer = setInterval(() => {
      this.coordinator?.send(MessageType.HEARTBEAT, { seq: ++this.heartbeatSeq, sentAtMs: Date.now() }).catch(() => {});
    }, interval);
    this.heartbeatTimer.unref();
  }

  /**
   * Workers may start before their coordinator (separate hosts, service managers): retry refused connections with
   * backoff until `joinTimeoutMs`. A refused handshake (wrong secret) is final.
   */
  private async connectWithRetry(): Promise<FramedConnection> {
    const { opts } = this;
    const deadline = Date.now() + (opts.joinTimeoutMs ?? 30_000);
    let delayMs = 100;
    for (let attempt = 1; ; attempt++) {
      try {
        return await connect(opts.coordinatorHost, opts.coordinatorPort, {
          secret: opts.secret, nodeId: opts.nodeId, role: 'worker', timeoutMs: 10_000, limits: { maxFrameBytes: 512 * 2 ** 20 },
        });
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        const retryable = code === 'ECONNREFUSED' || code === 'ECONNRESET' || code === 'EHOSTUNREACH' || code === 'ETIMEDOUT';
        if (!retryable || Date.now() + delayMs > deadline || this.stopping) throw err;
        if (attempt === 1 || attempt % 10 === 0) opts.logger.info(`coordinator ${opts.coordinatorHost}:${opts.coordinatorPort} not reachable yet (${code}); retrying`);
        await new Promise((r) => setTimeout(r, delayMs));
        delayMs = Math.min(delayMs * 2, 1000);
      }
    }
  }

  /** Leave gracefully (SIGTERM): tell the coordinator, close links, release the stage. */
  async stop(reason: string): Promise<void> {
    if (this.stopping) return;
    this.stopping = true;
    if (this.heartbeatTimer) clearInterval(this.heartbeatTimer);
    this.opts.logger.info(`stopping: ${reason}`);
    try {
      await this.coordinator?.send(MessageType.LEAVE, { reason });
    } catch {
      // the coordinator may already be gone
    }
    await Promise.allSettled([this.coordinator?.close(reason), this.next?.close(reason), this.peerListener?.close(reason)]);
    this.kernels?.dispose();
    this.resolveDone(reason);
  }

  private enqueue(work: () => Promise<void>): void {
    // One batch at a time, in arrival order: the pipeline's correctness depends on FIFO per stage.
    this.queue = this.queue.then(work).catch((err: unknown) => this.opts.logger.error(`worker error: ${(err as Error).stack ?? String(err)}`));
  }

  private async onMessage(m: Message, from: FramedConnection): Promise<void> {
    switch (m.type) {
      case MessageType.ASSIGN:
        return this.onAssign(m.payload);
      case MessageType.TENSOR_CHUNK:
        return this.onChunk(m.payload.name, m.payload.offset, m.payload.totalBytes, m.binary);
      case MessageType.FORWARD:
        return this.onForward(m.payload, m.binary, from);
      case MessageType.TRUNCATE: {
        const { seqId, fromPosition } = m.payload;
        this.stage?.truncate(seqId, Math.min(fromPosition, this.stage.sequenceLength(seqId)));
        // Relay down the pipeline on the same link as the batches, so it stays ordered with them at every stage.
        await this.next?.send(MessageType.TRUNCATE, m.payload).catch(() => {});
        return;
      }
      case MessageType.SHUTDOWN:
        await this.stop(`coordinator asked: ${m.payload.reason}`);
        return;
      case MessageType.HEARTBEAT:
        return;
      default:
        this.opts.logger.warn(`ignoring unexpected ${MessageType[m.type]} from ${from.describe()}`);
    }
  }

  private async onAssign(a: AssignPayload): Promise<void> {
    const log = this.opts.logger;
    this.assign = a;
    this.stage = null;
    this.partition = createPartitionMachine(`${this.opts.nodeId}:L${a.firstLayer}-${a.lastLayer}`);
    this.partition.transition('Fetching', Trigger.Command('fetch_initiated'));
    this.store = new StageTensorStore(a.tensors);
    const mib = (this.store.totalBytes / 2 ** 20).toFixed(1);
    log.info(`assigned layers [${a.firstLayer}, ${a.lastLayer})${a.hasEmbedding ? ' + embedding' : ''}${a.hasHead ? ' + head' : ''}: ${a.tensors.length} tensors, ${mib} MiB, source ${a.source}`);
    if (a.source === 'local-file') {
      if (!this.opts.modelPath) return this.loadFailed(new Error('assigned local-file loading but this worker has no --model'));
      const started = performance.now();
      try {
        const model = openModel(this.opts.modelPath);
        try {
          this.partition.transition('Validating', Trigger.Event('fetch_complete'));
          this.store.loadFromFile(model.file, (loaded) => this.progress(loaded));
        } finally {
          // the tensors are copied out (or mapped, which outlives the descriptor): a re-plan must not leak an fd
          model.file.close();
        }
        await this.finishLoad(performance.now() - started);
      } catch (err) {
        return this.loadFailed(err as Error);
      }
    }
    // 'stream': chunks arrive as TENSOR_CHUNK messages; onChunk finishes the load.
  }

  private loadStartedMs = 0;

  private async onChunk(name: string, offset: number, totalBytes: number, data: Uint8Array): Promise<void> {
    if (!this.store || !this.partition) throw new Error('tensor bytes arrived before an assignment');
    if (this.loadStartedMs === 0) this.loadStartedMs = performance.now();
    try {
      this.store.addChunk(name, offset, totalBytes, data);
    } catch (err) {
      return this.loadFailed(err as Error);
    }
    if (offset + data.byteLength === totalBytes) this.progress(this.store.receivedBytes);
    if (this.store.complete) {
      this.partition.transition('Validating', Trigger.Event('fetch_complete'));
      await this.finishLoad(performance.now() - this.loadStartedMs);
    }
  }

  private progress(loadedBytes: number): void {
    if (!this.assign || !this.store) return;
    this.coordinator?.send(MessageType.LOAD_PROGRESS, { planId: this.assign.planId, loadedBytes, totalBytes: this.store.totalBytes }).catch(() => {});
  }

  private async finishLoad(loadMs: number): Promise<void> {
    const a = this.assign!;
    const p = this.partition!;
    p.transition('Loaded', Trigger.Event('validation_passed'), { checksumMatches: true });
    p.transition('Warming', Trigger.Command('warmup_initiated'));
    const cfg: LlamaConfig = { ...a.model, contextLength: a.contextTokens };
    const weights = loadStageWeights(cfg, a, this.store!.source(), a.hasRopeFreqs);
    this.stage = new Stage(cfg, a, weights, this.kernels!);
    if (a.nextHop) {
      this.next = await connect(a.nextHop.host, a.nextHop.port, {
        secret: this.opts.secret, nodeId: this.opts.nodeId, role: 'worker', timeoutMs: 10_000, limits: { maxFrameBytes: 512 * 2 ** 20 },
      });
      this.connections.track(this.next, `next:${a.nextHop.nodeId}`);
    }
    p.transition('Ready', Trigger.Event('warmup_complete'));
    this.machine.transition('Ready', Trigger.Event('partition_loaded'), { partitionsReady: true });
    await this.coordinator!.send(MessageType.LOADED, {
      planId: a.planId, firstLayer: a.firstLayer, lastLayer: a.lastLayer, tensorCount: a.tensors.length, loadMs,
    });
    this.opts.logger.info(`layers [${a.firstLayer}, ${a.lastLayer}) ready in ${loadMs.toFixed(0)} ms${a.nextHop ? `, next stage ${a.nextHop.nodeId} at ${a.nextHop.host}:${a.nextHop.port}` : ', returning sampled tokens (or logits) to the coordinator'}`);
  }

  private async loadFailed(err: Error): Promise<void> {
    const why = err instanceof TensorIntegrityError ? err.message : `loading failed: ${err.message}`;
    this.opts.logger.error(why);
    if (this.partition?.canTransition('Unloaded', Trigger.Failure(this.opts.nodeId, why))) {
      this.partition.transition('Unloaded', Trigger.Failure(this.opts.nodeId, why));
    }
    this.store = null;
    await this.coordinator?.send(MessageType.ERROR, { code: 'load-failed', message: why, batchId: null }).catch(() => {});
  }

  /** A reused logits buffer of at least n floats (for batches sampled on this worker). */
  private logitsScratch(n: number): Float32Array {
    if (this.logitsBuffer.length < n) this.logitsBuffer = new Float32Array(n);
    return this.logitsBuffer;
  }

  private async onForward(p: ForwardPayload, binary: Uint8Array, from: FramedConnection): Promise<void> {
    const stage = this.stage;
    if (!stage || !this.assign) {
      await from.send(MessageType.ERROR, { code: 'not-ready', message: `${this.opts.nodeId} has no loaded stage`, batchId: p.batchId }).catch(() => {});
      return;
    }
    if (this.machine.state === 'Ready') this.machine.transition('Computing', Trigger.Event('work_assigned'));
    if (this.partition?.state === 'Ready') this.partition.transition('InUse', Trigger.Event('assigned'));
    const started = performance.now();
    const n = p.seqIds.length;
    let out;
    try {
      out = stage.forward({
        nTokens: n,
        seqIds: Int32Array.from(p.seqIds),
        positions: Int32Array.from(p.positions),
        tokens: p.input.kind === 'tokens' ? viewTensor(binary, { ...p.input, dtype: 'i32' }) : undefined,
        hidden: p.input.kind === 'hidden' ? viewTensor(binary, { ...p.input, dtype: 'f32' }) : undefined,
        logitRows: Int32Array.from(p.logitRows),
        // Sampled here, synchronously, before anything else runs: the logits can go into a reused buffer.
        logitsOut: p.sampling && stage.range.hasHead ? this.logitsScratch(p.logitRows.length * stage.cfg.vocabSize) : undefined,
      });
    } catch (err) {
      const message = `${this.opts.nodeId} layers [${this.assign.firstLayer}, ${this.assign.lastLayer}): ${(err as Error).message}`;
      this.opts.logger.warn(`batch ${p.batchId} failed: ${message}`);
      await this.coordinator?.send(MessageType.ERROR, { code: 'forward-failed', message, batchId: p.batchId }).catch(() => {});
      return;
    }
    const computeMs = performance.now() - started;
    if (out.hidden) {
      if (!this.next) throw new Error('a middle stage has no next hop');
      await this.next.send(MessageType.FORWARD, {
        batchId: p.batchId, seqIds: p.seqIds, positions: p.positions, logitRows: p.logitRows, sampling: p.sampling,
        input: { kind: 'hidden', dtype: 'f32', shape: [n, stage.cfg.dim] },
      }, { binary: bytesOf(out.hidden) });
    } else {
      const logits = out.logits!;
      const vocab = stage.cfg.vocabSize;
      if (p.sampling) {
        // Sample here: only the tokens (and any requested logprobs) go back, not 4 × vocab bytes per row.
        const tokens = new Int32Array(p.sampling.length);
        const rngStates: number[] = [];
        const lps: Array<Array<{ id: number; logprob: number }>> = [];
        p.sampling.forEach((spec, i) => {
          const row = logits.subarray(i * vocab, (i + 1) * vocab);
          const sampler = Sampler.fromWire(spec.sampler);
          tokens[i] = sampler.sample(row, spec.recent);
          rngStates.push(sampler.rngState);
          lps.push(spec.topLogprobs > 0 ? topLogprobs(row, spec.topLogprobs) : []);
        });
        await this.coordinator!.send(MessageType.RESULT, {
          batchId: p.batchId, computeMs: performance.now() - started, sampled: { rngStates, logprobs: lps },
          output: { kind: 'tokens', dtype: 'i32', shape: [tokens.length] },
        }, { binary: bytesOf(tokens) });
        return;
      }
      await this.coordinator!.send(MessageType.RESULT, {
        batchId: p.batchId, computeMs, sampled: null, output: { kind: 'logits', dtype: 'f32', shape: [p.logitRows.length, vocab] },
      }, { binary: bytesOf(logits) });
    }
  }
}
