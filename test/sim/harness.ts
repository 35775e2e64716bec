/**
 * A deterministic whole-cluster simulator: one CoordinatorCore, N simulated workers, in-memory links, a fake clock
 * and one seeded PRNG. Links are FIFO with random latency (as TCP is); a dead worker's inbound messages are lost
 * and the coordinator hears its link close after whatever it had already sent. Workers process one message at a
 * time in arrival order (as worker-node.ts's queue does), so their KV bookkeeping is applied on arrival and only
 * the outputs wait for the simulated compute time.
 */
import { CoordinatorCore, type CoreCommand, type CoreEvent } from '../../src/cluster/coordinator/core.js';
import type { MicroBatch, TaskEvent } from '../../src/cluster/scheduler.js';
import { SplitMix32 } from '../../src/engine/prng.js';
import { FakeClock } from '../../src/state/index.js';
import { EventQueue } from './event-queue.js';
import type { SimOutcome, TaskRecord } from './outcome.js';
import type { Anchor, Range, Scenario, SimFault, SimTask } from './scenario.js';
import { SimStage } from './sim-stage.js';
import { describeCommand, describeEvent } from './trace-format.js';

export type { SimOutcome, TaskRecord } from './outcome.js';

const COORD = 'coordinator';
const HEARTBEAT_MS = 250;
const TICK_MS = 250;
const MiB = 2 ** 20;

interface SimWorker {
  readonly id: string;
  alive: boolean;
  stage: SimStage | null;
  next: string | null;
  busyUntil: number;
  stalledUntil: number;
}

export interface SimOptions {
  /** Keep a line per core event and command (for replaying one seed). */
  readonly trace?: boolean;
}

export class Simulation {
  readonly core: CoordinatorCore;
  private readonly clock = new FakeClock(0);
  private readonly queue = new EventQueue();
  private readonly rng: SplitMix32;
  private readonly workers: SimWorker[];
  private readonly byId = new Map<string, SimWorker>();
  private readonly linkLast = new Map<string, number>();
  private readonly tasks = new Map<string, TaskRecord>();
  private pendingWork = 0;
  private anchored = false;
  private stopped = false;
  private thrown: unknown = undefined;
  private readyAtMs: number | null = null;
  private lostAtMs: number | null = null;
  private truncates = 0;
  private forwards = 0;
  private readonly kills: { nodeId: string; atMs: number; wasStage: boolean }[] = [];
  private readonly forgets: number[] = [];
  private readonly stageErrors: { nodeId: string; batchId: number; message: string; atMs: number }[] = [];
  private readonly strayEvents: TaskEvent[] = [];
  private readonly trace: string[] = [];
  private readonly transitions = new Map<string, number>();
  /** Which tasks each forwarded batch carried, and the event being fed right now (to attribute failures). */
  private readonly batchTasks = new Map<number, string[]>();
  private feeding: CoreEvent | null = null;

  constructor(readonly scenario: Scenario, private readonly opts: SimOptions = {}) {
    const s = scenario;
    this.rng = new SplitMix32(s.seed);
    this.workers = s.workerSpeeds.map((_, i) => ({ id: `w${i}`, alive: true, stage: null, next: null, busyUntil: 0, stalledUntil: 0 }));
    for (const w of this.workers) this.byId.set(w.id, w);
    this.core = new CoordinatorCore({
      nodeId: COORD,
      clock: this.clock,
      expectedWorkers: s.workerSpeeds.length,
      modelShape: {
        nLayers: s.nLayers, bytesPerLayer: Array<number>(s.nLayers).fill(MiB), embeddingBytes: MiB / 2, headBytes: MiB / 2,
        kvBytesPerTokenPerLayer: 1024, contextTokens: s.contextLength, maxBatchSequences: s.scheduler.maxActiveSequences,
      },
      vocabSize: s.vocabSize,
      suspectAfterMs: s.suspectAfterMs,
      scheduler: { ...s.scheduler, contextLength: s.contextLength, eogIds: new Set(s.eogIds) },
    });
    this.core.registry.onTransition((e) => {
      const k = `${e.kind}→${e.to}`;
      this.transitions.set(k, (this.transitions.get(k) ?? 0) + 1);
    });
    for (const t of s.tasks) {
      this.tasks.set(t.input.taskId, { task: t, submittedAtMs: null, phaseAtSubmit: null, cancelRequestedAtMs: null, events: [], streamed: [], finishes: 0, finish: null });
    }
  }

