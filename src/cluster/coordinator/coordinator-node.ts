/**
 * The coordinator process's IO shell around CoordinatorCore: accepts worker links, turns their messages into core
 * events, and carries out the core's commands (assignments, tensor streaming, batches, KV truncation, task
 * callbacks). Every decision is the core's; this file only moves bytes.
 */
import { randomUUID } from 'node:crypto';
import { basename } from 'node:path';
import type { Tokenizer } from '../../engine/tokenizer/index.js';
import { systemClock, type Clock } from '../../state/index.js';
import type { FramedConnection } from '../../transport/connection.js';
import { listen, type Listener } from '../../transport/endpoints.js';
import { MessageType, type AssignPayload, type Message, type MessagePayloads } from '../../transport/messages.js';
import { bytesOf, viewTensor } from '../../transport/tensor-bytes.js';
import { ConnectionTracker } from '../connection-tracker.js';
import { ClusterMetrics } from '../metrics.js';
import type { Logger } from '../log.js';
import { formatPlan } from '../plan-format.js';
import type { Plan, PlanOptions } from '../planner.js';
import type { FinishReason, TaskEvent, TaskInput } from '../scheduler.js';
import { CoordinatorCore, type AssignCommand, type CoreCommand, type CoreEvent } from './core.js';
import { ModelCatalog } from './model-catalog.js';
import type { ClusterStatus, CompletionHandlers, InferenceService, SubmittedTask } from './service.js';

export interface CoordinatorOptions {
  readonly modelPath: string;
  readonly host: string;
  /** 0 picks a free port. */
  readonly port: number;
  readonly secret: string;
  readonly nodeId?: string;
  readonly expectedWorkers: number;
  readonly maxActiveSequences?: number;
  readonly maxBatchTokens?: number;
  readonly prefillChunkTokens?: number;
  readonly planOptions?: PlanOptions;
  readonly suspectAfterMs?: number;
  readonly tickIntervalMs?: number;
  readonly clock?: Clock;
  readonly logger: Logger;
}

/** Bytes per TENSOR_CHUNK when streaming weights (frames are capped at 256 MiB; 8 MiB keeps memory flat). */
const STREAM_CHUNK_BYTES = 8 * 2 ** 20;

export class CoordinatorNode implements InferenceService {
  readonly catalog: ModelCatalog;
  readonly core: CoordinatorCore;
  readonly metrics: ClusterMetrics;
  private listener: Listener | null = null;
  private readonly links = new Map<string, FramedConnection>();
  private readonly leaving = new Set<string>();
  private readonly handlers = new Map<string, CompletionHandlers>();
  private readonly connections: ConnectionTracker;
  private tickTimer: NodeJS.Timeout | null = null;
  private readyWaiters: Array<{ resolve: (p: Plan) => void; reject: (e: Error) => void }> = [];
  private readyPlan: Plan | null = null;
  private lostReason: string | null = null;
  private readonly logger: Logger;

  constructor(private readonly opts: CoordinatorOptions) {
    this.logger = opts.logger;
    this.catalog = new ModelCatalog(opts.modelPath);
    const cfg = this.catalog.model.cfg;
    const maxActive = opts.maxActiveSequences ?? 16;
    this.core = new CoordinatorCore({
      nodeId: opts.nodeId ?? 'coordinator',
      clock: opts.clock ?? systemClock,
      expectedWorkers: opts.expectedWorkers,
      modelShape: this.catalog.plannerShape(maxActive),
      vocabSize: cfg.vocabSize,
      planOptions: opts.planOptions,
      suspectAfterMs: opts.suspectAfterMs ?? 2000,
      scheduler: {
        maxBatchTokens: opts.maxBatchTokens ?? 512,
        prefillChunkTokens: opts.prefillChunkTokens ?? 256,
        maxActiveSequences: maxActive,
        contextLength: cfg.contextLength,
        eogIds: new Set(this.catalog.tokenizer.eotIds),
      },
    });
    this.connections = new ConnectionTracker(opts.logger, this.core.registry);
    this.metrics = new ClusterMetrics(this.core.registry, this.core.invariants, opts.tickIntervalMs ?? 250);
    for (const m of [this.core.system, this.core.coordinator]) {
      m.onTransition((e) => this.logger.info(`${e.kind} ${e.machineId}: ${e.from} → ${e.to} (${e.record.trigger.kind})`));
    }
  }

