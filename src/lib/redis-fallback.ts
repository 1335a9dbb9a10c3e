import type { FastifyBaseLogger } from 'fastify'
import type { Redis } from 'ioredis'

const BREAKER_MS = 5000

/**
 * Runs each operation on the Redis-backed store while Redis is connected, and on the in-process
 * one otherwise. A failed or timed-out command also falls back, and Redis is then left alone for
 * a few seconds, so an unreachable Redis costs no latency per request.
 */
export function redisOrMemory<S> (redis: Redis, shared: S, memory: S, log: FastifyBaseLogger, failure: string) {
  let skipRedisUntil = 0
  return async function run<R> (op: (store: S) => Promise<R>): Promise<R> {
    if (redis.status === 'ready' && Date.now() >= skipRedisUntil) {
      try {
        return await op(shared)
      } catch (err) {
        skipRedisUntil = Date.now() + BREAKER_MS
        log.warn({ err }, failure)
      }
    }
    return op(memory)
  }
}
