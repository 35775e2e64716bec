/**
 * The coordinator's deciding logic, pure: events in, commands out (as etcd's raft does with Step/Ready). It owns
 * the state machines (System, Coordinator, one Worker and Partition per worker, one Task per request), the plan
 * and the batch scheduler; the shell (coordinator-node.ts) does the IO. Because nothing here touches a socket or
 * the wall clock, whole-cluster runs can be simulated in one process with a fake clock.
 */
import type { StageRange } from '../../engine/model/weights.js';
import {
  clusterInvariants,
  createCoordinatorMachine,
  createPartitionMachine,
  createSystemMachine,
  createTaskMachine,
  createWorkerMachine,
  InvariantMonitor,
  MachineRegistry,
  OPERATIONAL_WORKER_STATES,
  Trigger,
  type Clock,
  type ClusterView,
  type CoordinatorMachine,
  type PartitionMachine,
  type SystemMachine,
  type TaskMachine,
  type WorkerMachine,
} from '../../state/index.js';
import type { JoinPayload, NextHop } from '../../transport/messages.js';
import { PlanError, planLayers, type ModelShape, type Plan, type PlanOptions } from '../planner.js';
import { BatchScheduler, type MicroBatch, type SampledRow, type SchedulerConfig, type TaskEvent, type TaskInput } from '../scheduler.js';

export type CoreEvent =
  | { readonly type: 'start' }
  | { readonly type: 'worker_joined'; readonly nodeId: string; readonly join: JoinPayload }
  | { readonly type: 'worker_gone'; readonly nodeId: string; readonly reason: string; readonly graceful: boolean }
  | { readonly type: 'worker_loaded'; readonly nodeId: string; readonly planId: string }
  | { readonly type: 'worker_error'; readonly nodeId: string; readonly code: string; readonly message: string; readonly batchId: number | null }
  | { readonly type: 'heartbeat'; readonly nodeId: string }
  | { readonly type: 'result'; readonly nodeId: string; readonly batchId: number; readonly logits: Float32Array }
  | { readonly type: 'sampled'; readonly nodeId: string; readonly batchId: number; readonly rows: readonly SampledRow[] }
  | { readonly type: 'submit'; readonly task: TaskInput }
  | { readonly type: 'cancel'; readonly taskId: string }
  | { readonly type: 'tick' }
  | { readonly type: 'shutdown'; readonly reason: string };

export interface AssignCommand {
  readonly type: 'assign';
  readonly nodeId: string;
  readonly planId: string;
  readonly range: StageRange;
  readonly stageIndex: number;
  readonly stageCount: number;
  readonly nextHop: NextHop | null;
  readonly source: 'local-file' | 'stream';
}

export type CoreCommand =
  | AssignCommand
  | { readonly type: 'forward'; readonly nodeId: string; readonly batch: MicroBatch }
  | { readonly type: 'truncate'; readonly nodeId: string; readonly seqId: number; readonly fromPosition: number }
  | { readonly type: 'task'; readonly event: TaskEvent }
  | { readonly type: 'log'; readonly level: 'info' | 'warn' | 'error'; readonly message: string }
  | { readonly type: 'pipeline_ready'; readonly plan: Plan }
  | { readonly type: 'pipeline_lost'; readonly reason: string }
  | { readonly type: 'shutdown_workers'; readonly reason: string };

export interface CoreOptions {
  readonly nodeId: string;
  readonly clock: Clock;
  /** Workers to wait for before planning. */
  readonly expectedWorkers: number;
  readonly modelShape: ModelShape;
  /** Logits rows are this long. */
  readonly vocabSize: number;
  readonly planOptions?: PlanOptions;
  readonly scheduler: Omit<SchedulerConfig, 'maxInFlight'> & { readonly maxInFlight?: number };
  /** A worker with no heartbeat for this long becomes Suspect. */
  readonly suspectAfterMs: number;
}