  get tokenizer(): Tokenizer {
    return this.catalog.tokenizer;
  }

  get modelName(): string {
    return basename(this.opts.modelPath);
  }

  get contextLength(): number {
    return this.catalog.model.cfg.contextLength;
  }

  /** The address workers join. */
  get address(): { host: string; port: number } {
    if (!this.listener) throw new Error('coordinator not started');
    return { host: this.listener.host, port: this.listener.port };
  }

  async start(): Promise<void> {
    this.listener = await listen({
      host: this.opts.host, port: this.opts.port, secret: this.opts.secret, nodeId: this.opts.nodeId ?? 'coordinator',
      role: 'coordinator', logger: this.logger, limits: { maxFrameBytes: 512 * 2 ** 20 },
      admit: (hello) => (this.links.has(hello.nodeId) ? { code: 'duplicate-node', reason: `a node named ${hello.nodeId} is already connected` } : undefined),
      onConnection: (conn) => this.onConnection(conn),
    });
    this.logger.info(`listening for workers on ${this.listener.host}:${this.listener.port}; waiting for ${this.opts.expectedWorkers} worker(s)`);
    this.apply({ type: 'start' });
    this.tickTimer = setInterval(() => this.apply({ type: 'tick' }), this.opts.tickIntervalMs ?? 250);
    this.tickTimer.unref();
  }

  /** Resolves when every stage has loaded its layers; rejects if planning or loading fails. */
  ready(): Promise<Plan> {
    if (this.readyPlan) return Promise.resolve(this.readyPlan);
    if (this.lostReason) return Promise.reject(new Error(this.lostReason));
    return new Promise((resolve, reject) => this.readyWaiters.push({ resolve, reject }));
  }

  async stop(reason = 'coordinator stopping'): Promise<void> {
    if (this.tickTimer) clearInterval(this.tickTimer);
    this.apply({ type: 'shutdown', reason });
    // Give workers a moment to receive SHUTDOWN and leave before the links close.
    await new Promise((r) => setTimeout(r, 100));
    await this.listener?.close(reason);
    this.catalog.close();
  }

  submit(input: Omit<TaskInput, 'taskId'> & { readonly taskId?: string }, handlers: CompletionHandlers): SubmittedTask {
    const taskId = input.taskId ?? `task-${randomUUID()}`;
    if (input.promptIds.length >= this.contextLength) {
      throw new RangeError(`the prompt has ${input.promptIds.length} tokens but the context holds ${this.contextLength}`);
    }
    this.handlers.set(taskId, handlers);
    this.apply({ type: 'submit', task: { ...input, taskId } });
    return { taskId, cancel: () => this.apply({ type: 'cancel', taskId }) };
  }

  status(): ClusterStatus {
    const cfg = this.catalog.model.cfg;
    const plan = this.core.plan;
    return {
      model: { name: this.modelName, path: this.opts.modelPath, layers: cfg.nLayers, vocabSize: cfg.vocabSize, contextLength: cfg.contextLength },
      systemState: this.core.system.state,
      coordinatorState: this.core.coordinator.state,
      phase: this.core.phase,
      workers: this.core.workerList().map((w) => {
        const stage = w.stageIndex !== null ? plan?.stages[w.stageIndex] : undefined;
        return {
          nodeId: w.nodeId, state: w.state, stageIndex: w.stageIndex,
          firstLayer: stage?.firstLayer ?? null, lastLayer: stage?.lastLayer ?? null,
          memoryBytes: w.join.memoryBytes, speedBytesPerSecond: w.join.speedBytesPerSecond, hostname: w.join.hostname,
        };
      }),
      tasks: this.core.activeTasks(),
      queuedTasks: this.core.queuedTasks,
      plan: plan ? { tokensPerSecond: plan.tokensPerSecond, explanation: plan.explanation } : null,
    };
  }

