import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import type { FastifyPluginAsync } from 'fastify'
import fp from 'fastify-plugin'
import proxyAddr from '@fastify/proxy-addr'
import { forbidden } from '../errors.js'

declare module 'fastify' {
  interface FastifyInstance {
    /** Where METRICS_PORT serves /metrics once the app is ready (undefined without it). */
    metricsAddress (): AddressInfo | undefined
  }
}

/**
 * The Prometheus scrape endpoint: on METRICS_PORT when set, and then not on the API port;
 * otherwise on the API port to the addresses in METRICS_ALLOW only, judged by the connection's
 * own address (X-Forwarded-For cannot open it). Operational, so it stays out of the OpenAPI
 * document and the API rate limits.
 */
const metricsRoutes: FastifyPluginAsync = async function (fastify) {
  const { metrics, config } = fastify
  if (config.metricsPort !== undefined) {
    const server = createServer((request, response) => {
      if (request.method !== 'GET' || request.url?.split('?')[0] !== '/metrics') {
        response.writeHead(404, { 'content-type': 'text/plain' }).end('not found\n')
        return
      }
      metrics.metrics().then(
        body => response.writeHead(200, { 'content-type': metrics.contentType }).end(body),
        err => { fastify.log.error({ err }, 'metrics failed'); response.writeHead(500).end() }
      )
    })
    fastify.decorate('metricsAddress', () => server.address() as AddressInfo | undefined ?? undefined)
    fastify.addHook('onReady', () => new Promise<void>((resolve, reject) => {
      server.once('error', reject)
      server.listen(config.metricsPort, config.host, () => { server.off('error', reject); resolve() })
    }))
    fastify.addHook('onClose', () => new Promise<void>(resolve => server.listening ? server.close(() => resolve()) : resolve()))
    return
  }

  fastify.decorate('metricsAddress', () => undefined)
  const allowed = proxyAddr.compile(config.metricsAllow)
  fastify.get('/metrics', { logLevel: 'warn', schema: { hide: true } }, async (request, reply) => {
    if (!allowed(request.socket.remoteAddress ?? '', 0)) throw forbidden('Metrics are served only to the addresses in METRICS_ALLOW')
    reply.type(metrics.contentType)
    return metrics.metrics()
  })
}

// Not encapsulated: metricsAddress is for whoever built the app.
export default fp(metricsRoutes, { name: 'metrics-routes', dependencies: ['metrics', 'config'] })
