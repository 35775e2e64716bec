import { it } from 'vitest';
import { runScenario } from './sim/harness.js';
import { checkOutcome } from './sim/checks.js';
import { randomScenario } from './sim/scenario.js';

it('explore', () => {
  const n = Number(process.env.N ?? 200);
  const t0 = performance.now();
  const counts = new Map<string, number>();
  let shown = 0;
  const stages = new Map<number, number>();
  for (let seed = 1; seed <= n; seed++) {
    const o = runScenario(randomScenario(seed));
    stages.set(o.stageCount, (stages.get(o.stageCount) ?? 0) + 1);
    const p = checkOutcome(o);
    for (const x of p) {
      const k = x.replace(/[0-9]+/g, '#').slice(0, 80);
      counts.set(k, (counts.get(k) ?? 0) + 1);
    }
    if (p.length && shown < 5) { shown++; console.log(seed, p.slice(0, 4)); }
  }
  console.log(`${n} in ${(performance.now() - t0).toFixed(0)} ms`, stages, [...counts].sort((a, b) => b[1] - a[1]).slice(0, 30));
});
