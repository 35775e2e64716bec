/**
 * Whole-cluster simulation: thousands of seeded scenarios — random worker counts and speeds (so random pipeline
 * depths), scheduler limits, latencies, task mixes, cancellations, over-long prompts, stalls and deaths — each run
 * against the real CoordinatorCore and checked by test/sim/checks.ts. Completed tasks must match the same task run
 * alone on one worker, token for token. Replay one scenario with SIM_SEED=<n> (SIM_TRACE=1 prints its trace).
 */
import { describe, expect, it } from 'vitest';
import { checkOutcome } from './sim/checks.js';
import { runScenario, type SimOutcome } from './sim/harness.js';
import { DEFAULT_KNOBS, randomScenario, type Scenario, type SimFault } from './sim/scenario.js';

const SEEDS = 2000;

function seedsToRun(count: number, offset = 0): number[] {
  const one = process.env.SIM_SEED;
  if (one !== undefined) return [Number(one)];
  return Array.from({ length: count }, (_, i) => offset + i + 1);
}

function run(s: Scenario): { outcome: SimOutcome; problems: string[] } {
  const outcome = runScenario(s, { trace: process.env.SIM_TRACE === '1' });
  if (process.env.SIM_TRACE === '1') console.log(outcome.trace.filter((l) => !/ (heartbeat w\d+|tick) → $/.test(l)).join('\n'));
  return { outcome, problems: checkOutcome(outcome) };
}

const failureReport = (fails: { seed: number; problems: string[] }[]): string =>
  fails.map((f) => `seed ${f.seed} (replay: SIM_SEED=${f.seed} npx vitest run test/sim-cluster.test.ts):\n  ${f.problems.slice(0, 8).join('\n  ')}`).join('\n');

class Tally {
  readonly counts = new Map<string, number>();
  add(key: string, n = 1): void {
    this.counts.set(key, (this.counts.get(key) ?? 0) + n);
  }
  get(key: string): number {
    return this.counts.get(key) ?? 0;
  }
}