interface WorkerEntry {
  readonly nodeId: string;
  readonly join: JoinPayload;
  readonly machine: WorkerMachine;
  partition: PartitionMachine | null;
  stageIndex: number | null;
  lastHeartbeatMs: number;
}

export type CorePhase = 'waiting' | 'loading' | 'serving' | 'lost' | 'shutdown';

export class CoordinatorCore {
  readonly registry: MachineRegistry;
  readonly system: SystemMachine;
  readonly coordinator: CoordinatorMachine;
  readonly invariants: InvariantMonitor<ClusterView>;
  private readonly workers = new Map<string, WorkerEntry>();
  private readonly tasks = new Map<string, TaskMachine>();
  private scheduler: BatchScheduler | null = null;
  private planValue: Plan | null = null;
  private planCounter = 0;
  private phaseValue: CorePhase = 'waiting';
  private out: CoreCommand[] = [];

  constructor(private readonly opts: CoreOptions) {
    const clock = opts.clock;
    this.registry = new MachineRegistry({ clock });
    this.system = this.registry.add(createSystemMachine('system', { clock }));
    this.coordinator = this.registry.add(createCoordinatorMachine(opts.nodeId, { clock }));
    this.invariants = new InvariantMonitor<ClusterView>({ view: () => this.clusterView(), clock });
    for (const inv of clusterInvariants()) this.invariants.add(inv);
    this.invariants.attach(this.registry);
    this.invariants.onViolation((v) => this.log('error', `invariant ${v.invariant} violated (${v.severity}): ${v.detail}`), 'Warning');
  }

  get phase(): CorePhase {
    return this.phaseValue;
  }

  get plan(): Plan | null {
    return this.planValue;
  }

  get queuedTasks(): number {
    return this.scheduler?.queuedCount ?? 0;
  }

  workerList(): Array<{ nodeId: string; state: string; stageIndex: number | null; join: JoinPayload }> {
    return [...this.workers.values()].map((w) => ({ nodeId: w.nodeId, state: w.machine.state, stageIndex: w.stageIndex, join: w.join }));
  }

  activeTasks(): Array<{ taskId: string; seqId: number; generated: number; prefilled: number }> {
    return this.scheduler?.activeTasks() ?? [];
  }

  /** Feed one event; returns the commands the shell must carry out, in order. */
  step(event: CoreEvent): CoreCommand[] {
    this.out = [];
    switch (event.type) {
      case 'start':
        this.system.transition('Bootstrapping', Trigger.Command('bootstrap'));
        this.coordinator.transition('Elected', Trigger.Command('lease_acquired'), { leaseHeld: true });
        break;
      case 'worker_joined':
        this.onJoin(event.nodeId, event.join);
        break;
      case 'worker_loaded':
        this.onLoaded(event.nodeId, event.planId);
        break;
      case 'worker_gone':
        this.onGone(event.nodeId, event.reason, event.graceful);
        break;
      case 'worker_error':
        this.onWorkerError(event.nodeId, event.code, event.message, event.batchId);
        break;
      case 'heartbeat':
        this.onHeartbeat(event.nodeId);
        break;
      case 'result':
        this.onResult(event.batchId, (sch) => sch.complete(event.batchId, event.logits, this.opts.vocabSize));
        break;
      case 'sampled':
        this.onResult(event.batchId, (sch) => sch.completeSampled(event.batchId, event.rows));
        break;
      case 'submit':
        this.onSubmit(event.task);
        break;
      case 'cancel':
        this.applyTaskEvents(this.scheduler?.cancel(event.taskId) ?? []);
        this.pump();
        break;
      case 'tick':
        this.onTick();
        break;
      case 'shutdown':
        this.onShutdown(event.reason);
        break;
    }
    return this.out;
  }

  private log(level: 'info' | 'warn' | 'error', message: string): void {
    this.out.push({ type: 'log', level, message });
  }

