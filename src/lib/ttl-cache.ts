import type { FastifyBaseLogger } from 'fastify'
import { redisOrMemory, type RedisClient } from './redis-fallback.js'

/**
 * A small key-value store whose entries expire. Asynchronous on purpose: the in-process one below
 * serves a single instance; a Redis-backed one (SET key value EX ttl / GET) can implement the same
 * interface for several instances without changing its callers. Values must survive JSON.
 */
export interface TtlCache<T> {
  get (key: string): Promise<T | undefined>
  set (key: string, value: T, ttlSec: number): Promise<void>
  delete (key: string): Promise<void>
  /** The entry, removed in the same step: of two callers taking one key at once, only one gets it (single-use values). */
  take (key: string): Promise<T | undefined>
}

/** In-process TtlCache: a Map kept in insertion order, so the oldest entries go first when it is full. */
export function createMemoryTtlCache<T> (maxEntries = 10_000, now = () => Date.now()): TtlCache<T> {
  const entries = new Map<string, { value: T, expiresAt: number }>()
  return {
    async get (key) {
      const entry = entries.get(key)
      if (!entry) return undefined
      if (entry.expiresAt <= now()) {
        entries.delete(key)
        return undefined
      }
      return entry.value
    },
    async set (key, value, ttlSec) {
      entries.delete(key)
      if (ttlSec <= 0) return
      entries.set(key, { value, expiresAt: now() + ttlSec * 1000 })
      for (const oldest of entries.keys()) {
        if (entries.size <= maxEntries) break
        entries.delete(oldest)
      }
    },
    async delete (key) {
      entries.delete(key)
    },
    async take (key) {
      const entry = entries.get(key)
      entries.delete(key)
      return entry && entry.expiresAt > now() ? entry.value : undefined
    }
  }
}

/** TtlCache in Redis (its keyPrefix applies): every instance sees the same entries. */
export function createRedisTtlCache<T> (redis: RedisClient, namespace: string): TtlCache<T> {
  return {
    async get (key) {
      const json = await redis.get(namespace + key)
      return json === null ? undefined : JSON.parse(json) as T
    },
    async set (key, value, ttlSec) {
      if (ttlSec <= 0) await redis.del(namespace + key)
      else await redis.set(namespace + key, JSON.stringify(value), 'PX', Math.max(1, Math.round(ttlSec * 1000)))
    },
    async delete (key) {
      await redis.del(namespace + key)
    },
    async take (key) {
      const json = await redis.getdel(namespace + key)
      return json === null ? undefined : JSON.parse(json) as T
    }
  }
}

/**
 * The Redis TtlCache when REDIS_URL is set, falling back to an in-process one while Redis is not
 * connected or fails (see redisOrMemory): a cache miss is always a safe answer for its callers,
 * an error is not.
 */
export function createResilientTtlCache<T> (redis: RedisClient | null, namespace: string, log: FastifyBaseLogger): TtlCache<T> {
  const memory = createMemoryTtlCache<T>()
  if (!redis) return memory
  const pick = redisOrMemory(redis, createRedisTtlCache<T>(redis, namespace), memory, log, 'redis cache failed; caching in process for now')
  return {
    get: key => pick(cache => cache.get(key)),
    set: (key, value, ttlSec) => pick(cache => cache.set(key, value, ttlSec)),
    delete: key => pick(cache => cache.delete(key)),
    take: key => pick(cache => cache.take(key))
  }
}