describe('whole-cluster simulation', () => {
  it(`${SEEDS} random scenarios: exact tokens, every task finishes once, machines stay legal and clean`, () => {
    const seeds = seedsToRun(SEEDS);
    const fails: { seed: number; problems: string[] }[] = [];
    const tally = new Tally();
    const started = performance.now();
    for (const seed of seeds) {
      const { outcome, problems } = run(randomScenario(seed));
      if (problems.length > 0) fails.push({ seed, problems });
      tally.add(`stages=${outcome.stageCount}`);
      for (const r of outcome.tasks.values()) tally.add(`task:${r.finish?.reason ?? 'unfinished'}`);
      for (const [k, n] of outcome.transitions) tally.add(k, n);
      if (outcome.kills.some((k) => k.wasStage) && outcome.readyAtMs !== null) tally.add('stage deaths while serving');
      tally.add('batches refused', outcome.stageErrors.length);
      tally.add('forwards', outcome.forwards);
      if (fails.length >= 5) break;
    }
    const ms = performance.now() - started;
    const c = tally.counts;
    console.log(
      `sim: ${seeds.length} scenarios in ${ms.toFixed(0)} ms = ${((seeds.length * 1000) / ms).toFixed(0)} scenarios/s ` +
        `(incl. one single-worker reference run per completed task); pipeline depths ${[1, 2, 3, 4, 5].map((d) => `${d}:${c.get(`stages=${d}`) ?? 0}`).join(' ')}; ` +
        `tasks stop ${tally.get('task:stop')}, length ${tally.get('task:length')}, cancelled ${tally.get('task:cancelled')}, error ${tally.get('task:error')}; ` +
        `${tally.get('forwards')} micro-batches; Worker→Suspect ${tally.get('Worker→Suspect')}, System→Degraded ${tally.get('System→Degraded')}, stage deaths while serving ${tally.get('stage deaths while serving')}, batches refused after KV loss ${tally.get('batches refused')}`,
    );
    expect(fails, failureReport(fails)).toEqual([]);
    if (seeds.length === SEEDS) {
      // The mix must keep exercising what it claims to, or a passing run proves little.
      for (const d of [1, 2, 3, 4, 5]) expect(tally.get(`stages=${d}`), `pipelines of depth ${d}`).toBeGreaterThan(100);
      expect(tally.get('task:stop')).toBeGreaterThan(1000);
      expect(tally.get('task:length')).toBeGreaterThan(1000);
      expect(tally.get('task:cancelled')).toBeGreaterThan(100);
      expect(tally.get('task:error')).toBeGreaterThan(100);
      expect(tally.get('Worker→Suspect')).toBeGreaterThan(50);
      expect(tally.get('System→Degraded')).toBeGreaterThan(100);
      expect(tally.get('stage deaths while serving')).toBeGreaterThan(100);
      expect(tally.get('batches refused')).toBeGreaterThan(50);
    }
  });

  it('a stage dying mid-generation fails its in-flight tasks, loses the pipeline, degrades the System, and nothing hangs', () => {
    const fails: { seed: number; problems: string[] }[] = [];
    let deaths = 0;
    for (const seed of seedsToRun(200, 100_000)) {
      const base = randomScenario(seed, { ...DEFAULT_KNOBS, killRate: 0, stallRate: 0, cancelRate: 0, overlongRate: 0, maxWorkers: 4 });
      const kill: SimFault = { kind: 'kill', worker: seed % base.workerSpeeds.length, anchor: 'ready', atMs: 20 + (seed % 7) * 15 };
      // Long generations that start at once, so work is in flight when the worker dies; one task arrives afterwards.
      const tasks = base.tasks.map((t, i) => ({
        ...t,
        anchor: 'ready' as const,
        atMs: i === 0 ? 2000 : (i * 7) % 20,
        input: { ...t.input, maxTokens: 20, ignoreEos: true, promptIds: t.input.promptIds.slice(0, Math.min(t.input.promptIds.length, base.contextLength - 21)) },
      }));
      const { outcome: o, problems } = run({ ...base, tasks, faults: [kill] });
      if (!o.kills[0]?.wasStage) continue; // the planner left that worker out: nothing to lose
      deaths++;
      const lost = o.lostAtMs;
      if (lost === null) problems.push('no pipeline_lost after a stage died');
      if (o.quietPhase !== 'lost' || o.quietSystemState !== 'Degraded') problems.push(`phase ${o.quietPhase}, System ${o.quietSystemState}`);
      for (const r of o.tasks.values()) {
        if (!r.finish || r.submittedAtMs === null || lost === null) continue;
        const runningAtLoss = r.submittedAtMs <= lost && r.finish.atMs >= lost;
        if ((runningAtLoss || r.submittedAtMs > lost) && r.finish.reason !== 'error') problems.push(`${r.task.input.taskId} was running at the loss but ended ${r.finish.reason}`);
        if (runningAtLoss && r.finish.atMs !== lost) problems.push(`${r.task.input.taskId} failed at ${r.finish.atMs}, not when the stage was lost (${lost})`);
      }
      if (problems.length > 0) fails.push({ seed, problems });
    }
    expect(fails, failureReport(fails)).toEqual([]);
    if (process.env.SIM_SEED === undefined) expect(deaths).toBeGreaterThan(150);
  });

  it('a frozen stage turns Suspect and the System Degraded; both recover and every task still completes exactly', () => {
    const fails: { seed: number; problems: string[] }[] = [];
    for (const seed of seedsToRun(200, 200_000)) {
      const base = randomScenario(seed, { ...DEFAULT_KNOBS, killRate: 0, stallRate: 0, cancelRate: 0, overlongRate: 0 });
      const stall: SimFault = { kind: 'stall', worker: seed % base.workerSpeeds.length, anchor: seed % 4 === 0 ? 'start' : 'ready', atMs: seed % 4 === 0 ? 150 : 30, forMs: 1800 };
      const tasks = base.tasks.map((t) => ({ ...t, anchor: 'ready' as const, atMs: t.atMs / 10 }));
      const { outcome: o, problems } = run({ ...base, tasks, faults: [stall] });
      if ((o.transitions.get('Worker→Suspect') ?? 0) === 0) problems.push('the frozen worker never became Suspect');
      for (const r of o.tasks.values()) if (r.finish?.reason !== 'stop' && r.finish?.reason !== 'length') problems.push(`${r.task.input.taskId} ended ${r.finish?.reason ?? 'never'}`);
      if (o.quietSystemState !== 'Ready') problems.push(`System is ${o.quietSystemState} once all is done`);
      if (problems.length > 0) fails.push({ seed, problems });
    }
    expect(fails, failureReport(fails)).toEqual([]);
  });

  it('is deterministic: the same seed replays the same run, event for event', () => {
    for (const seed of [7, 1234, 99_999]) {
      const s = randomScenario(seed);
      const a = runScenario(s, { trace: true });
      const b = runScenario(s, { trace: true });
      expect(b.trace).toEqual(a.trace);
      expect(a.trace.length).toBeGreaterThan(10);
      expect([...b.tasks.values()].map((r) => r.finish)).toEqual([...a.tasks.values()].map((r) => r.finish));
    }
  });
});
