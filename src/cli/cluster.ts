import { availableParallelism, totalmem } from 'node:os';
import { InvalidArgumentError, Option, type Command } from 'commander';
import { CoordinatorNode } from '../cluster/coordinator/coordinator-node.js';
import { createLogger } from '../cluster/log.js';
import { parseByteSize } from '../cluster/plan-format.js';
import { WorkerNode } from '../cluster/worker/worker-node.js';
import { resolveSecret } from '../transport/auth.js';
import { UsageError } from './errors.js';
import { intArg } from './options.js';

export function hostPortArg(v: string): { host: string; port: number } {
  const i = v.lastIndexOf(':');
  const host = i > 0 ? v.slice(0, i) : '127.0.0.1';
  const port = Number(i >= 0 ? v.slice(i + 1) : v);
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new InvalidArgumentError(`expected HOST:PORT, got '${v}'`);
  return { host, port };
}

function byteSizeArg(v: string): number {
  try {
    return /^\d+$/.test(v) ? Number(v) : parseByteSize(v);
  } catch (err) {
    throw new InvalidArgumentError((err as Error).message);
  }
}

function requireSecret(flag: string | undefined): string {
  const secret = resolveSecret(flag);
  if (!secret) throw new UsageError('a cluster secret is required: pass --secret S or set BUTTERFLY_SECRET');
  return secret;
}

/** Run until SIGINT/SIGTERM, then `stop` gracefully (a second signal exits at once). */
export function onShutdownSignal(stop: (signal: string) => Promise<void>): void {
  let stopping = false;
  for (const sig of ['SIGINT', 'SIGTERM'] as const) {
    process.on(sig, () => {
      if (stopping) process.exit(130);
      stopping = true;
      void stop(sig).then(() => process.exit(0), () => process.exit(1));
    });
  }
}

export function registerWorker(program: Command): void {
  program
    .command('worker')
    .description('join a coordinator and serve the layers it assigns')
    .requiredOption('--join <host:port>', 'coordinator address', hostPortArg)
    .option('--secret <s>', 'cluster secret (or BUTTERFLY_SECRET)')
    .option('-m, --model <file>', 'local copy of the model (otherwise the coordinator streams the tensors)')
    // defaults described in words: --help should not print a byte count or a pid
    .addOption(new Option('--memory <size>', 'memory this worker may use, e.g. 8GiB').argParser(byteSizeArg)
      .default(Math.floor(totalmem() * 0.8), `80% of this host's memory, ${(totalmem() * 0.8 / 2 ** 30).toFixed(1)}GiB`))
    .option('-t, --threads <n>', 'compute threads', intArg('--threads', 1, 256), availableParallelism())
    .addOption(new Option('--node-id <id>', 'name of this worker').default(`worker-${process.pid}`, 'worker-<pid>'))
    .option('--listen-host <host>', 'address the previous stage connects to', '127.0.0.1')
    .option('--listen-port <port>', 'port for the previous stage (0 = any)', intArg('--listen-port', 0, 65535), 0)
    .action(async (o: { join: { host: string; port: number }; secret?: string; model?: string; memory: number; threads: number; nodeId: string; listenHost: string; listenPort: number }) => {
      const logger = createLogger(o.nodeId);
      const node = new WorkerNode({
        coordinatorHost: o.join.host, coordinatorPort: o.join.port, secret: requireSecret(o.secret), nodeId: o.nodeId,
        modelPath: o.model, memoryBytes: o.memory, threads: o.threads, peerHost: o.listenHost, peerPort: o.listenPort, logger,
      });
      onShutdownSignal((sig) => node.stop(`received ${sig}`));
      try {
        await node.start();
      } catch (err) {
        throw new UsageError(`cannot join the coordinator at ${o.join.host}:${o.join.port}: ${(err as Error).message}`);
      }
      const reason = await node.finished;
      logger.info(`worker stopped: ${reason}`);
      process.exit(0);
    });
}

