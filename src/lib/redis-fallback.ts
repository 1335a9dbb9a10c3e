import type { FastifyBaseLogger } from 'fastify'
import type { Cluster, Redis } from 'ioredis'

/** A single Redis (REDIS_URL) or a Redis Cluster (REDIS_CLUSTER_NODES). */
export type RedisClient = Redis | Cluster

const BREAKER_MS = 5000

export interface RedisBreaker {
  /** Redis is connected and has not failed in the last few seconds. */
  usable (): boolean
  /** A command failed or timed out: leave Redis alone for a few seconds. */
  trip (err: unknown): void
}

export function createRedisBreaker (redis: RedisClient, log: FastifyBaseLogger, failure: string): RedisBreaker {
  let skipRedisUntil = 0
  return {
    usable: () => redis.status === 'ready' && Date.now() >= skipRedisUntil,
    trip (err) {
      skipRedisUntil = Date.now() + BREAKER_MS
      log.warn({ err }, failure)
    }
  }
}

/**
 * Runs each operation on the Redis-backed store while Redis is connected, and on the in-process
 * one otherwise. A failed or timed-out command also falls back, and Redis is then left alone for
 * a few seconds, so an unreachable Redis costs no latency per request.
 */
export function redisOrMemory<S> (redis: RedisClient, shared: S, memory: S, log: FastifyBaseLogger, failure: string) {
  const breaker = createRedisBreaker(redis, log, failure)
  return async function run<R> (op: (store: S) => Promise<R>): Promise<R> {
    if (breaker.usable()) {
      try {
        return await op(shared)
      } catch (err) {
        breaker.trip(err)
      }
    }
    return op(memory)
  }
}