  stateJSON(): unknown {
    return {
      machines: this.core.registry.toJSON(),
      coherence: this.core.registry.coherence(250),
      invariants: { active: [...this.core.invariants.active().values()], totals: Object.fromEntries(this.core.invariants.totalsByInvariant()) },
    };
  }

  // ---- IO → events ----

  private onConnection(conn: FramedConnection): void {
    const nodeId = conn.peer.nodeId;
    if (conn.peer.role !== 'worker') {
      this.logger.warn(`refusing ${conn.describe()}: only workers join the coordinator's port`);
      void conn.close('only workers may join');
      return;
    }
    this.links.set(nodeId, conn);
    this.connections.track(conn, `worker:${nodeId}`);
    conn.on('heartbeat', () => this.apply({ type: 'heartbeat', nodeId }));
    conn.on('message', (m) => {
      try {
        this.onMessage(nodeId, m);
      } catch (err) {
        this.logger.error(`handling ${MessageType[m.type]} from ${nodeId}: ${(err as Error).stack ?? String(err)}`);
      }
    });
    void conn.closed.then((info) => {
      this.links.delete(nodeId);
      const graceful = this.leaving.delete(nodeId);
      this.apply({ type: 'worker_gone', nodeId, reason: info.reason, graceful });
    });
  }

  private onMessage(nodeId: string, m: Message): void {
    switch (m.type) {
      case MessageType.JOIN:
        this.apply({ type: 'worker_joined', nodeId, join: m.payload });
        return;
      case MessageType.HEARTBEAT:
        this.apply({ type: 'heartbeat', nodeId });
        return;
      case MessageType.LOAD_PROGRESS: {
        const p = m.payload;
        this.logger.info(`${nodeId} loading: ${(p.loadedBytes / 2 ** 20).toFixed(0)} / ${(p.totalBytes / 2 ** 20).toFixed(0)} MiB`);
        return;
      }
      case MessageType.LOADED:
        this.logger.info(`${nodeId} loaded layers [${m.payload.firstLayer}, ${m.payload.lastLayer}) in ${m.payload.loadMs.toFixed(0)} ms`);
        this.apply({ type: 'worker_loaded', nodeId, planId: m.payload.planId });
        return;
      case MessageType.RESULT: {
        const p = m.payload;
        if (p.sampled && p.output.kind === 'tokens') {
          const tokens = viewTensor(m.binary, { ...p.output, dtype: 'i32' });
          const rows = Array.from(tokens, (token, i) => ({
            token, rngState: p.sampled!.rngStates[i]!, logprobs: p.sampled!.logprobs[i]?.length ? [...p.sampled!.logprobs[i]!] : null,
          }));
          this.apply({ type: 'sampled', nodeId, batchId: p.batchId, rows });
        } else {
          this.apply({ type: 'result', nodeId, batchId: p.batchId, logits: viewTensor(m.binary, { ...p.output, dtype: 'f32' }) });
        }
        return;
      }
      case MessageType.ERROR:
        this.apply({ type: 'worker_error', nodeId, code: m.payload.code, message: m.payload.message, batchId: m.payload.batchId });
        return;
      case MessageType.LEAVE:
        this.leaving.add(nodeId);
        this.logger.info(`${nodeId} is leaving: ${m.payload.reason}`);
        return;
      default:
        this.logger.warn(`ignoring unexpected ${MessageType[m.type]} from ${nodeId}`);
    }
  }

  // ---- commands → IO ----

  private apply(event: CoreEvent): void {
    const commands = this.core.step(event);
    for (const c of commands) this.execute(c);
  }

