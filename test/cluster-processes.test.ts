/**
 * The cluster on real processes and real sockets: workers are `node bin/butterfly.js worker` children joined over
 * loopback TCP. Requires the build (npm test builds first).
 */
import { execFile } from 'node:child_process';
import { connect as netConnect } from 'node:net';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startEmbeddedCluster, type EmbeddedCluster } from '../src/cluster/embedded.js';
import { silentLogger, type Logger } from '../src/cluster/log.js';
import type { TaskInput } from '../src/cluster/scheduler.js';
import { connect } from '../src/transport/endpoints.js';
import { ModelDir, SHAPES } from './helpers/models.js';

const run = promisify(execFile);
const BIN = join(import.meta.dirname, '..', 'bin', 'butterfly.js');
const COMMAND = [process.execPath, BIN];
const models = new ModelDir();
afterAll(() => models.cleanup());

interface GenJson {
  tokens: number[];
  text: string;
  top_logprobs: Array<Array<{ id: number; logprob: number }>>;
}

async function generateCli(model: string, extra: string[]): Promise<GenJson> {
  const { stdout } = await run(process.execPath, [BIN, 'generate', '--model', model, '--json', '--threads', '2', ...extra], { timeout: 60_000 });
  return JSON.parse(stdout) as GenJson;
}

describe('generate --workers N on real processes', () => {
  for (const [name, extra] of [
    ['greedy', ['--temperature', '0']],
    ['seeded sampling', ['--temperature', '0.9', '--seed', '1234', '--top-k', '50', '--repeat-penalty', '1.1']],
  ] as const) {
    it(`1, 2, 3, 4 workers give the same tokens as one process (${name})`, async () => {
      const model = models.model('cluster', { ...SHAPES.tiny, nLayers: 4 }, 'q8_0');
      const args = ['--prompt', 'The quick brown fox', '--max-tokens', '24', '--ignore-eos', '--top-logprobs', '3', ...extra];
      const alone = await generateCli(model, args);
      expect(alone.tokens.length).toBe(24);
      for (const n of [1, 2, 3, 4]) {
        const split = await generateCli(model, [...args, '--workers', String(n)]);
        expect(split.tokens, `${n} workers`).toEqual(alone.tokens);
        expect(split.text).toBe(alone.text);
        expect(split.top_logprobs).toEqual(alone.top_logprobs);
      }
    });
  }
});