  run(): SimOutcome {
    const s = this.scenario;
    this.feed({ type: 'start' });
    for (const w of this.workers) this.at(this.between(s.joinMs), () => this.join(w));
    this.tickLoop();
    this.scheduleAnchored('start');
    const quiet = (): boolean => this.pendingWork === 0 && [...this.tasks.values()].every((t) => t.finish !== null);
    this.loop(quiet, s.horizonMs);
    const hung = this.thrown === undefined && !quiet();
    const finalCaches = this.workers.filter((w) => w.alive && w.stage).map((w) => ({ nodeId: w.id, stageIndex: w.stage!.spec.index, lengths: w.stage!.cacheLengths() }));
    const quietPhase = this.core.phase;
    const quietSystemState = this.core.system.state;
    const quietCoordinatorState = this.core.coordinator.state;
    const suspectAtEnd = this.core.workerList().filter((w) => w.state === 'Suspect').map((w) => w.nodeId);
    const endMs = this.now();
    if (this.thrown === undefined) {
      this.feed({ type: 'shutdown', reason: 'simulation over' });
      this.loop(() => this.pendingWork === 0, this.now() + 10_000);
    }
    return {
      scenario: s, core: this.core, tasks: this.tasks, thrown: this.thrown, hung, endMs, readyAtMs: this.readyAtMs, lostAtMs: this.lostAtMs,
      kills: this.kills, forgets: this.forgets, stageErrors: this.stageErrors, strayEvents: this.strayEvents, finalCaches, quietPhase, quietSystemState, quietCoordinatorState,
      finalSystemState: this.core.system.state, suspectAtEnd, transitions: this.transitions, truncates: this.truncates, forwards: this.forwards,
      stageCount: this.core.plan?.stages.length ?? 0, trace: this.trace,
    };
  }

  // ---- time ----

  private now(): number {
    return this.clock.wallTimeMs();
  }

  private between(r: Range): number {
    return r.min + this.rng.nextFloat() * (r.max - r.min);
  }

  /** `work` events keep the run going; periodic ones (heartbeats, ticks) do not. */
  private at(t: number, run: () => void, work = true): void {
    if (work) this.pendingWork++;
    this.queue.push(t, () => {
      if (work) this.pendingWork--;
      run();
    });
  }

  private loop(done: () => boolean, untilMs: number): void {
    while (!this.stopped && !done()) {
      const ev = this.queue.pop();
      if (!ev || ev.at > untilMs) return;
      this.clock.advance(Math.max(0, ev.at - this.now()));
      ev.run();
    }
  }

  /** FIFO per directed link: a message never overtakes an earlier one on the same link. */
  private send(from: string, to: string, deliver: () => void, work = true): void {
    const key = `${from}>${to}`;
    const t = Math.max(this.now() + this.between(this.scenario.linkMs), this.linkLast.get(key) ?? 0);
    this.linkLast.set(key, t);
    this.at(t, () => {
      if (to !== COORD && !this.byId.get(to)!.alive) return;
      deliver();
    }, work);
  }

  // ---- coordinator ----

  private feed(e: CoreEvent): void {
    if (this.stopped) return;
    let commands: CoreCommand[];
    this.feeding = e;
    try {
      commands = this.core.step(e);
    } catch (err) {
      this.feeding = null;
      this.thrown = err;
      this.stopped = true;
      if (this.opts.trace) this.trace.push(`${this.now().toFixed(3)} ${describeEvent(e)} THREW ${String(err)}`);
      return;
    }
    if (this.opts.trace) this.trace.push(`${this.now().toFixed(3)} ${describeEvent(e)} → ${commands.map(describeCommand).join('; ')}`);
    for (const c of commands) this.exec(c);
    this.feeding = null;
  }