  private now(): number {
    return this.opts.clock.wallTimeMs();
  }

  // ---- membership and planning ----

  private onJoin(nodeId: string, join: JoinPayload): void {
    if (this.workers.has(nodeId)) {
      this.log('warn', `worker ${nodeId} joined twice; keeping the first registration`);
      return;
    }
    const machine = this.registry.add(createWorkerMachine(nodeId, { clock: this.opts.clock }));
    machine.transition('Joined', Trigger.Event('coordinator_connected'));
    this.workers.set(nodeId, { nodeId, join, machine, partition: null, stageIndex: null, lastHeartbeatMs: this.now() });
    this.log('info', `worker ${nodeId} joined: ${(join.memoryBytes / 2 ** 30).toFixed(1)} GiB, ${(join.speedBytesPerSecond / 1e9).toFixed(1)} GB/s, ${join.threads} thread(s)${join.hasModelFile ? ', has the model file' : ''}`);
    if (this.phaseValue === 'waiting' && this.workers.size >= this.opts.expectedWorkers) this.makePlan();
  }

  private makePlan(): void {
    const budgets = [...this.workers.values()].map((w) => ({ id: w.nodeId, memoryBytes: w.join.memoryBytes, speed: w.join.speedBytesPerSecond }));
    let plan: Plan;
    try {
      plan = planLayers(this.opts.modelShape, budgets, this.opts.planOptions);
    } catch (err) {
      const msg = err instanceof PlanError ? err.message : String(err);
      this.log('error', `cannot plan the model over ${budgets.length} worker(s): ${msg}`);
      this.out.push({ type: 'pipeline_lost', reason: msg });
      this.system.transition('Shutdown', Trigger.Event('bootstrap_failed'));
      this.phaseValue = 'lost';
      return;
    }
    this.planValue = plan;
    const planId = `plan-${++this.planCounter}`;
    this.phaseValue = 'loading';
    this.log('info', `plan ${planId}: ${plan.stages.map((s) => `${s.workerId}=[${s.firstLayer},${s.lastLayer})`).join(' → ')}; predicted ${plan.tokensPerSecond.toFixed(1)} tok/s single-stream`);
    plan.stages.forEach((s, i) => {
      const w = this.workers.get(s.workerId)!;
      w.stageIndex = i;
      w.partition = this.registry.add(createPartitionMachine(`${s.workerId}:L${s.firstLayer}-${s.lastLayer}`, { clock: this.opts.clock }));
      w.partition.transition('Fetching', Trigger.Command('fetch_initiated'));
      const next = plan.stages[i + 1];
      const nextW = next ? this.workers.get(next.workerId)! : null;
      this.out.push({
        type: 'assign', nodeId: s.workerId, planId, stageIndex: i, stageCount: plan.stages.length,
        range: { firstLayer: s.firstLayer, lastLayer: s.lastLayer, hasEmbedding: s.hasEmbedding, hasHead: s.hasHead },
        nextHop: nextW ? { nodeId: nextW.nodeId, host: nextW.join.peerHost, port: nextW.join.peerPort } : null,
        source: w.join.hasModelFile ? 'local-file' : 'stream',
      });
    });
  }

  private stageWorkers(): WorkerEntry[] {
    return [...this.workers.values()].filter((w) => w.stageIndex !== null).sort((a, b) => a.stageIndex! - b.stageIndex!);
  }

  private onLoaded(nodeId: string, _planId: string): void {
    const w = this.workers.get(nodeId);
    if (!w?.partition) {
      this.log('warn', `worker ${nodeId} reported a load it was not assigned`);
      return;
    }
    // Fix (sim): a synchronous load blocks the worker's heartbeats, so it may be Suspect when LOADED arrives, and
    // Suspect → Ready is not an edge. The message itself proves liveness: bring the worker back first.
    this.noteAlive(w);
    const p = w.partition;
    p.transition('Validating', Trigger.Event('fetch_complete'));
    p.transition('Loaded', Trigger.Event('validation_passed'), { checksumMatches: true });
    p.transition('Warming', Trigger.Command('warmup_initiated'));
    p.transition('Ready', Trigger.Event('warmup_complete'));
    w.machine.transition('Ready', Trigger.Event('partition_loaded'), { partitionsReady: true });
    this.maybeServe();
  }

