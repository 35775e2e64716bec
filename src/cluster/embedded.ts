/**
 * Embedded mode: a coordinator in this process and N worker processes on loopback — the default a new user meets
 * (`butterfly serve`, `butterfly generate --workers N`). Workers are real processes joined over real TCP with a
 * generated secret, exactly as on separate hosts.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { availableParallelism, totalmem } from 'node:os';
import { generateSecret } from '../transport/auth.js';
import { CoordinatorNode } from './coordinator/coordinator-node.js';
import type { Logger } from './log.js';

export interface EmbeddedOptions {
  readonly modelPath: string;
  readonly workers: number;
  /** How to start `butterfly` (e.g. [process.execPath, '/path/bin/butterfly.js']). */
  readonly command: readonly string[];
  readonly threadsPerWorker?: number;
  /** Workers get no --model and receive their tensors over the wire. */
  readonly streamWeights?: boolean;
  readonly maxActiveSequences?: number;
  readonly logger: Logger;
  /** Pass through worker logs (stderr); default true. */
  readonly workerLogs?: boolean;
}

export interface EmbeddedCluster {
  readonly coordinator: CoordinatorNode;
  readonly workers: readonly ChildProcess[];
  stop(reason?: string): Promise<void>;
}

export async function startEmbeddedCluster(opts: EmbeddedOptions): Promise<EmbeddedCluster> {
  if (!Number.isInteger(opts.workers) || opts.workers < 1) throw new RangeError('--workers must be at least 1');
  const secret = generateSecret();
  const coordinator = new CoordinatorNode({
    modelPath: opts.modelPath, host: '127.0.0.1', port: 0, secret, expectedWorkers: opts.workers,
    maxActiveSequences: opts.maxActiveSequences, logger: opts.logger,
  });
  await coordinator.start();
  const { port } = coordinator.address;
  const threads = opts.threadsPerWorker ?? Math.max(1, Math.floor(availableParallelism() / opts.workers));
  const memoryBytes = Math.floor((totalmem() * 0.8) / opts.workers);
  const [cmd, ...baseArgs] = opts.command;
  const children: ChildProcess[] = [];
  let stopping = false;
  const failed = new Promise<never>((_, reject) => {
    for (let i = 0; i < opts.workers; i++) {
      const args = [...baseArgs, 'worker', '--join', `127.0.0.1:${port}`, '--node-id', `worker-${i}`, '--threads', String(threads), '--memory', String(memoryBytes)];
      if (!opts.streamWeights) args.push('--model', opts.modelPath);
      // The secret travels in the environment, not on the command line (where `ps` shows it).
      const child = spawn(cmd!, args, {
        env: { ...process.env, BUTTERFLY_SECRET: secret },
        stdio: ['ignore', 'ignore', opts.workerLogs === false ? 'ignore' : 'inherit'],
      });
      children.push(child);
      child.on('exit', (code, signal) => {
        if (stopping) return;
        const why = `worker-${i} exited (${signal ?? `code ${code}`})`;
        opts.logger.warn(why);
        reject(new Error(why));
      });
    }
  });
  failed.catch(() => {});
  const stop = async (reason = 'stopping'): Promise<void> => {
    if (stopping) return;
    stopping = true;
    await coordinator.stop(reason);
    await Promise.all(children.map((c) => waitExit(c, 3000)));
  };
  try {
    await Promise.race([coordinator.ready(), failed]);
  } catch (err) {
    await stop('startup failed');
    throw err;
  }
  return { coordinator, workers: children, stop };
}

function waitExit(child: ChildProcess, timeoutMs: number): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
    }, timeoutMs);
    child.once('exit', () => {
      clearTimeout(timer);
      resolve();
    });
    child.kill('SIGTERM');
  });
}