  private exec(c: CoreCommand): void {
    switch (c.type) {
      case 'assign': {
        const w = this.byId.get(c.nodeId)!;
        this.send(COORD, w.id, () => {
          w.stage = new SimStage({ index: c.stageIndex, hasHead: c.range.hasHead, vocabSize: this.scenario.vocabSize, contextLength: this.scenario.contextLength });
          w.next = c.nextHop?.nodeId ?? null;
          this.process(w, this.between(this.scenario.loadMs), () => this.send(w.id, COORD, () => this.feed({ type: 'worker_loaded', nodeId: w.id, planId: c.planId })));
        });
        return;
      }
      case 'forward': {
        this.forwards++;
        this.batchTasks.set(c.batch.batchId, c.batch.rows.map((r) => r.taskId));
        const w = this.byId.get(c.nodeId)!;
        this.send(COORD, w.id, () => this.onForward(w, c.batch));
        return;
      }
      case 'truncate': {
        this.truncates++;
        const w = this.byId.get(c.nodeId)!;
        this.send(COORD, w.id, () => w.stage?.truncate(c.seqId, c.fromPosition));
        return;
      }
      case 'task':
        this.onTaskEvent(c.event);
        return;
      case 'pipeline_ready':
        this.readyAtMs ??= this.now();
        this.scheduleAnchored('ready');
        return;
      case 'pipeline_lost':
        this.lostAtMs ??= this.now();
        this.scheduleAnchored('ready');
        return;
      case 'shutdown_workers':
        for (const w of this.workers) if (w.alive) this.send(COORD, w.id, () => this.leave(w));
        return;
      case 'log':
        if (this.opts.trace) this.trace.push(`    ${c.level}: ${c.message}`);
        return;
    }
  }

  private onTaskEvent(e: TaskEvent): void {
    const r = this.tasks.get(e.taskId);
    if (!r) {
      this.strayEvents.push(e);
      return;
    }
    r.events.push(e);
    if (e.type === 'token') r.streamed.push(e.token);
    if (e.type === 'finished') {
      r.finishes++;
      const refused = this.feeding?.type === 'worker_error' ? this.feeding.batchId : null;
      const inRefusedBatch = refused !== null && (this.batchTasks.get(refused)?.includes(e.taskId) ?? false);
      r.finish ??= { reason: e.reason, seqId: e.seqId, tokens: e.tokens, atMs: this.now(), inRefusedBatch };
    }
  }

  private tickLoop(): void {
    this.at(this.now() + TICK_MS, () => {
      this.feed({ type: 'tick' });
      this.tickLoop();
    }, false);
  }

  /** Tasks and faults anchored at `ready` start counting when the pipeline is ready or lost (whichever first). */
  private scheduleAnchored(anchor: Anchor): void {
    if (anchor === 'ready') {
      if (this.anchored) return;
      this.anchored = true;
    }
    const base = this.now();
    for (const t of this.scenario.tasks) if (t.anchor === anchor) this.at(base + t.atMs, () => this.submit(t));
    for (const f of this.scenario.faults) if (f.anchor === anchor) this.at(base + f.atMs, () => this.inject(f));
  }

  private submit(t: SimTask): void {
    const r = this.tasks.get(t.input.taskId)!;
    r.submittedAtMs = this.now();
    r.phaseAtSubmit = this.core.phase;
    this.feed({ type: 'submit', task: t.input });
    if (t.cancelAfterMs !== null) {
      this.at(this.now() + t.cancelAfterMs, () => {
        r.cancelRequestedAtMs = this.now();
        this.feed({ type: 'cancel', taskId: t.input.taskId });
      });
    }
  }