  /** Start serving once every stage has loaded and is operational (a Suspect stage must prove liveness first). */
  private maybeServe(): void {
    const stages = this.stageWorkers();
    if (this.phaseValue === 'loading' && stages.every((s) => s.partition?.state === 'Ready') && this.operationalWorkers() === stages.length) {
      const quorum = { operationalWorkers: stages.length, quorumSize: stages.length };
      this.system.transition('Ready', Trigger.Event('quorum_established'), quorum);
      this.coordinator.transition('Monitoring', Trigger.Event('initialize_cluster'), quorum);
      this.scheduler = new BatchScheduler({ ...this.opts.scheduler, maxInFlight: this.opts.scheduler.maxInFlight ?? stages.length });
      this.phaseValue = 'serving';
      this.out.push({ type: 'pipeline_ready', plan: this.planValue! });
      this.log('info', `pipeline ready: ${stages.length} stage(s)`);
      this.pump();
    }
  }

  private onGone(nodeId: string, reason: string, graceful: boolean): void {
    const w = this.workers.get(nodeId);
    if (!w) return;
    const trigger = graceful ? Trigger.Command('leave') : Trigger.Failure(nodeId, reason);
    // Fix (sim): degrade first — every transition runs the invariants, and a Failed stage under a Ready/Computing
    // System violates QuorumOperational (High).
    if (w.stageIndex !== null && this.phaseValue !== 'shutdown') this.degrade(Trigger.Failure(nodeId, reason));
    if (w.machine.state !== 'Failed') w.machine.transition('Failed', trigger);
    this.workers.delete(nodeId);
    this.registry.remove('Worker', nodeId);
    if (w.partition) this.registry.remove('Partition', w.partition.id);
    this.log(graceful ? 'info' : 'warn', `worker ${nodeId} ${graceful ? 'left' : 'was lost'}: ${reason}`);
    if (w.stageIndex === null || this.phaseValue === 'shutdown') return;
    // A stage is gone. Token-exact recovery (checkpoints, re-prefill on a replacement) builds on this point;
    // until then in-flight tasks fail cleanly and the pipeline stops accepting work.
    this.phaseValue = 'lost';
    this.applyTaskEvents(this.scheduler?.failAll() ?? []);
    this.out.push({ type: 'pipeline_lost', reason: `stage ${w.stageIndex} (${nodeId}) ${graceful ? 'left' : 'failed'}: ${reason}` });
  }

  private onWorkerError(nodeId: string, code: string, message: string, batchId: number | null): void {
    this.log('warn', `worker ${nodeId} reported ${code}: ${message}`);
    if (batchId !== null) {
      this.applyTaskEvents(this.scheduler?.failBatch(batchId) ?? []);
      this.pump();
    } else if (code === 'load-failed' && this.phaseValue === 'loading') {
      this.phaseValue = 'lost';
      this.system.transition('Shutdown', Trigger.Event('bootstrap_failed'));
      this.out.push({ type: 'pipeline_lost', reason: `${nodeId} could not load its layers: ${message}` });
    }
  }

  private onHeartbeat(nodeId: string): void {
    const w = this.workers.get(nodeId);
    if (w) this.noteAlive(w);
  }

