/**
 * The coordinator's HTTP API: OpenAI-compatible completions, cluster status and state, health. A thin fastify
 * layer over an InferenceService — all cluster logic stays behind that interface, so tests run it on a fake.
 *
 * Extension point: `plugins` are registered after the built-in routes and before the server listens, with the
 * same error and 404 handling. The lead's Prometheus plugin (GET /metrics) goes there; `onCompletion` reports every
 * finished completion (tokens, time to first token, outcome) for it to count.
 */
import Fastify, { type FastifyInstance, type FastifyPluginAsync } from 'fastify';
import type { InferenceService } from '../cluster/coordinator/service.js';
import { silentLogger, type Logger } from '../cluster/log.js';
import { completionsRoute, type CompletionStats } from './completions/route.js';
import { installErrorHandlers } from './errors.js';
import { infoRoutes } from './info.js';

export type { CompletionStats } from './completions/route.js';

export interface ApiOptions {
  readonly logger?: Logger;
  /** Extra routes (e.g. GET /metrics), registered after the built-in ones. */
  readonly plugins?: readonly FastifyPluginAsync[];
  readonly onCompletion?: (stats: CompletionStats) => void;
}

export interface ApiServerOptions extends ApiOptions {
  readonly host: string;
  readonly port: number;
}

export interface ApiServer {
  readonly url: string;
  readonly port: number;
  close(): Promise<void>;
}

/** Token-id prompts for long contexts are large JSON arrays (≈7 bytes per id); 1 MiB would cap them near 150k. */
const BODY_LIMIT_BYTES = 16 * 2 ** 20;

/** The fastify app, not listening: tests drive it with inject(). */
export async function buildApiApp(service: InferenceService, opts: ApiOptions = {}): Promise<FastifyInstance> {
  const logger = opts.logger ?? silentLogger;
  const app = Fastify({
    logger: false,
    bodyLimit: BODY_LIMIT_BYTES,
    // A generation can stream for minutes; shutdown should not wait for it. Closing the sockets cancels the tasks.
    forceCloseConnections: true,
    // Strict types: "16" is not a number of tokens. Clear errors beat silent coercion for an API.
    ajv: { customOptions: { coerceTypes: false, allErrors: false } },
  });
  installErrorHandlers(app, logger);
  await app.register(infoRoutes(service));
  await app.register(completionsRoute({ service, logger, onCompletion: opts.onCompletion }));
  for (const plugin of opts.plugins ?? []) await app.register(plugin);
  return app;
}

export async function startApiServer(service: InferenceService, opts: ApiServerOptions): Promise<ApiServer> {
  const app = await buildApiApp(service, opts);
  await app.listen({ host: opts.host, port: opts.port });
  const addr = app.server.address();
  const port = typeof addr === 'object' && addr ? addr.port : opts.port;
  const host = opts.host.includes(':') ? `[${opts.host}]` : opts.host;
  return { url: `http://${host === '0.0.0.0' ? '127.0.0.1' : host}:${port}`, port, close: () => app.close() };
}