describe('an embedded cluster serving concurrent requests', () => {
  let cluster: EmbeddedCluster;
  const warnings: string[] = [];
  const logger: Logger = { info: () => {}, warn: (m) => warnings.push(m), error: (m) => warnings.push(m) };
  let model: string;

  beforeAll(async () => {
    model = models.model('served', { ...SHAPES.tiny, nLayers: 4 }, 'f32');
    cluster = await startEmbeddedCluster({ modelPath: model, workers: 3, command: COMMAND, logger, workerLogs: false, threadsPerWorker: 1, streamWeights: true });
  }, 60_000);
  afterAll(async () => {
    await cluster?.stop('test done');
  });

  function complete(input: Omit<TaskInput, 'taskId'>): Promise<{ tokens: number[]; reason: string }> {
    return new Promise((resolve) => {
      const tokens: number[] = [];
      cluster.coordinator.submit(input, { onToken: (t) => tokens.push(t), onFinish: (reason) => resolve({ tokens, reason }) });
    });
  }

  const task = (i: number): Omit<TaskInput, 'taskId'> => ({
    promptIds: Array.from({ length: 3 + ((i * 7) % 30) }, (_, k) => 1 + ((k * 31 + i * 17) % 500)),
    maxTokens: 10 + (i % 5),
    topLogprobs: 0,
    ignoreEos: true,
    sampler: { temperature: i % 2 === 0 ? 0 : 0.8, topK: 40, topP: 0.95, minP: 0.05, repeatPenalty: 1, repeatLastN: 64, seed: i },
  });

  it('8 concurrent requests each give exactly what they give alone (weights streamed to workers)', async () => {
    const alone: number[][] = [];
    for (let i = 0; i < 8; i++) alone.push((await complete(task(i))).tokens);
    const together = await Promise.all(Array.from({ length: 8 }, (_, i) => complete(task(i))));
    for (let i = 0; i < 8; i++) {
      expect(together[i]!.reason).toBe('length');
      expect(together[i]!.tokens, `request ${i}`).toEqual(alone[i]);
    }
    // And the same as a single process.
    const single = await generateCli(model, ['--prompt-ids', task(0).promptIds.join(','), '--max-tokens', String(task(0).maxTokens), '--temperature', '0', '--ignore-eos']);
    expect(single.tokens).toEqual(alone[0]);
  });

  it('refuses a worker with the wrong secret, logs it, and keeps serving', async () => {
    const { port } = cluster.coordinator.address;
    await expect(connect('127.0.0.1', port, { secret: 'not-the-secret', nodeId: 'intruder', role: 'worker', timeoutMs: 3000 })).rejects.toThrow(/secret|refused|proof/i);
    expect(warnings.some((w) => /intruder|secret/i.test(w))).toBe(true);
    const r = await complete(task(3));
    expect(r.reason).toBe('length');
  });

  it('survives a malformed frame on its worker port and keeps serving', async () => {
    const { port } = cluster.coordinator.address;
    await new Promise<void>((resolve) => {
      const s = netConnect(port, '127.0.0.1', () => {
        s.write(Buffer.from('GET / HTTP/1.1\r\nHost: x\r\n\r\n' + 'garbage'.repeat(100)));
      });
      s.on('close', () => resolve());
      s.on('error', () => resolve());
      setTimeout(() => s.destroy(), 2000);
    });
    const r = await complete(task(5));
    expect(r.reason).toBe('length');
    expect(r.tokens.length).toBe(task(5).maxTokens);
  });

  it('rejects a prompt over the context without disturbing others', async () => {
    expect(() => cluster.coordinator.submit({ ...task(1), promptIds: new Array(SHAPES.tiny.contextLength).fill(5) }, { onToken: () => {}, onFinish: () => {} })).toThrow(/context/);
    const r = await complete(task(2));
    expect(r.reason).toBe('length');
  });

  it('serves the official openai client over HTTP: whole and streamed completions agree, and match the engine', async () => {
    const { startApiServer } = await import('../src/api/server.js');
    const { default: OpenAI } = await import('openai');
    const api = await startApiServer(cluster.coordinator, { host: '127.0.0.1', port: 0 });
    try {
      const client = new OpenAI({ baseURL: `${api.url}/v1`, apiKey: 'unused', maxRetries: 0 });
      const params = { model: 'any', prompt: 'Once upon a time', max_tokens: 12, temperature: 0.7, seed: 42 };
      const whole = await client.completions.create(params);
      let streamed = '';
      for await (const chunk of await client.completions.create({ ...params, stream: true })) streamed += chunk.choices[0]?.text ?? '';
      expect(whole.choices[0]!.text.length).toBeGreaterThan(0);
      expect(streamed).toBe(whole.choices[0]!.text);
      const cli = await generateCli(model, ['--prompt', 'Once upon a time', '--max-tokens', '12', '--temperature', '0.7', '--seed', '42', '--top-k', '0', '--top-p', '1', '--min-p', '0']);
      expect(whole.choices[0]!.text).toBe(cli.text);
    } finally {
      await api.close();
    }
  });

  it('exports Prometheus metrics that promtool accepts', async () => {
    await complete(task(7));
    const text = await cluster.coordinator.metrics.text();
    expect(text).toMatch(/butterfly_state_transitions_total\{kind="Task",from="Queued",to="Scheduled"/);
    expect(text).toMatch(/butterfly_tokens_generated_total \d+/);
    const { spawnSync } = await import('node:child_process');
    const r = spawnSync('promtool', ['check', 'metrics'], { input: text, encoding: 'utf8' });
    expect(r.error, 'promtool is installed by the test setup (Debian package prometheus)').toBeUndefined();
    expect(r.stdout + r.stderr).toBe('');
    expect(r.status).toBe(0);
  });

  it('exposes every state machine', () => {
    const state = cluster.coordinator.stateJSON() as { machines: { machines?: Array<{ kind: string }> } | Array<{ kind: string }> };
    const text = JSON.stringify(state);
    for (const kind of ['System', 'Coordinator', 'Worker', 'Partition', 'Connection']) expect(text).toContain(`"kind":"${kind}"`);
    // Heartbeats keep every worker operational, so no invariant is violated on a healthy cluster.
    const inv = (state as unknown as { invariants: { active: unknown[] } }).invariants;
    expect(inv.active).toEqual([]);
    expect(text).not.toContain('"state":"Suspect"');
    // Idle: every component's state is one the System state allows (workers back to Ready, partitions released).
    const coherence = (state as unknown as { coherence: { vertical: { scorePct: number; incoherent: unknown[] } } }).coherence;
    expect(coherence.vertical.incoherent).toEqual([]);
    expect(coherence.vertical.scorePct).toBe(100);
  });
});

describe('a worker whose model copy differs from the coordinator\'s', () => {
  it('is refused at load with a clear message naming the tensor; the coordinator reports why', async () => {
    const { spawn } = await import('node:child_process');
    const { CoordinatorNode } = await import('../src/cluster/coordinator/coordinator-node.js');
    const coordModel = models.model('mismatch', SHAPES.tiny, 'f32', { seed: 1 });
    const workerModel = models.model('mismatch', SHAPES.tiny, 'f32', { seed: 2 });
    const lines: string[] = [];
    const logger: Logger = { info: () => {}, warn: (m) => lines.push(m), error: (m) => lines.push(m) };
    const node = new CoordinatorNode({ modelPath: coordModel, host: '127.0.0.1', port: 0, secret: 's3cret', expectedWorkers: 1, logger });
    await node.start();
    const child = spawn(process.execPath, [BIN, 'worker', '--join', `127.0.0.1:${node.address.port}`, '--model', workerModel, '--node-id', 'w-bad', '--threads', '1'], {
      env: { ...process.env, BUTTERFLY_SECRET: 's3cret' }, stdio: ['ignore', 'ignore', 'pipe'],
    });
    let workerLog = '';
    child.stderr!.on('data', (d: Buffer) => (workerLog += d.toString()));
    try {
      await expect(node.ready()).rejects.toThrow(/w-bad could not load.*checksum/);
      expect(workerLog).toMatch(/tensor '[^']+' fails its checksum/);
      expect(lines.some((l) => /load-failed/.test(l))).toBe(true);
    } finally {
      await node.stop('test done');
      child.kill('SIGTERM');
    }
  });
});

describe('multi-host mode through the CLI (coordinator + workers as separate commands)', () => {
  async function freePort(): Promise<number> {
    const { createServer } = await import('node:net');
    return new Promise((resolve) => {
      const s = createServer().listen(0, '127.0.0.1', () => {
        const port = (s.address() as { port: number }).port;
        s.close(() => resolve(port));
      });
    });
  }

  it('joins workers with --secret, serves completions, `status` shows the pipeline, SIGTERM stops everything', async () => {
    const { spawn } = await import('node:child_process');
    const model = models.model('multihost', { ...SHAPES.tiny, nLayers: 4 }, 'q8_0');
    const [wport, hport] = [await freePort(), await freePort()];
    const env = { ...process.env };
    delete env.BUTTERFLY_SECRET;
    const coord = spawn(process.execPath, [BIN, 'coordinator', '--model', model, '--listen', `127.0.0.1:${wport}`, '--secret', 'team-secret', '--workers', '2', '--http', `127.0.0.1:${hport}`], { env, stdio: ['ignore', 'ignore', 'pipe'] });
    let coordLog = '';
    coord.stderr!.on('data', (d: Buffer) => (coordLog += d.toString()));
    const workers = [0, 1].map((i) => spawn(process.execPath, [BIN, 'worker', '--join', `127.0.0.1:${wport}`, '--secret', 'team-secret', '--node-id', `host-${i}`, '--threads', '1', ...(i === 0 ? ['--model', model] : [])], { env, stdio: 'ignore' }));
    try {
      const url = `http://127.0.0.1:${hport}`;
      for (let i = 0; i < 100 && !/serving:/.test(coordLog); i++) await new Promise((r) => setTimeout(r, 100));
      expect(coordLog).toMatch(/serving:/);
      const res = await fetch(`${url}/v1/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ prompt: [1, 2, 3], max_tokens: 6, temperature: 0 }) });
      expect(res.status).toBe(200);
      const body = (await res.json()) as { usage: { completion_tokens: number } };
      expect(body.usage.completion_tokens).toBeGreaterThan(0);
      const { stdout } = await run(process.execPath, [BIN, 'status', '--url', url]);
      expect(stdout).toMatch(/host-0/);
      expect(stdout).toMatch(/host-1/);
      // One worker had no model file: its tensors were streamed by the coordinator.
      expect(coordLog).toMatch(/streaming [\d.]+ MiB of weights to host-1/);
    } finally {
      const exits = [coord, ...workers].map((p) => new Promise<number | null>((r) => p.once('exit', (code) => r(code))));
      coord.kill('SIGTERM');
      const codes = await Promise.all(exits);
      expect(codes.every((c) => c === 0)).toBe(true);
    }
  });
});

describe('butterfly serve (embedded mode, what `npm start` runs on the demo model)', () => {
  it('serves completions and exits cleanly with its workers on SIGINT', async () => {
    const { spawn, execFileSync } = await import('node:child_process');
    const { createServer } = await import('node:net');
    const port = await new Promise<number>((resolve) => {
      const s = createServer().listen(0, '127.0.0.1', () => {
        const p = (s.address() as { port: number }).port;
        s.close(() => resolve(p));
      });
    });
    const model = models.model('serve', SHAPES.tiny, 'q4_0');
    const serve = spawn(process.execPath, [BIN, 'serve', '--model', model, '--workers', '2', '--port', String(port)], { stdio: ['ignore', 'ignore', 'pipe'] });
    let log = '';
    serve.stderr!.on('data', (d: Buffer) => (log += d.toString()));
    const exited = new Promise<number | null>((r) => serve.once('exit', (code) => r(code)));
    try {
      for (let i = 0; i < 100 && !/OpenAI-compatible API at/.test(log); i++) await new Promise((r) => setTimeout(r, 100));
      expect(log).toMatch(/OpenAI-compatible API at/);
      const res = await fetch(`http://127.0.0.1:${port}/v1/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ prompt: 'Hi', max_tokens: 4 }) });
      expect(res.status).toBe(200);
    } finally {
      serve.kill('SIGINT');
    }
    expect(await exited).toBe(0);
    expect(log).toMatch(/worker stopped/);
    // No worker process outlives the server.
    const ps = execFileSync('ps', ['-eo', 'args'], { encoding: 'utf8' });
    expect(ps.split('\n').filter((l) => l.includes(model) && l.includes(' worker '))).toEqual([]);
  });
});