  private noteAlive(w: WorkerEntry): void {
    w.lastHeartbeatMs = this.now();
    this.registry.noteReport('Worker', w.nodeId);
    if (w.machine.state !== 'Suspect') return;
    const back = w.machine.previousState!;
    w.machine.transition(back as never, Trigger.Recovery([w.nodeId]));
    this.log('info', `worker ${w.nodeId} is responsive again`);
    if (this.phaseValue === 'loading') this.maybeServe();
    else if (this.phaseValue === 'serving') this.recoverIfWhole(w.nodeId);
  }

  /** System → Degraded and Coordinator → Recovering, where those edges exist (not while bootstrapping). */
  private degrade(trigger: Trigger): void {
    if (this.system.canTransition('Degraded', trigger)) this.system.transition('Degraded', trigger);
    if (this.coordinator.canTransition('Recovering', trigger)) this.coordinator.transition('Recovering', trigger);
  }

  /** Fix (sim): undo a suspicion's degrade once every stage is operational again (the pipeline kept serving). */
  private recoverIfWhole(nodeId: string): void {
    const n = this.stageWorkers().length;
    if (this.operationalWorkers() < n) return;
    const inFlight = this.inFlightTasks();
    const ctx = { operationalWorkers: n, quorumSize: n, inFlightTasks: inFlight };
    const back = Trigger.Recovery([nodeId]);
    if (this.system.state === 'Degraded') this.system.transition(inFlight > 0 ? 'Computing' : 'Ready', back, ctx);
    if (this.coordinator.state === 'Recovering') this.coordinator.transition(inFlight > 0 ? 'Coordinating' : 'Monitoring', back, ctx);
  }

  private onTick(): void {
    const now = this.now();
    for (const w of this.workers.values()) {
      if (w.machine.state === 'Suspect' || w.machine.state === 'Failed') continue;
      const silentMs = now - w.lastHeartbeatMs;
      if (silentMs > this.opts.suspectAfterMs) {
        // Fix (sim): a Suspect stage leaves quorum, so a serving System must be Degraded first (QuorumOperational).
        if (w.stageIndex !== null && this.phaseValue === 'serving') this.degrade(Trigger.Timeout(silentMs));
        w.machine.transition('Suspect', Trigger.Timeout(silentMs));
        this.log('warn', `worker ${w.nodeId} missed heartbeats for ${silentMs.toFixed(0)} ms: Suspect`);
      }
    }
    this.invariants.tick();
  }

  private onShutdown(reason: string): void {
    if (this.phaseValue === 'shutdown') return;
    this.phaseValue = 'shutdown';
    this.applyTaskEvents(this.scheduler?.failAll() ?? []);
    if (this.system.canTransition('Shutdown', Trigger.Command('shutdown_initiated'))) this.system.transition('Shutdown', Trigger.Command('shutdown_initiated'));
    this.out.push({ type: 'shutdown_workers', reason });
    if (this.system.state === 'Shutdown') this.system.transition('Terminated', Trigger.Event('cleanup_complete'));
  }

  // ---- tasks ----

  private onSubmit(task: TaskInput): void {
    const machine = this.registry.add(createTaskMachine(task.taskId, { clock: this.opts.clock }));
    this.tasks.set(task.taskId, machine);
    if (!this.scheduler || this.phaseValue !== 'serving') {
      machine.transition('Failed', Trigger.Event('unrecoverable'));
      this.out.push({ type: 'task', event: { type: 'finished', taskId: task.taskId, seqId: -1, reason: 'error', tokens: [] } });
      this.forgetTask(task.taskId);
      return;
    }
    let events: TaskEvent[];
    try {
      events = this.scheduler.submit(task);
    } catch (err) {
      machine.transition('Failed', Trigger.Event('unrecoverable'));
      this.log('warn', `task ${task.taskId} rejected: ${(err as Error).message}`);
      this.out.push({ type: 'task', event: { type: 'finished', taskId: task.taskId, seqId: -1, reason: 'error', tokens: [] } });
      this.forgetTask(task.taskId);
      return;
    }
    this.applyTaskEvents(events);
    this.pump();
  }

