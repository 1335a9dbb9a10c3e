import fp from 'fastify-plugin'
import { Redis } from 'ioredis'

declare module 'fastify' {
  interface FastifyInstance { redis: Redis | null }
}

const CONNECT_TIMEOUT_MS = 2000
const COMMAND_TIMEOUT_MS = 500
const ERROR_LOG_INTERVAL_MS = 30_000

function firstConnection (client: Redis) {
  return new Promise<void>(resolve => {
    const done = () => {
      clearTimeout(timer)
      client.off('ready', done)
      client.off('error', done)
      resolve()
    }
    const timer = setTimeout(done, CONNECT_TIMEOUT_MS)
    client.once('ready', done)
    client.once('error', done)
  })
}

/**
 * One Redis client when REDIS_URL is set (`fastify.redis`, null otherwise). Redis is an
 * accelerator, never a hard dependency: the app starts without it, every command fails fast
 * instead of queueing, and callers fall back to in-process state. Readiness reports it.
 */
export default fp(async function redis (fastify) {
  const { config } = fastify
  if (!config.redisUrl) {
    fastify.decorate('redis', null)
    return
  }
  const client = new Redis(config.redisUrl, {
    keyPrefix: config.redisKeyPrefix,
    connectTimeout: CONNECT_TIMEOUT_MS,
    commandTimeout: COMMAND_TIMEOUT_MS,
    maxRetriesPerRequest: 1,
    enableOfflineQueue: false,
    lazyConnect: false,
    retryStrategy: times => Math.min(times * 200, 5000)
  })
  // Without a listener ioredis reports every failed reconnect on stderr; one line now and then is enough.
  let lastErrorLog = 0
  client.on('error', err => {
    if (Date.now() - lastErrorLog < ERROR_LOG_INTERVAL_MS) return
    lastErrorLog = Date.now()
    fastify.log.warn({ err }, 'redis is unreachable; using in-process state until it is back')
  })
  client.on('ready', () => fastify.log.info('redis connected'))
  fastify.decorate('redis', client)
  await firstConnection(client)

  fastify.addHook('onClose', async () => {
    if (client.status !== 'ready') return client.disconnect()
    try { await client.quit() } catch (err) {
      fastify.log.warn({ err }, 'closing redis failed')
      client.disconnect()
    }
  })
}, { name: 'redis', dependencies: ['config'] })