  private execute(c: CoreCommand): void {
    switch (c.type) {
      case 'log':
        this.logger[c.level](c.message);
        return;
      case 'assign':
        void this.sendAssignment(c).catch((err: Error) => this.logger.error(`assigning ${c.nodeId}: ${err.message}`));
        return;
      case 'forward': {
        const b = c.batch;
        this.send(c.nodeId, MessageType.FORWARD, {
          batchId: b.batchId, seqIds: Array.from(b.seqIds), positions: Array.from(b.positions), logitRows: Array.from(b.logitRows),
          sampling: b.sampling.length > 0 ? b.sampling : null,
          input: { kind: 'tokens', dtype: 'i32', shape: [b.tokens.length] },
        }, bytesOf(b.tokens));
        return;
      }
      case 'truncate':
        this.send(c.nodeId, MessageType.TRUNCATE, { seqId: c.seqId, fromPosition: c.fromPosition });
        return;
      case 'task':
        this.deliver(c.event);
        return;
      case 'pipeline_ready':
        this.readyPlan = c.plan;
        this.logger.info(`serving:\n${formatPlan(c.plan)}`);
        for (const w of this.readyWaiters.splice(0)) w.resolve(c.plan);
        return;
      case 'pipeline_lost':
        this.lostReason = c.reason;
        this.logger.error(`pipeline unavailable: ${c.reason}`);
        for (const w of this.readyWaiters.splice(0)) w.reject(new Error(c.reason));
        return;
      case 'shutdown_workers':
        for (const nodeId of this.links.keys()) this.send(nodeId, MessageType.SHUTDOWN, { reason: c.reason, graceMs: 2000 });
        return;
    }
  }

  private send<T extends MessageType>(nodeId: string, type: T, payload: MessagePayloads[T], binary?: Uint8Array): void {
    const conn = this.links.get(nodeId);
    if (!conn) {
      this.logger.warn(`cannot send ${MessageType[type]} to ${nodeId}: not connected`);
      return;
    }
    conn.send(type, payload, binary ? { binary } : {}).catch((err: Error) => this.logger.warn(`sending ${MessageType[type]} to ${nodeId} failed: ${err.message}`));
  }

  private async sendAssignment(c: AssignCommand): Promise<void> {
    const conn = this.links.get(c.nodeId);
    if (!conn) throw new Error('not connected');
    const tensors = this.catalog.tensorRefs(c.range);
    const cfg = this.catalog.model.cfg;
    const payload: AssignPayload = {
      model: this.catalog.shapeWire, hasRopeFreqs: this.catalog.model.hasRopeFreqs, stageIndex: c.stageIndex, stageCount: c.stageCount,
      nextHop: c.nextHop, planId: c.planId, modelSha256: this.catalog.modelId,
      firstLayer: c.range.firstLayer, lastLayer: c.range.lastLayer, hasEmbedding: c.range.hasEmbedding, hasHead: c.range.hasHead,
      contextTokens: cfg.contextLength, maxBatchSequences: this.opts.maxActiveSequences ?? 16, source: c.source, tensors,
    };
    await conn.send(MessageType.ASSIGN, payload);
    if (c.source !== 'stream') return;
    const total = tensors.reduce((a, t) => a + t.byteLength, 0);
    this.logger.info(`streaming ${(total / 2 ** 20).toFixed(1)} MiB of weights to ${c.nodeId}`);
    for (const t of tensors) {
      const bytes = this.catalog.tensorBytes(t.name);
      // At least one chunk, even for an empty tensor, so the worker sees every tensor complete.
      let off = 0;
      do {
        const chunk = bytes.subarray(off, Math.min(off + STREAM_CHUNK_BYTES, bytes.byteLength));
        // Awaiting each send is the backpressure: the file is never copied whole into memory.
        await conn.send(MessageType.TENSOR_CHUNK, { name: t.name, offset: off, totalBytes: bytes.byteLength }, { binary: chunk });
        off += chunk.byteLength;
      } while (off < bytes.byteLength);
    }
  }

  private deliver(e: TaskEvent): void {
    const h = this.handlers.get(e.taskId);
    if (!h) return;
    if (e.type === 'token') {
      this.metrics.tokens.inc();
      h.onToken(e.token, e.logprobs);
    } else if (e.type === 'finished') {
      this.metrics.tasks.inc({ reason: e.reason });
      this.handlers.delete(e.taskId);
      h.onFinish(e.reason as FinishReason, e.tokens);
    }
  }
}