  private onResult(batchId: number, complete: (scheduler: BatchScheduler) => TaskEvent[]): void {
    if (!this.scheduler) return;
    const stages = this.stageWorkers().length;
    if (this.coordinator.state === 'Assigning') {
      this.coordinator.transition('Coordinating', Trigger.Event('assignments_acked'), { acks: stages, requiredAcks: stages });
    }
    let events: TaskEvent[];
    try {
      events = complete(this.scheduler);
    } catch (err) {
      this.log('error', `bad result for batch ${batchId}: ${(err as Error).message}`);
      events = this.scheduler.failBatch(batchId);
    }
    this.applyTaskEvents(events);
    this.pump();
  }

  /** Send micro-batches while slots are free. */
  private pump(): void {
    if (!this.scheduler || this.phaseValue !== 'serving') return;
    const first = this.stageWorkers()[0];
    if (!first) return;
    for (;;) {
      const next = this.scheduler.nextBatch();
      if (!next) break;
      this.applyTaskEvents(next.events);
      for (const w of this.stageWorkers()) {
        if (w.machine.state === 'Ready') w.machine.transition('Computing', Trigger.Event('work_assigned'));
        if (w.partition?.state === 'Ready') w.partition.transition('InUse', Trigger.Event('assigned'));
      }
      this.out.push({ type: 'forward', nodeId: first.nodeId, batch: next.batch });
    }
  }

  private inFlightTasks(): number {
    return this.scheduler?.activeCount ?? 0;
  }

  private applyTaskEvents(events: readonly TaskEvent[]): void {
    for (const e of events) {
      const m = this.tasks.get(e.taskId);
      switch (e.type) {
        case 'admitted':
          m?.transition('Scheduled', Trigger.Event('coordinator_accepts'));
          break;
        case 'dispatched':
          m?.transition('Dispatched', Trigger.Event('assignment_created'));
          if (this.coordinator.state === 'Monitoring') this.coordinator.transition('Assigning', Trigger.Event('request_received'));
          if (this.system.state === 'Ready') this.system.transition('Computing', Trigger.Event('begin_inference'));
          break;
        case 'token':
          if (m?.state === 'Dispatched') {
            const stages = this.stageWorkers().length;
            m.transition('Executing', Trigger.Event('stages_acknowledged'), { acks: stages, requiredAcks: stages });
          }
          break;
        case 'finished':
          this.onTaskFinished(e, m);
          break;
      }
      this.out.push({ type: 'task', event: e });
    }
  }

