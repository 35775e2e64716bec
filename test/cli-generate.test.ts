/** The `butterfly generate` and `model synth` contracts, through the real CLI (requires the build). */
import { execFile } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';
import { ModelDir } from './helpers/models.js';

const run = promisify(execFile);
const BIN = join(import.meta.dirname, '..', 'bin', 'butterfly.js');
const models = new ModelDir();
afterAll(() => models.cleanup());

async function cli(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await run(process.execPath, [BIN, ...args], { timeout: 60_000 });
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

describe('butterfly model synth + generate', () => {
  const path = join(models.dir, 'tiny-q4k.gguf');

  it('synthesizes a model and generates with the JSON contract', async () => {
    const synth = await cli(['model', 'synth', '--out', path, '--preset', 'tiny', '--type', 'q4_k', '--seed', '3']);
    expect(synth.code).toBe(0);
    const r = await cli(['generate', '--model', path, '--prompt', 'Hello there', '--max-tokens', '8', '--temperature', '0', '--top-logprobs', '3', '--json']);
    expect(r.code).toBe(0);
    const out = JSON.parse(r.stdout) as Record<string, unknown> & { tokens: number[]; top_logprobs: Array<Array<{ id: number; logprob: number }>>; timings: Record<string, number> };
    expect(Object.keys(out)).toEqual(expect.arrayContaining(['tokens', 'text', 'top_logprobs', 'timings']));
    expect(out.tokens.length).toBeGreaterThan(0);
    expect(out.top_logprobs.length).toBe(out.tokens.length);
    for (const [i, step] of out.top_logprobs.entries()) {
      expect(step.length).toBe(3);
      expect(step[0]!.id).toBe(out.tokens[i]); // greedy picks the most likely token
      expect(step[0]!.logprob).toBeGreaterThanOrEqual(step[1]!.logprob);
      expect(step[0]!.logprob).toBeLessThanOrEqual(0);
    }
    for (const k of ['load_ms', 'prompt_tokens', 'prompt_ms', 'prompt_tokens_per_s', 'decode_tokens', 'decode_ms', 'decode_tokens_per_s']) {
      expect(typeof out.timings[k]).toBe('number');
    }
  });

  it('is deterministic: same seed, same tokens; --prompt-ids feeds ids as given', async () => {
    const args = ['generate', '--model', path, '--prompt-ids', '1,50,60,70', '--max-tokens', '12', '--temperature', '0.9', '--seed', '7', '--json'];
    const a = JSON.parse((await cli(args)).stdout) as { tokens: number[] };
    const b = JSON.parse((await cli([...args, '--threads', '1'])).stdout) as { tokens: number[] };
    expect(b.tokens).toEqual(a.tokens);
    const c = JSON.parse((await cli([...args.slice(0, -3), '--seed', '8', '--json'])).stdout) as { tokens: number[] };
    expect(c.tokens).not.toEqual(a.tokens);
  });

  it('streams text without --json', async () => {
    const r = await cli(['generate', '--model', path, '--prompt', 'Hi', '--max-tokens', '5', '--temperature', '0']);
    expect(r.code).toBe(0);
    expect(r.stderr).toMatch(/decode \d+ tok/);
  });

  it('a truncated or corrupt model file exits 2 with one line naming the file and the key or tensor', async () => {
    const bytes = readFileSync(path);
    const truncated = join(models.dir, 'truncated.gguf');
    writeFileSync(truncated, bytes.subarray(0, Math.floor(bytes.length * 0.9)));
    const r1 = await cli(['generate', '--model', truncated, '--prompt', 'x']);
    expect(r1.code).toBe(2);
    expect(r1.stderr.trim().split('\n')).toHaveLength(1);
    expect(r1.stderr).toMatch(/truncated\.gguf: tensor '[^']+'/);
    const corrupt = join(models.dir, 'corrupt.gguf');
    const c = Buffer.from(bytes);
    c.write('GGUX', 0);
    writeFileSync(corrupt, c);
    const r2 = await cli(['generate', '--model', corrupt, '--prompt', 'x']);
    expect(r2.code).toBe(2);
    expect(r2.stderr).toMatch(/corrupt\.gguf/);
    const missing = await cli(['generate', '--model', join(models.dir, 'nope.gguf'), '--prompt', 'x']);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toMatch(/nope\.gguf/);
  });

  it('usage errors are clear and exit 1', async () => {
    const r = await cli(['generate', '--model', path]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/--prompt/);
    const bad = await cli(['generate', '--model', path, '--prompt', 'x', '--temperature', 'hot']);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/--temperature/);
    const long = await cli(['generate', '--model', path, '--prompt-ids', Array(600).fill(5).join(','), '--max-tokens', '2']);
    expect(long.code).toBe(1);
    expect(long.stderr).toMatch(/context/);
  });
});
