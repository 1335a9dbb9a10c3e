import fp from 'fastify-plugin'
import fastifyRateLimit, { normalizeIP, type FastifyRateLimitStore } from '@fastify/rate-limit'
import type { FastifyRequest } from 'fastify'
import { rateLimited } from '../../errors.js'
import { createResilientCounter, type WindowCounter } from '../../lib/window-counter.js'

/** Routes an anonymous caller uses to try credentials or tokens: each has its own, stricter budget per IP. */
export const AUTH_RATE_LIMITED_ROUTES = new Set([
  '/api/v1/auth/login', '/api/v1/auth/register', '/api/v1/auth/refresh',
  '/api/v1/auth/password/forgot', '/api/v1/auth/password/reset', '/api/v1/auth/email/verify'
])

const isApi = (url: string) => url === '/api/v1' || url.startsWith('/api/v1/') || url.startsWith('/api/v1?')

/** The library's store interface over our counters (Redis, or in-process while Redis is away). */
function counterStore (counter: WindowCounter) {
  return class CounterStore implements FastifyRateLimitStore {
    incr (key: string, callback: (error: Error | null, result?: { current: number, ttl: number }) => void, timeWindow: number) {
      counter.hit(key, timeWindow).then(
        ({ count, ttlMs }) => callback(null, { current: count, ttl: ttlMs }),
        err => callback(err as Error)
      )
    }

    child () { return new CounterStore() }
  }
}

/**
 * Per-IP rate limits on /api/v1: RATE_LIMIT_MAX per RATE_LIMIT_WINDOW on every route, and
 * AUTH_RATE_LIMIT_MAX per window on each auth route that takes credentials or tokens (instead
 * of the general budget). One root onRequest hook applies them, so a request is counted and
 * gets the x-ratelimit-* headers before any other work, authentication included, and also
 * when it ends in 401 or 404. With Redis the counts are shared by every instance; when Redis
 * is unreachable they are kept in process (see createResilientCounter): the limits stay on.
 */
export default fp(async function rateLimit (fastify) {
  const { config } = fastify
  await fastify.register(fastifyRateLimit, {
    global: false,
    store: counterStore(createResilientCounter(fastify.redis, fastify.log)),
    max: config.rateLimitMax,
    timeWindow: config.rateLimitWindowMs,
    errorResponseBuilder: (_request, context) => rateLimited(context.ttl / 1000)
  })

  // An IPv4 address is already its own key; only IPv6 needs normalizing (a regex per call otherwise).
  const ipOf = ({ ip }: FastifyRequest) => ip.includes(':') ? normalizeIP(ip) : ip
  const apiLimit = fastify.rateLimit({ keyGenerator: request => `rl:api:${ipOf(request)}` })
  const authLimit = fastify.rateLimit({
    max: config.authRateLimitMax,
    keyGenerator: request => `rl:auth:${request.routeOptions.url}:${ipOf(request)}`
  })

  fastify.addHook('onRequest', async function rateLimitApi (request, reply) {
    if (!isApi(request.url)) return
    const limit = request.method === 'POST' && AUTH_RATE_LIMITED_ROUTES.has(request.routeOptions.url ?? '') ? authLimit : apiLimit
    await limit.call(fastify, request, reply)
  })
}, { name: 'rate-limit', dependencies: ['config', 'redis'] })
