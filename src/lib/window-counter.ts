import type { RedisClient } from './redis-fallback.js'

export interface WindowCount {
  /** Hits in the current window. */
  count: number
  /** Milliseconds until the window ends (0 when there is none). */
  ttlMs: number
}

/**
 * Fixed-window counters: a key's window starts with its first hit and lasts windowMs; when it
 * ends the key starts again from zero. The rate limits count on them (see batched-counter.ts).
 */
export interface WindowCounter {
  /** Adds `by` (1 or more) to the key's count. */
  hit (key: string, windowMs: number, by?: number): Promise<WindowCount>
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
        entry = { count: 0, endsAt: t + windowMs }
        windows.set(key, entry)
        for (const oldest of windows.keys()) {
          if (windows.size <= maxKeys) break
          windows.delete(oldest)
        }
      }
      entry.count += by
      return { count: entry.count, ttlMs: entry.endsAt - t }
    }
  }
}

// One round trip, atomic: concurrent hits from several instances never lose a count or a TTL.
const HIT_SCRIPT = `
local n = redis.call('INCRBY', KEYS[1], ARGV[2])
local ttl = redis.call('PTTL', KEYS[1])
if ttl < 0 then
  redis.call('PEXPIRE', KEYS[1], ARGV[1])
  ttl = tonumber(ARGV[1])
end
return {n, ttl}
`

type RedisWithHit = RedisClient & { windowHit (key: string, windowMs: number, by: number): Promise<[number, number]> }

/** Counters shared by every instance through Redis (its keyPrefix applies). */
export function createRedisCounter (redis: RedisClient): WindowCounter {
  const client = redis as RedisWithHit
  if (typeof client.windowHit !== 'function') client.defineCommand('windowHit', { numberOfKeys: 1, lua: HIT_SCRIPT })
  return {
    async hit (key, windowMs, by = 1) {
      const [count, ttlMs] = await client.windowHit(key, Math.max(1, Math.round(windowMs)), by)
      return { count, ttlMs }
    }
  }
}