  // ---- workers ----

  private join(w: SimWorker): void {
    if (!w.alive) return;
    const i = Number(w.id.slice(1));
    const join = {
      memoryBytes: 8 * 2 ** 30, speedBytesPerSecond: this.scenario.workerSpeeds[i]!, threads: 1, hasModelFile: i % 2 === 0,
      modelSha256: null, hostname: `host-${i}`, peerHost: '127.0.0.1', peerPort: 7000 + i,
    };
    this.send(w.id, COORD, () => this.feed({ type: 'worker_joined', nodeId: w.id, join }));
    this.heartbeatLoop(w);
  }

  private heartbeatLoop(w: SimWorker): void {
    this.at(this.now() + HEARTBEAT_MS, () => {
      if (!w.alive) return;
      if (this.now() >= w.stalledUntil) this.send(w.id, COORD, () => this.feed({ type: 'heartbeat', nodeId: w.id }), false);
      this.heartbeatLoop(w);
    }, false);
  }

  /** One job on the worker's single queue: it starts when the worker is free (and not frozen). */
  private process(w: SimWorker, durationMs: number, output: () => void): void {
    const start = Math.max(this.now(), w.busyUntil, w.stalledUntil);
    w.busyUntil = start + durationMs;
    this.emit(w, w.busyUntil, output);
  }

  private emit(w: SimWorker, t: number, output: () => void): void {
    this.at(t, () => {
      if (!w.alive) return;
      // A freeze that began after the job was queued holds its output back too.
      if (w.stalledUntil > this.now()) return this.emit(w, w.stalledUntil, output);
      output();
    });
  }

  private onForward(w: SimWorker, batch: MicroBatch): void {
    const out = w.stage ? w.stage.forward(batch) : ({ ok: false, message: `${w.id} has no loaded stage` } as const);
    if (!out.ok) this.stageErrors.push({ nodeId: w.id, batchId: batch.batchId, message: out.message, atMs: this.now() });
    this.process(w, this.between(this.scenario.computeMs), () => {
      if (!out.ok) {
        this.send(w.id, COORD, () => this.feed({ type: 'worker_error', nodeId: w.id, code: 'forward-failed', message: out.message, batchId: batch.batchId }));
      } else if (out.logits) {
        const logits = out.logits;
        this.send(w.id, COORD, () => this.feed({ type: 'result', nodeId: w.id, batchId: batch.batchId, logits }));
      } else if (w.next) {
        const next = this.byId.get(w.next)!;
        this.send(w.id, next.id, () => this.onForward(next, batch));
      }
    });
  }

  private inject(f: SimFault): void {
    const w = this.workers[f.worker]!;
    if (!w.alive) return;
    if (f.kind === 'kill') {
      w.alive = false;
      const wasStage = this.core.workerList().some((x) => x.nodeId === w.id && x.stageIndex !== null);
      this.kills.push({ nodeId: w.id, atMs: this.now(), wasStage });
      // The coordinator sees the link close after everything the worker had already sent on it.
      this.send(w.id, COORD, () => this.feed({ type: 'worker_gone', nodeId: w.id, reason: 'connection reset', graceful: false }));
    } else if (f.kind === 'forget') {
      if (!w.stage) return;
      w.stage.forget();
      this.forgets.push(this.now());
    } else {
      w.stalledUntil = Math.max(w.stalledUntil, this.now() + f.forMs);
      // Keep the run going until the worker has had time to prove it is alive again.
      this.at(w.stalledUntil + 2 * HEARTBEAT_MS + this.scenario.linkMs.max + TICK_MS, () => {});
    }
  }

  private leave(w: SimWorker): void {
    w.alive = false;
    this.send(w.id, COORD, () => this.feed({ type: 'worker_gone', nodeId: w.id, reason: 'shutdown', graceful: true }));
  }
}

export function runScenario(scenario: Scenario, opts: SimOptions = {}): SimOutcome {
  return new Simulation(scenario, opts).run();
}
