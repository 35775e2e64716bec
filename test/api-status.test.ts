import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Command } from 'commander';
import { startApiServer, type ApiServer } from '../src/api/server.js';
import { UsageError } from '../src/cli/errors.js';
import { registerStatus } from '../src/cli/status.js';
import { FakeService } from './helpers/api-fake-service.js';

let fake: FakeService;
let server: ApiServer;

beforeEach(async () => {
  fake = new FakeService();
  server = await startApiServer(fake, { host: '127.0.0.1', port: 0 });
});

afterEach(async () => {
  await server.close();
});

async function status(...args: string[]): Promise<string> {
  let out = '';
  const program = new Command().exitOverride().configureOutput({ writeErr: () => {}, writeOut: () => {} });
  registerStatus(program, (t) => {
    out += t;
  });
  await program.parseAsync(['status', ...args], { from: 'user' });
  return out;
}

describe('butterfly status', () => {
  it('prints the model, states, one row per worker, and task counts', async () => {
    const text = await status('--url', server.url);
    expect(text).toContain('Model:        fake-llama (2 layers, vocab 400, context 64) — /models/fake.gguf');
    expect(text).toContain('Coordinator:  Serving (phase: serving)');
    expect(text).toMatch(/^node\s+state\s+stage\s+layers\s+memory\s+speed\s+host$/m);
    expect(text).toMatch(/^w1\s+Serving\s+1\s+\[0, 1\)\s+1\.0 GiB\s+25\.0 GB\/s\s+alpha$/m);
    expect(text).toMatch(/^w2\s+Serving\s+2\s+\[1, 2\)\s+512\.0 MiB\s+12\.0 GB\/s\s+beta$/m);
    expect(text).toContain('Tasks:        0 active, 0 queued');
  });

  it('lists workers in pipeline order, unassigned ones last', async () => {
    const base = fake.status();
    const [w1, w2] = base.workers;
    fake.status = () => ({ ...base, workers: [{ ...w1!, nodeId: 'spare', stageIndex: null, firstLayer: null, lastLayer: null }, w2!, w1!] });
    const rows = (await status('--url', server.url)).split('\n').filter((l) => /^(w\d|spare)\s/.test(l));
    expect(rows.map((r) => r.split(/\s+/)[0])).toEqual(['w1', 'w2', 'spare']);
    expect(rows[2]).toMatch(/^spare\s+Serving\s+—\s+—\s/);
  });

  it('prints the raw status with --json', async () => {
    expect(JSON.parse(await status('--url', server.url, '--json'))).toEqual(JSON.parse(JSON.stringify(fake.status())));
  });

  it('fails with one clear line when the coordinator cannot be reached', async () => {
    const url = server.url;
    await server.close();
    const err = await status('--url', url).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(UsageError);
    expect((err as Error).message).toBe(`cannot reach the coordinator at ${url}: ECONNREFUSED`);
    await expect(status('--url', 'not a url')).rejects.toThrow(/is not a URL/);
  });

  it('says so when the URL answers but is not a coordinator', async () => {
    fake.status = () => ({ nope: true }) as never;
    await expect(status('--url', server.url)).rejects.toThrow(/not a cluster status/);
  });
});
