import { it } from 'vitest';
import { runScenario } from './sim/harness.js';
import { checkOutcome } from './sim/checks.js';
import { randomScenario } from './sim/scenario.js';

it('one', () => {
  const seed = Number(process.env.SEED);
  const sc = randomScenario(seed);
  const o = runScenario(sc, { trace: true });
  console.log(JSON.stringify({ ...sc, tasks: sc.tasks.map((t) => ({ id: t.input.taskId, p: t.input.promptIds.length, max: t.input.maxTokens, at: t.atMs, anchor: t.anchor, cancel: t.cancelAfterMs })) }));
  console.log(o.trace.filter((l) => !/heartbeat|^[0-9.]+ tick → $/.test(l)).join('\n'));
  console.log(checkOutcome(o));
});
