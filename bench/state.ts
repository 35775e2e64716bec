/**
 * Transition latency of the state-machine spine: Task machines driven through their lifecycle with a 100-record
 * history and one invariant (SingleCoordinator) checked on every transition through a registry, as the cluster
 * will run them. Prints p50/p99 in µs. Target: p99 < 5 µs (the seed's: < 100 µs).
 *
 *   npm run build && npm run bench:state        (or: node dist/bench/state.js [--tasks N])
 */
import {
  InvariantMonitor,
  MachineRegistry,
  Trigger,
  createConnectionMachine,
  createTaskMachine,
  singleCoordinator,
  type ClusterView,
  type TaskContext,
  type TaskState,
} from '../src/state/index.js';

const TARGET_P99_US = 5;

function arg(name: string, fallback: number): number {
  const i = process.argv.indexOf(name);
  const v = i >= 0 ? Number(process.argv[i + 1]) : NaN;
  return Number.isFinite(v) && v > 0 ? v : fallback;
}

function percentile(sortedUs: Float64Array, p: number): number {
  return sortedUs[Math.min(sortedUs.length - 1, Math.floor((p / 100) * sortedUs.length))] as number;
}

const view: ClusterView = {
  systemState: 'Computing',
  epoch: 1,
  quorumSize: 2,
  coordinators: [
    { id: 'c0', state: 'Coordinating' },
    { id: 'c1', state: 'Standby' },
  ],
  workers: [
    { id: 'w0', state: 'Computing', epoch: 1 },
    { id: 'w1', state: 'Computing', epoch: 1 },
  ],
  layerCount: 12,
  assignment: [
    { workerId: 'w0', layerStart: 0, layerEnd: 6 },
    { workerId: 'w1', layerStart: 6, layerEnd: 12 },
  ],
  commits: [],
  checkpoints: [],
  results: [],
};

// One request's lifecycle; contexts are built once, as a caller holding them would.
const STEPS: readonly { to: TaskState; trigger: Trigger; ctx?: TaskContext }[] = [
  { to: 'Scheduled', trigger: Trigger.Event('coordinator_accepts'), ctx: { epoch: 1 } },
  { to: 'Dispatched', trigger: Trigger.Event('assignment_created') },
  { to: 'Executing', trigger: Trigger.Event('stages_acknowledged'), ctx: { acks: 2, requiredAcks: 2 } },
  { to: 'Completed', trigger: Trigger.Event('generation_finished'), ctx: { verifyReplicas: false } },
];

interface RunResult {
  readonly transitionUs: Float64Array;
  readonly createUs: Float64Array;
  readonly violations: number;
}

function run(tasks: number, withInvariant: boolean): RunResult {
  const registry = new MachineRegistry();
  const monitor = new InvariantMonitor<ClusterView>({ view: () => view });
  if (withInvariant) {
    monitor.add(singleCoordinator);
    monitor.attach(registry);
  }
  const transitionUs = new Float64Array(tasks * STEPS.length);
  const createUs = new Float64Array(tasks);
  let n = 0;
  for (let t = 0; t < tasks; t++) {
    const c0 = process.hrtime.bigint();
    const task = registry.add(createTaskMachine(`task-${t}`));
    createUs[t] = Number(process.hrtime.bigint() - c0) / 1000;
    for (const step of STEPS) {
      const s = process.hrtime.bigint();
      task.transition(step.to, step.trigger, step.ctx);
      transitionUs[n++] = Number(process.hrtime.bigint() - s) / 1000;
    }
    registry.remove('Task', task.id);
  }
  return { transitionUs, createUs, violations: monitor.violations().length };
}

/** A long-lived machine whose 100-record history wraps many times (a connection flapping Active ↔ Idle). */
function runLongLived(transitions: number): Float64Array {
  const registry = new MachineRegistry();
  const monitor = new InvariantMonitor<ClusterView>({ view: () => view });
  monitor.add(singleCoordinator);
  monitor.attach(registry);
  const conn = registry.add(createConnectionMachine('w0->w1'));
  conn.transition('Established', Trigger.Event('handshake_complete'));
  conn.transition('Active', Trigger.Event('data_flowing'));
  const idle = Trigger.Timeout(30_000);
  const resumed = Trigger.Event('activity_resumed');
  const us = new Float64Array(transitions);
  for (let i = 0; i < transitions; i++) {
    const s = process.hrtime.bigint();
    if (conn.state === 'Active') conn.transition('Idle', idle);
    else conn.transition('Active', resumed);
    us[i] = Number(process.hrtime.bigint() - s) / 1000;
  }
  if (conn.history().length !== 100) throw new Error('history did not stay bounded');
  return us;
}

function timerOverheadUs(samples: number): number {
  const us = new Float64Array(samples);
  for (let i = 0; i < samples; i++) {
    const s = process.hrtime.bigint();
    us[i] = Number(process.hrtime.bigint() - s) / 1000;
  }
  us.sort();
  return percentile(us, 50);
}

function summarize(label: string, us: Float64Array): { p50: number; p99: number } {
  const sorted = us.slice().sort();
  const p50 = percentile(sorted, 50);
  const p99 = percentile(sorted, 99);
  const p999 = percentile(sorted, 99.9);
  let sum = 0;
  for (const v of sorted) sum += v;
  console.log(
    `${label.padEnd(44)} p50 ${p50.toFixed(2)} µs  p99 ${p99.toFixed(2)} µs  p99.9 ${p999.toFixed(2)} µs  ` +
      `mean ${(sum / sorted.length).toFixed(2)} µs  (n=${sorted.length})`,
  );
  return { p50, p99 };
}

const tasks = arg('--tasks', 50_000);
run(5_000, true); // warm-up: let the JIT settle before measuring
run(5_000, false);
runLongLived(20_000);
const withInv = run(tasks, true);
const without = run(tasks, false);
const longLived = runLongLived(tasks * STEPS.length);

console.log(`butterfly state bench — ${tasks} Task machines × ${STEPS.length} transitions, history 100, node ${process.version}`);
console.log(`timer overhead (hrtime pair, included below)      p50 ${timerOverheadUs(100_000).toFixed(2)} µs`);
const main = summarize('transition, history + 1 invariant (registry)', withInv.transitionUs);
summarize('transition, history only (registry)', without.transitionUs);
summarize('long-lived, history wrapping + 1 invariant', longLived);
summarize('create Task machine + registry.add', withInv.createUs);
if (withInv.violations !== 0) throw new Error(`unexpected invariant violations: ${withInv.violations}`);
const ok = main.p99 < TARGET_P99_US;
console.log(`p99 ${main.p99.toFixed(2)} µs vs target ${TARGET_P99_US} µs: ${ok ? 'PASS' : 'FAIL'}`);
if (!ok) process.exitCode = 1;