export function registerCoordinator(program: Command): void {
  program
    .command('coordinator')
    .description('run the coordinator for workers on other hosts')
    .requiredOption('-m, --model <file>', 'GGUF model file')
    .addOption(new Option('--listen <host:port>', 'address workers join').argParser(hostPortArg).default({ host: '0.0.0.0', port: 7070 }, '0.0.0.0:7070'))
    .option('--secret <s>', 'cluster secret (or BUTTERFLY_SECRET)')
    .option('--workers <n>', 'workers to wait for before planning', intArg('--workers', 1, 256), 1)
    .addOption(new Option('--http <host:port>', 'HTTP API address').argParser(hostPortArg).default({ host: '127.0.0.1', port: 8080 }, '127.0.0.1:8080'))
    .action(async (o: { model: string; listen: { host: string; port: number }; secret?: string; workers: number; http: { host: string; port: number } }) => {
      const logger = createLogger('coordinator');
      const node = new CoordinatorNode({
        modelPath: o.model, host: o.listen.host, port: o.listen.port, secret: requireSecret(o.secret), expectedWorkers: o.workers, logger,
      });
      await node.start();
      const { startApiServer } = await import('../api/server.js');
      const { metricsRoute } = await import('../api/metrics-route.js');
      const api = await startApiServer(node, { host: o.http.host, port: o.http.port, logger, plugins: [metricsRoute(node.metrics)] });
      logger.info(`HTTP API on ${api.url}`);
      onShutdownSignal(async (sig) => {
        logger.info(`received ${sig}: shutting down`);
        await api.close();
        await node.stop(`coordinator received ${sig}`);
      });
    });
}

export interface ServeOptions {
  model: string;
  workers: number;
  port: number;
  host: string;
  threads?: number;
  streamWeights: boolean;
}

/** Embedded mode: coordinator + N local worker processes + the HTTP API, until SIGINT/SIGTERM. */
export async function runServe(o: ServeOptions): Promise<void> {
  const logger = createLogger('coordinator');
  const { startEmbeddedCluster } = await import('../cluster/embedded.js');
  const { startApiServer } = await import('../api/server.js');
  const started = performance.now();
  logger.info(`starting ${o.workers} worker process(es) for ${o.model}`);
  const cluster = await startEmbeddedCluster({
    modelPath: o.model, workers: o.workers, command: [process.execPath, process.argv[1]!], logger,
    threadsPerWorker: o.threads, streamWeights: o.streamWeights,
  });
  const { metricsRoute } = await import('../api/metrics-route.js');
  const api = await startApiServer(cluster.coordinator, { host: o.host, port: o.port, logger, plugins: [metricsRoute(cluster.coordinator.metrics)] });
  logger.info(`ready in ${((performance.now() - started) / 1000).toFixed(1)} s — OpenAI-compatible API at ${api.url}/v1 (try: curl ${api.url}/v1/completions -H 'content-type: application/json' -d '{"prompt":"Hello","max_tokens":16}')`);
  logger.info(`cluster state at ${api.url}/api/v1/state; \`butterfly status --url ${api.url}\` prints it; Ctrl-C stops`);
  onShutdownSignal(async (sig) => {
    logger.info(`received ${sig}: draining and stopping workers`);
    await api.close();
    await cluster.stop(`serve received ${sig}`);
  });
}

export function registerServe(program: Command): void {
  program
    .command('serve')
    .description('run a coordinator with N local worker processes and serve the HTTP API (embedded mode)')
    .requiredOption('-m, --model <file>', 'GGUF model file')
    .option('--workers <n>', 'local worker processes (pipeline stages)', intArg('--workers', 1, 64), 2)
    .option('--port <port>', 'HTTP port', intArg('--port', 0, 65535), 8080)
    .option('--host <host>', 'HTTP address', '127.0.0.1')
    .option('-t, --threads <n>', 'threads per worker (default: cores ÷ workers)', intArg('--threads', 1, 256))
    .option('--stream-weights', 'workers receive their tensors over the wire instead of reading the file', false)
    .action(async (o: ServeOptions) => {
      await runServe(o);
    });
}
