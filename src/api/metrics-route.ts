import type { FastifyPluginAsync } from 'fastify';

/** Anything that renders Prometheus text (the cluster's metrics). */
export interface MetricsSource {
  contentType(): string;
  text(): Promise<string>;
}

/** GET /metrics in the Prometheus text format. */
export function metricsRoute(source: MetricsSource): FastifyPluginAsync {
  return async (app) => {
    app.get('/metrics', async (_req, reply) => {
      reply.header('content-type', source.contentType());
      return source.text();
    });
  };
}
