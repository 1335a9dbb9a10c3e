import fp from 'fastify-plugin'
import { Cluster, Redis, type RedisOptions } from 'ioredis'
import type { RedisClient } from '../../lib/redis-fallback.js'

declare module 'fastify' {
  interface FastifyInstance { redis: RedisClient | null }
}

const CONNECT_TIMEOUT_MS = 2000
const COMMAND_TIMEOUT_MS = 500
const ERROR_LOG_INTERVAL_MS = 30_000

function firstConnection (client: RedisClient) {
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
 * One Redis client when REDIS_URL is set, or a Redis Cluster client when REDIS_CLUSTER_NODES is
 * (`fastify.redis`, null otherwise). Redis is an accelerator, never a hard dependency: the app
 * starts without it, every command fails fast instead of queueing, and callers fall back to
 * in-process state. Readiness reports it.
 *
 * On a cluster every multi-key command, script and pipeline keeps its keys in one hash slot:
 * the login budgets share a `{hashtag}` (login-attempts.ts), the rate-limit flush sends one
 * command per key, all at once (batched-counter.ts); every other
 * command has one key. Nothing subscribes (change notifications come from PostgreSQL).
 */
export default fp(async function redis (fastify) {
  const { config } = fastify
  if (!config.redisUrl && !config.redisClusterNodes) {
    fastify.decorate('redis', null)
    return
  }
  const options: RedisOptions = {
    connectTimeout: CONNECT_TIMEOUT_MS,
    commandTimeout: COMMAND_TIMEOUT_MS,
    maxRetriesPerRequest: 1,
    enableOfflineQueue: false,
    lazyConnect: false,
    retryStrategy: times => Math.min(times * 200, 5000)
  }
  const client: RedisClient = config.redisClusterNodes
    ? new Cluster(config.redisClusterNodes, {
      keyPrefix: config.redisKeyPrefix,
      redisOptions: options,
      enableOfflineQueue: false,
      // A command to a node that is down fails at once (and its caller falls back) instead of being retried for seconds.
      maxRedirections: 2,
      retryDelayOnClusterDown: 0,
      retryDelayOnFailover: 50,
      clusterRetryStrategy: times => Math.min(times * 200, 5000)
    })
    : new Redis(config.redisUrl!, { ...options, keyPrefix: config.redisKeyPrefix })
  // Without a listener ioredis reports every failed reconnect on stderr; one line now and then is enough.
  let lastErrorLog = 0
  const logError = (err: Error) => {
    if (Date.now() - lastErrorLog < ERROR_LOG_INTERVAL_MS) return
    lastErrorLog = Date.now()
    fastify.log.warn({ err }, 'redis is unreachable; using in-process state until it is back')
  }
  client.on('error', logError)
  // A cluster reports each node's connection failures on their own.
  client.on('node error', logError)
  client.on('ready', () => fastify.log.info('redis connected'))
  fastify.decorate<RedisClient>('redis', client)
  await firstConnection(client)

  fastify.addHook('onClose', async () => {
    if (client.status !== 'ready') return client.disconnect()
    try { await client.quit() } catch (err) {
      fastify.log.warn({ err }, 'closing redis failed')
      client.disconnect()
    }
  })
}, { name: 'redis', dependencies: ['config'] })
