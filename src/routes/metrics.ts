import type { FastifyPluginAsync } from 'fastify'

/** Prometheus scrape endpoint; operational, so it stays out of the OpenAPI document and the API rate limits. */
const metricsRoutes: FastifyPluginAsync = async function (fastify) {
  fastify.get('/metrics', { logLevel: 'warn', schema: { hide: true } }, async (_request, reply) => {
    reply.type(fastify.metrics.contentType)
    return fastify.metrics.metrics()
  })
}

export default metricsRoutes
