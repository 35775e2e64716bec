/**
 * Sampling cost per token on the last stage, by vocabulary size and sampler settings, against greedy (argmax) in the
 * same process:  node dist/bench/sampler.js [--vocab 32000,128256]
 * Logits are seeded Gaussians × 3 (peaked like a model's); a flatter distribution makes top-p walk further.
 */
import { DEFAULT_SAMPLER, Sampler, type SamplerParams } from '../src/engine/sampler.js';
import { SplitMix32 } from '../src/engine/prng.js';
import { arg } from './cli.js';

if (process.argv.includes('--help')) {
  process.stdout.write('usage: node dist/bench/sampler.js [--vocab 32000,128256]\n');
  process.exit(0);
}

const SETTINGS: Record<string, SamplerParams> = {
  greedy: { ...DEFAULT_SAMPLER, temperature: 0 },
  'CLI default (T 0.8, top-k 40, top-p 0.95, min-p 0.05)': DEFAULT_SAMPLER,
  'API default (T 1, no cut)': { ...DEFAULT_SAMPLER, temperature: 1, topK: 0, topP: 1, minP: 0 },
  'T 1, top-p 0.9': { ...DEFAULT_SAMPLER, temperature: 1, topK: 0, topP: 0.9, minP: 0 },
};

function msPerToken(s: Sampler, logits: Float32Array): number {
  for (let i = 0; i < 100; i++) s.sample(logits); // past the JIT tiers
  const times: number[] = [];
  for (let i = 0; i < 30; i++) {
    const t = performance.now();
    s.sample(logits);
    times.push(performance.now() - t);
  }
  return times.sort((a, b) => a - b)[15]!;
}

console.log('| vocab | sampler | ms per token (median of 30) | ÷ greedy |');
console.log('|---|---|---|---|');
for (const vocab of arg('vocab', '32000,128256').split(',').map(Number)) {
  const rng = new SplitMix32(vocab);
  const logits = new Float32Array(vocab);
  for (let i = 0; i < vocab; i++) logits[i] = rng.nextGaussian() * 3;
  let greedyMs = 0;
  for (const [name, params] of Object.entries(SETTINGS)) {
    const ms = msPerToken(new Sampler(params), logits);
    if (name === 'greedy') greedyMs = ms;
    console.log(`| ${vocab} | ${name} | ${ms.toFixed(3)} | ${(ms / greedyMs).toFixed(1)}× |`);
  }
}
