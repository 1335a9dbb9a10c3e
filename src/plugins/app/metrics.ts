import fp from 'fastify-plugin'
import { Histogram, Registry, collectDefaultMetrics } from 'prom-client'

declare module 'fastify' {
  interface FastifyInstance { metrics: Registry }
}

/**
 * Prometheus metrics: the process defaults and a request-duration histogram by route template
 * (never the raw URL, so ids do not explode the label set), method and status. A registry per
 * app instance, so several apps in one process (the tests) do not collide.
 */
export default fp(async function metrics (fastify) {
  const registry = new Registry()
  collectDefaultMetrics({ register: registry })
  const duration = new Histogram({
    name: 'http_request_duration_seconds',
    help: 'HTTP request duration in seconds, by route template, method and status code',
    labelNames: ['route', 'method', 'status_code'] as const,
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    registers: [registry]
  })
  fastify.decorate('metrics', registry)
  // One child per label set, kept: prom-client would otherwise hash the labels on every observation.
  const series = new Map<string, Histogram.Internal<'route' | 'method' | 'status_code'>>()
  fastify.addHook('onResponse', async (request, reply) => {
    const route = request.routeOptions.url ?? 'unmatched'
    const key = `${reply.statusCode} ${request.method} ${route}`
    let child = series.get(key)
    if (!child) series.set(key, child = duration.labels(route, request.method, String(reply.statusCode)))
    child.observe(reply.elapsedTime / 1000)
  })
}, { name: 'metrics' })