  private onTaskFinished(e: Extract<TaskEvent, { type: 'finished' }>, m: TaskMachine | undefined): void {
    const inFlight = { inFlightTasks: this.inFlightTasks() };
    if (m && !m.isTerminal) {
      if (e.reason === 'cancelled') m.transition('Cancelled', Trigger.Command('cancelled'));
      else if (e.reason === 'error') m.transition('Failed', Trigger.Event('unrecoverable'));
      else {
        if (m.state === 'Dispatched') m.transition('Executing', Trigger.Event('stages_acknowledged'), { acks: 1, requiredAcks: 1 });
        m.transition('Completed', Trigger.Event('generation_finished'), { verifyReplicas: false });
      }
    }
    if (e.reason === 'stop' || e.reason === 'length') {
      if (this.system.state === 'Computing') {
        this.system.transition('Committing', Trigger.Event('task_finished'));
        this.system.transition(inFlight.inFlightTasks > 0 ? 'Computing' : 'Ready', Trigger.Event('result_committed'), inFlight);
      }
      if (this.coordinator.state === 'Coordinating') {
        this.coordinator.transition('Aggregating', Trigger.Event('computation_complete'));
        this.coordinator.transition('Committing', Trigger.Event('results_collected'), { resultsReceived: 1, resultsExpected: 1 });
        this.coordinator.transition(inFlight.inFlightTasks > 0 ? 'Coordinating' : 'Monitoring', Trigger.Event('commit_finalized'), inFlight);
      }
    } else if (inFlight.inFlightTasks === 0 && this.phaseValue === 'serving') {
      // Fix (sim): the edge also proves nothing is uncommitted; results commit synchronously here, so that is 0.
      if (this.system.state === 'Computing') this.system.transition('Ready', Trigger.Event('all_tasks_abandoned'), { ...inFlight, uncommittedResults: 0 });
      if (this.coordinator.state === 'Coordinating') this.coordinator.transition('Monitoring', Trigger.Event('all_tasks_abandoned'), inFlight);
      if (this.coordinator.state === 'Assigning') this.coordinator.transition('Monitoring', Trigger.Event('assignment_abandoned'), inFlight);
    }
    if (inFlight.inFlightTasks === 0) this.releaseStages(e.reason === 'stop' || e.reason === 'length');
    // Free the sequence's KV cache — on the first stage only. Fix (sim): a TRUNCATE sent straight to a later stage
    // races the batches travelling stage to stage: it can land after the next task reusing this slot has prefilled
    // there (wiping it), or before a cancelled task's batch still in flight (which then fails its batch mates). Only
    // the coordinator → first-stage link is ordered with the batches. Later stages reset the slot when its next
    // task starts at position 0, so they hold at most maxActiveSequences caches (what the planner budgets).
    const first = this.stageWorkers()[0];
    if (e.seqId >= 0 && this.phaseValue === 'serving' && first) {
      this.out.push({ type: 'truncate', nodeId: first.nodeId, seqId: e.seqId, fromPosition: 0 });
    }
    this.forgetTask(e.taskId);
  }

  /**
   * The pipeline went idle: workers leave Computing (through Aggregating → Committing when the last task completed,
   * directly when it was abandoned) and partitions are released, so component states match System Ready.
   */
  private releaseStages(completed: boolean): void {
    const idle = { inFlightTasks: 0 };
    for (const w of this.stageWorkers()) {
      if (w.machine.state === 'Computing') {
        if (completed) {
          w.machine.transition('Aggregating', Trigger.Event('local_computation_done'));
          w.machine.transition('Committing', Trigger.Event('outputs_collected'));
          w.machine.transition('Ready', Trigger.Event('commit_finalized'), idle);
        } else {
          w.machine.transition('Ready', Trigger.Event('all_tasks_abandoned'), idle);
        }
      }
      if (w.partition?.state === 'InUse') w.partition.transition('Ready', Trigger.Event('released'));
    }
  }

  /** Finished tasks leave the registry (their final record stays in the task's own history until then). */
  private forgetTask(taskId: string): void {
    this.tasks.delete(taskId);
    this.registry.remove('Task', taskId);
  }

  // ---- invariants ----

  clusterView(): ClusterView {
    const stages = this.stageWorkers();
    return {
      systemState: this.system.state,
      epoch: this.coordinator.epoch,
      quorumSize: Math.max(1, this.planValue?.stages.length ?? 1),
      coordinators: [{ id: this.coordinator.id, state: this.coordinator.state }],
      workers: stages.map((w) => ({ id: w.nodeId, state: w.machine.state, epoch: w.machine.epoch })),
      layerCount: this.opts.modelShape.nLayers,
      // Fix (sim): the plan as made, dead stages included. Filtering them out made AssignmentCoversModel (High) fire on
      // every check of a Degraded cluster; a missing worker is QuorumOperational's business, which Degraded exempts.
      assignment: (this.planValue?.stages ?? []).map((s) => ({ workerId: s.workerId, layerStart: s.firstLayer, layerEnd: s.lastLayer })),
      commits: [],
      checkpoints: [],
      results: [],
    };
  }

  operationalWorkers(): number {
    return this.stageWorkers().filter((w) => OPERATIONAL_WORKER_STATES.has(w.machine.state)).length;
  }
}
