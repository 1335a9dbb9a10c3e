import fp from 'fastify-plugin'
import fastifyRateLimit, { normalizeIP, type FastifyRateLimitStore } from '@fastify/rate-limit'
import type { FastifyReply, FastifyRequest, preHandlerAsyncHookHandler } from 'fastify'
import { rateLimited } from '../../errors.js'
import { createBudgetCounter, type BudgetCounter } from '../../lib/batched-counter.js'
import { isRateLimitedPath as isApi } from '../../lib/route-config.js'

declare module 'fastify' {
  interface FastifyInstance {
    /** Counts an authenticated request against its user's budget (authenticate calls it); throws 429 when it is spent. */
    limitUser: (request: FastifyRequest, reply: FastifyReply, userId: string) => Promise<void>
  }
}

type Limit = preHandlerAsyncHookHandler
// The limit a route spends, chosen from its config when it is added and kept on that config.
const kLimit = Symbol('rate limit of the route')

/** The library's store interface over our counters (Redis, or in-process while Redis is away). */
function counterStore (counter: BudgetCounter) {
  return class CounterStore implements FastifyRateLimitStore {
    incr (key: string, callback: (error: Error | null, result?: { current: number, ttl: number }) => void, timeWindow: number, max: number) {
      const counted = counter.take(key, timeWindow, max)
      // Most hits are answered in process: no promise for them.
      if (!(counted instanceof Promise)) return callback(null, { current: counted.count, ttl: counted.ttlMs })
      counted.then(
        ({ count, ttlMs }) => callback(null, { current: count, ttl: ttlMs }),
        err => callback(err as Error)
      )
    }

    child () { return new CounterStore() }
  }
}

/**
 * Per-IP rate limits on /api/v1 and /graphql: RATE_LIMIT_MAX per RATE_LIMIT_WINDOW on every route, and
 * AUTH_RATE_LIMIT_MAX per window on each route that declares `config: { rateLimitBudget: 'auth' }`
 * (instead of the general budget). One root onRequest hook applies them, so a request is counted
 * and gets the x-ratelimit-* headers before any other work, authentication included (a route's
 * own onRequest hooks would run after its plugin's `authenticate`), and also when it ends in
 * 401, 404 or 405. With Redis the counts are shared by every instance, counted in process
 * and sent to Redis in batches, with a stated bound on over-admission (see createBudgetCounter);
 * when Redis is unreachable they are kept in process: the limits stay on.
 *
 * Authenticated requests also spend RATE_LIMIT_USER_MAX per window of their user (limitUser,
 * called by authenticate once the access token is verified), on the same counters: a request is
 * refused when either budget is spent, and the x-ratelimit-* headers describe the tighter one.
 */
export default fp(async function rateLimit (fastify) {
  const { config } = fastify
  const counter = createBudgetCounter(fastify.redis, fastify.log)
  // Before Redis closes (onClose hooks run last registered first): the hits counted only here.
  fastify.addHook('onClose', () => counter.close())
  await fastify.register(fastifyRateLimit, {
    global: false,
    store: counterStore(counter),
    max: config.rateLimitMax,
    timeWindow: config.rateLimitWindowMs,
    errorResponseBuilder: (_request, context) => rateLimited(context.ttl / 1000)
  })
  const refuse = (budget: 'api' | 'auth') => (_request: FastifyRequest, context: { ttl: number }) => {
    fastify.appMetrics.rateLimited(budget)
    return rateLimited(context.ttl / 1000)
  }

  // An IPv4 address is already its own key; only IPv6 needs normalizing (a regex per call otherwise).
  const ipOf = ({ ip }: FastifyRequest) => ip.includes(':') ? normalizeIP(ip) : ip
  const apiLimit: Limit = fastify.rateLimit({ keyGenerator: request => `rl:api:${ipOf(request)}`, errorResponseBuilder: refuse('api') })
  const authLimitOf = (url: string): Limit => fastify.rateLimit({
    max: config.authRateLimitMax,
    keyGenerator: request => `rl:auth:${url}:${ipOf(request)}`,
    errorResponseBuilder: refuse('auth')
  })

  // The per-user budget: the same batched counters as the per-IP ones, so as cheap. The headers
  // already say the IP budget; they are replaced when the user's has less left (the tighter one).
  const userMax = config.rateLimitUserMax
  fastify.decorate('limitUser', async function limitUser (_request: FastifyRequest, reply: FastifyReply, userId: string) {
    const taken = counter.take(`rl:user:${userId}`, config.rateLimitWindowMs, userMax)
    const { count, ttlMs } = taken instanceof Promise ? await taken : taken
    const remaining = Math.max(0, userMax - count)
    if (count <= userMax && remaining >= Number(reply.getHeader('x-ratelimit-remaining') ?? Infinity)) return
    reply.header('x-ratelimit-limit', userMax).header('x-ratelimit-remaining', remaining).header('x-ratelimit-reset', Math.ceil(ttlMs / 1000))
    if (count > userMax) {
      fastify.appMetrics.rateLimited('user')
      throw rateLimited(ttlMs / 1000)
    }
  })

  fastify.addHook('onRoute', route => {
    if (!isApi(route.url)) return
    const limit = route.config?.rateLimitBudget === 'auth' ? authLimitOf(route.url) : apiLimit
    route.config = Object.assign({}, route.config, { [kLimit]: limit })
  })
  fastify.addHook('onRequest', async function rateLimitApi (request, reply) {
    // A matched route carries its limit; an unmatched path (404, 405) spends the general budget.
    const limit = (request.routeOptions.config as { [kLimit]?: Limit })[kLimit] ?? (request.is404 && isApi(request.url) ? apiLimit : undefined)
    if (limit) await limit.call(fastify, request, reply)
  })
}, { name: 'rate-limit', dependencies: ['config', 'redis', 'metrics'] })
