import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { Command } from 'commander';
import { registerPlan, workersArg } from '../src/cli/plan.js';
import { reportError, UsageError } from '../src/cli/errors.js';
import { SYNTH_PRESETS, writeSyntheticModel } from '../src/engine/synth.js';

let dir: string;
let model: string;

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'butterfly-plan-'));
  model = join(dir, 'small.gguf');
  // small: 6 layers, so a split over several workers has something to balance.
  writeSyntheticModel(model, { shape: SYNTH_PRESETS.small, seed: 3, type: 'q8_0', tied: false });
});

afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
});

async function plan(...args: string[]): Promise<string> {
  let out = '';
  const program = new Command().exitOverride().configureOutput({ writeErr: () => {}, writeOut: () => {} });
  registerPlan(program, (t) => {
    out += t;
  });
  await program.parseAsync(['plan', ...args], { from: 'user' });
  return out;
}

/** The layer ranges of the table's stage rows, as [first, last] inclusive. */
function stageRanges(text: string): Array<[number, number]> {
  return [...text.matchAll(/^\d+\s+\S+\s+(\d+)(?:–(\d+))? \(\d+\)/gm)].map((m) => [Number(m[1]), Number(m[2] ?? m[1])]);
}

describe('butterfly plan', () => {
  it('prints stages that cover every layer once, in order', async () => {
    const text = await plan('--model', model, '--workers', 'a=1GiB@25GB/s,b=1GiB@12GB/s,c=1GiB@25GB/s');
    expect(text).toContain(`Model: ${model} — 6 layers`);
    expect(text).toMatch(/Plan: 6 layers on 3 workers \(objective: throughput\)/);
    const ranges = stageRanges(text);
    expect(ranges).toHaveLength(3);
    expect(ranges[0]![0]).toBe(0);
    expect(ranges.at(-1)![1]).toBe(5);
    for (let i = 1; i < ranges.length; i++) expect(ranges[i]![0]).toBe(ranges[i - 1]![1] + 1);
    expect(text).toMatch(/embedding/);
    expect(text).toMatch(/head/);
  });

  it('accepts a bare worker count, the latency objective, and context/sequences', async () => {
    const text = await plan('--model', model, '--workers', '2', '--objective', 'latency', '--context', '256', '--sequences', '2');
    expect(text).toMatch(/objective: latency/);
    expect(text).toMatch(/context 256 × 2 sequences/);
    const ranges = stageRanges(text);
    expect(ranges[0]![0]).toBe(0);
    expect(ranges.at(-1)![1]).toBe(5);
  });

  it('refuses when the memory is too small, saying what the model needs and what the cluster offers', async () => {
    const err = await plan('--model', model, '--workers', 'a=2MiB@25GB/s,b=2MiB@25GB/s').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(UsageError);
    expect((err as Error).message).toMatch(/^cannot plan .*small\.gguf: the model needs \d+\.\d MiB, the cluster offers 4\.0 MiB \(weights /);
    // main() reports it as one line on stderr with exit code 1.
    const spy = vi.spyOn(process.stderr, 'write').mockImplementation(() => true);
    try {
      expect(reportError(err)).toBe(1);
      expect(String(spy.mock.calls[0]![0])).toMatch(/^butterfly: cannot plan .*needs .* the cluster offers .*\n$/);
    } finally {
      spy.mockRestore();
    }
  });

  it('refuses unreadable worker specs and objectives as usage errors', async () => {
    await expect(plan('--model', model, '--workers', 'a=lots@fast')).rejects.toThrow(/cannot read/);
    await expect(plan('--model', model, '--workers', '1', '--objective', 'speed')).rejects.toThrow(/throughput or latency/);
    await expect(plan('--workers', '1')).rejects.toThrow(/--model/);
  });
});

describe('workersArg', () => {
  it('splits 80% of the machine\'s memory evenly for a bare count', () => {
    expect(workersArg('4', 10 * 2 ** 30)).toEqual(
      ['w1', 'w2', 'w3', 'w4'].map((id) => ({ id, memoryBytes: Math.floor((10 * 2 ** 30 * 0.8) / 4), speed: 25e9 })),
    );
    expect(workersArg('a=8GiB@25GB/s')).toEqual([{ id: 'a', memoryBytes: 8 * 2 ** 30, speed: 25e9 }]);
    expect(() => workersArg('0')).toThrow(/between 1 and 256/);
  });
});
