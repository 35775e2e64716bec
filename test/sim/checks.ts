/**
 * What every simulated run must satisfy, as a list of human-readable problems (empty = pass), so a failing seed
 * reports everything wrong with it at once.
 */
import type { TaskEvent } from '../../src/cluster/scheduler.js';
import { Severity } from '../../src/state/index.js';
import { runScenario, type SimOutcome, type TaskRecord } from './harness.js';
import { directTokens } from './model.js';
import type { Scenario, SimTask } from './scenario.js';

/** The task alone on a one-worker cluster, prompt prefilled in one chunk, no faults. */
export function referenceTokens(task: SimTask, s: Scenario): readonly number[] {
  const alone: Scenario = {
    ...s,
    seed: (s.seed * 31 + task.input.promptIds.length) >>> 0,
    workerSpeeds: [1e9],
    scheduler: { maxBatchTokens: 64, prefillChunkTokens: 64, maxActiveSequences: 1 },
    tasks: [{ ...task, anchor: 'ready', atMs: 0, cancelAfterMs: null }],
    faults: [],
  };
  const o = runScenario(alone);
  const r = o.tasks.get(task.input.taskId)!;
  if (o.thrown !== undefined || !r.finish || (r.finish.reason !== 'stop' && r.finish.reason !== 'length')) {
    throw new Error(`reference run of ${task.input.taskId} (seed ${s.seed}) did not complete: ${r.finish?.reason ?? 'unfinished'} ${String(o.thrown ?? '')}`);
  }
  return r.finish.tokens;
}

const same = (a: readonly number[], b: readonly number[]): boolean => a.length === b.length && a.every((x, i) => x === b[i]);
const isPrefix = (a: readonly number[], b: readonly number[]): boolean => a.length <= b.length && a.every((x, i) => x === b[i]);
const show = (xs: readonly number[]): string => `[${xs.join(',')}]`;

export function checkOutcome(o: SimOutcome): string[] {
  const s = o.scenario;
  const p: string[] = [];
  if (o.thrown !== undefined) p.push(`core.step threw: ${o.thrown instanceof Error ? o.thrown.message : String(o.thrown)}`);
  if (o.hung) {
    const open = [...o.tasks.values()].filter((r) => r.finish === null).map((r) => `${r.task.input.taskId}${r.submittedAtMs === null ? ' (never submitted)' : ''}`);
    p.push(`hung at ${o.endMs.toFixed(0)} ms (phase ${o.quietPhase}); unfinished: ${open.join(', ') || 'none (work still pending)'}`);
  }
  for (const e of o.strayEvents) p.push(`event for a task nobody submitted: ${e.type} ${e.taskId}`);
  for (const v of o.core.invariants.violations()) {
    if (Severity.atLeast(v.severity, 'High')) p.push(`invariant ${v.invariant} (${v.severity}) at ${v.atWallMs.toFixed(0)} ms: ${v.detail}`);
  }
  const left = o.core.registry.list('Task').map((m) => `${m.id}:${m.state}`);
  if (left.length > 0) p.push(`Task machines left in the registry: ${left.join(', ')}`);

  const stageDeaths = o.kills.filter((k) => k.wasStage).map((k) => k.atMs);
  const stageDeathAt = stageDeaths.length > 0 ? Math.min(...stageDeaths) : null;
  for (const r of o.tasks.values()) p.push(...checkTask(r, o, stageDeathAt));

  if (o.thrown === undefined && !o.hung) {
    if (stageDeathAt !== null && o.readyAtMs !== null) {
      if (o.quietPhase !== 'lost') p.push(`a stage died but the phase is ${o.quietPhase}`);
      if (o.quietSystemState !== 'Degraded') p.push(`a stage died but System is ${o.quietSystemState}`);
    }
    if (stageDeathAt === null) {
      if (o.stageErrors.length > 0 && o.forgets.length === 0) p.push(`stages refused batches with no fault injected: ${o.stageErrors.map((e) => `${e.nodeId} batch ${e.batchId}: ${e.message}`).join('; ')}`);
      if (o.suspectAtEnd.length > 0) p.push(`workers still Suspect after heartbeats resumed: ${o.suspectAtEnd.join(', ')}`);
      if (o.readyAtMs !== null && (o.quietSystemState !== 'Ready' || o.quietCoordinatorState !== 'Monitoring')) {
        p.push(`idle and healthy, yet System is ${o.quietSystemState} and Coordinator ${o.quietCoordinatorState}`);
      }
    }
    // Finished sequences are truncated on the first stage, so a quiet serving cluster holds no KV there; later stages
    // keep a finished slot's cache until its next task restarts it at position 0, so they hold one per slot at most.
    if (o.quietPhase === 'serving') {
      for (const c of o.finalCaches) {
        const held = [...c.lengths].filter(([, len]) => len > 0);
        if (c.stageIndex === 0 && held.length > 0) p.push(`first stage ${c.nodeId} still caches ${held.map(([seq, len]) => `seq ${seq}×${len}`).join(', ')} after every task finished`);
        const stray = [...c.lengths.keys()].filter((seq) => seq < 0 || seq >= s.scheduler.maxActiveSequences);
        if (stray.length > 0) p.push(`${c.nodeId} caches sequences ${stray.join(', ')} outside the ${s.scheduler.maxActiveSequences} slots`);
      }
    }
    if (o.finalSystemState !== 'Terminated') p.push(`after shutdown System is ${o.finalSystemState}, not Terminated`);
  }
  return p;
}

