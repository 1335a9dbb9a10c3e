import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { errors } from '../../schemas/common.js'
import { LivenessResponseSchema, ReadinessResponseSchema } from '../../schemas/health.js'
import { serviceUnavailable, type ErrorDetail } from '../errors.js'

const CHECK_TIMEOUT_MS = 2000
// What a 503 tells the caller to wait (Retry-After) before asking again.
const RETRY_AFTER_SEC = 5

function withTimeout (promise: Promise<unknown>, ms: number) {
  let timer: NodeJS.Timeout | undefined
  const timeout = new Promise((_resolve, reject) => { timer = setTimeout(() => reject(new Error('timed out')), ms) })
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer))
}

const healthRoutes: FastifyPluginAsyncTypebox = async function (fastify) {
  fastify.get('/health', {
    logLevel: 'warn',
    schema: {
      operationId: 'liveness',
      tags: ['health'],
      summary: 'Liveness: the process answers',
      description: 'Anonymous and not rate limited; checks no dependency, so it answers while the database or Redis is down.',
      security: [],
      response: { 200: LivenessResponseSchema, ...errors() }
    }
  }, async () => ({ success: true as const, data: { status: 'ok' as const } }))

  async function readiness () {
    const checks: Record<string, () => Promise<unknown>> = { database: () => fastify.database.ping() }
    if ((fastify.config.redisUrl || fastify.config.redisClusterNodes) && fastify.hasDecorator('redis')) checks.redis = () => (fastify as any).redis.ping()
    const failures: ErrorDetail[] = []
    await Promise.all(Object.entries(checks).map(async ([name, check]) => {
      try { await withTimeout(check(), CHECK_TIMEOUT_MS) } catch (err) {
        fastify.log.warn({ err, check: name }, 'readiness check failed')
        failures.push({ field: name, message: `${name} is not reachable` })
      }
    }))
    if (failures.length > 0) throw serviceUnavailable('A dependency is not ready', failures, RETRY_AFTER_SEC)
    const result = Object.fromEntries(Object.keys(checks).map(name => [name, 'ok' as const]))
    return { success: true as const, data: { status: 'ok' as const, checks: result as { database: 'ok', redis?: 'ok' } } }
  }

  const readinessSchema = (operationId: string, limits: string, ...statuses: number[]) => ({
    operationId,
    tags: ['health'],
    summary: 'Readiness: every dependency answers',
    description: `Anonymous${limits}. Checks the database, and Redis when configured (2 s each); 503 names each failing check in details.`,
    security: [],
    response: { 200: ReadinessResponseSchema, ...errors(...statuses, 503) }
  })
  fastify.get('/health/ready', { logLevel: 'warn', schema: readinessSchema('readiness', ' and not rate limited') }, readiness)
  fastify.get('/api/v1/health', { logLevel: 'warn', schema: readinessSchema('apiHealth', ', rate limited as any /api/v1 route', 429) }, readiness)
}

export default healthRoutes
