import type { FastifyBaseLogger } from 'fastify'
import type { Redis } from 'ioredis'
import { redisOrMemory } from './redis-fallback.js'

export interface WindowCount {
  /** Hits in the current window. */
  count: number
  /** Milliseconds until the window ends (0 when there is none). */
  ttlMs: number
}

/**
 * Fixed-window counters: a key's window starts with its first hit and lasts windowMs; when it
 * ends the key starts again from zero. Used for rate limits and login lockouts.
 */
export interface WindowCounter {
  /** Adds `by` (may be negative) to the key's count; a count at or below zero removes the key. */
  hit (key: string, windowMs: number, by?: number): Promise<WindowCount>
  reset (key: string): Promise<void>
}

/** In-process counters: one instance's view only. Bounded: the oldest keys go first when full. */
export function createMemoryCounter (maxKeys = 100_000, now = () => Date.now()): WindowCounter {
  const windows = new Map<string, { count: number, endsAt: number }>()
  return {
    async hit (key, windowMs, by = 1) {
      const t = now()
      let entry = windows.get(key)
      if (!entry || entry.endsAt <= t) {
        windows.delete(key)
        if (by <= 0) return { count: 0, ttlMs: 0 }
        entry = { count: 0, endsAt: t + windowMs }
        windows.set(key, entry)
        for (const oldest of windows.keys()) {
          if (windows.size <= maxKeys) break
          windows.delete(oldest)
        }
      }
      entry.count += by
      if (entry.count <= 0) {
        windows.delete(key)
        return { count: 0, ttlMs: 0 }
      }
      return { count: entry.count, ttlMs: entry.endsAt - t }
    },
    async reset (key) {
      windows.delete(key)
    }
  }
}

// One round trip, atomic: concurrent hits from several instances never lose a count or a TTL.
const HIT_SCRIPT = `
local n = redis.call('INCRBY', KEYS[1], ARGV[2])
if n <= 0 then
  redis.call('DEL', KEYS[1])
  return {0, 0}
end
local ttl = redis.call('PTTL', KEYS[1])
if ttl < 0 then
  redis.call('PEXPIRE', KEYS[1], ARGV[1])
  ttl = tonumber(ARGV[1])
end
return {n, ttl}
`

type RedisWithHit = Redis & { windowHit (key: string, windowMs: number, by: number): Promise<[number, number]> }

/** Counters shared by every instance through Redis (its keyPrefix applies). */
export function createRedisCounter (redis: Redis): WindowCounter {
  const client = redis as RedisWithHit
  if (typeof client.windowHit !== 'function') client.defineCommand('windowHit', { numberOfKeys: 1, lua: HIT_SCRIPT })
  return {
    async hit (key, windowMs, by = 1) {
      const [count, ttlMs] = await client.windowHit(key, Math.max(1, Math.round(windowMs)), by)
      return { count, ttlMs }
    },
    async reset (key) {
      await client.del(key)
    }
  }
}

/**
 * Redis counters that degrade to in-process ones, never to "no limit": when Redis is not
 * connected, or a command fails or times out, the in-process counters answer and Redis is left
 * alone for a few seconds, so an unreachable Redis costs no latency per request. While degraded
 * each instance counts on its own, so a limit is at worst multiplied by the number of instances.
 */
export function createResilientCounter (redis: Redis | null, log: FastifyBaseLogger): WindowCounter {
  const memory = createMemoryCounter()
  if (!redis) return memory
  const pick = redisOrMemory(redis, createRedisCounter(redis), memory, log, 'redis counter failed; counting in process for now')
  return {
    hit: (key, windowMs, by) => pick(counter => counter.hit(key, windowMs, by)),
    reset: key => pick(counter => counter.reset(key))
  }
}
