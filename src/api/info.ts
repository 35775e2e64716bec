/** The small read-only routes: model list, cluster state and status, liveness. */
import type { FastifyPluginAsync } from 'fastify';
import type { InferenceService } from '../cluster/coordinator/service.js';

export function infoRoutes(service: InferenceService): FastifyPluginAsync {
  return async (app) => {
    app.get('/health', async () => ({ ok: true }));
    app.get('/v1/models', async () => ({
      object: 'list',
      data: [{ id: service.modelName, object: 'model', created: 0, owned_by: 'butterfly' }],
    }));
    app.get('/api/v1/status', async () => service.status());
    app.get('/api/v1/state', async () => service.stateJSON());
  };
}