function checkTask(r: TaskRecord, o: SimOutcome, stageDeathAt: number | null): string[] {
  const s = o.scenario;
  const id = r.task.input.taskId;
  const p: string[] = [];
  if (r.submittedAtMs === null || r.finish === null) return p; // reported as a hang
  if (r.finishes !== 1) p.push(`${id} finished ${r.finishes} times`);
  const last = r.events[r.events.length - 1] as TaskEvent;
  if (last.type !== 'finished') p.push(`${id} had a ${last.type} event after finishing`);
  r.events.filter((e) => e.type === 'token').forEach((e, i) => {
    if (e.type === 'token' && e.index !== i) p.push(`${id} token #${i} carries index ${e.index}`);
  });
  if (!same(r.streamed, r.finish.tokens)) p.push(`${id} streamed ${show(r.streamed)} but finished with ${show(r.finish.tokens)}`);
  const input = r.task.input;
  const overlong = input.promptIds.length >= s.contextLength;
  const limits = { vocabSize: s.vocabSize, contextLength: s.contextLength, eogIds: new Set(s.eogIds) };
  const tokens = r.finish.tokens;
  switch (r.finish.reason) {
    case 'stop':
    case 'length': {
      const alone = referenceTokens(r.task, s);
      if (!same(tokens, alone)) p.push(`${id} produced ${show(tokens)} but alone it produces ${show(alone)}`);
      const direct = directTokens(input, limits);
      if (!same(alone, direct)) p.push(`${id}: the one-worker reference ${show(alone)} disagrees with the model ${show(direct)}`);
      break;
    }
    case 'cancelled':
      if (r.cancelRequestedAtMs === null) p.push(`${id} was cancelled but nobody asked`);
      if (!isPrefix(tokens, directTokens(input, limits))) p.push(`${id} (cancelled) produced ${show(tokens)}, not a prefix of its output`);
      break;
    case 'error': {
      // Explained by a stage death before the failure, or by being in a batch a stage refused after losing its KV
      // (the refusal covers the whole batch, so batch mates of a broken sequence fail with it — by design).
      const end = r.finish.atMs;
      const explained = overlong || r.phaseAtSubmit !== 'serving' || (stageDeathAt !== null && stageDeathAt <= end) ||
        (r.finish.inRefusedBatch && o.forgets.some((at) => at <= end));
      if (!explained) p.push(`${id} failed with no cause (prompt ${input.promptIds.length}, submitted while ${r.phaseAtSubmit})`);
      if (!overlong && !isPrefix(tokens, directTokens(input, limits))) p.push(`${id} (failed) produced ${show(tokens)}, not a prefix of its output`);
      break;
    }
  }
  if (overlong && r.finish.reason !== 'error') p.push(`${id} has a ${input.promptIds.length}-token prompt (context ${s.contextLength}) but ended ${r.finish.reason}`);
  return p;
}
