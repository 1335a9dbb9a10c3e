import type { FastifyBaseLogger } from 'fastify'
import type { ChainableCommander } from 'ioredis'
import { createRedisBreaker, type RedisClient } from './redis-fallback.js'
import { createMemoryCounter, createRedisCounter, type WindowCount } from './window-counter.js'

/** How often the hits counted here are sent to Redis (one pipeline for every key). */
export const FLUSH_MS = 50
const MAX_KEYS = 100_000

/**
 * How many hits one instance may admit on a key that Redis has not acknowledged yet: 1 % of the
 * budget, so 0 below 100, where every hit is counted in Redis before it is answered (the auth
 * budget, 30 by default, is counted that way).
 */
export const localAllowanceOf = (max: number) => Math.floor(max / 100)

/** Fixed-window budgets, as WindowCounter counts them, answered here when that is safe. */
export interface BudgetCounter {
  /** Counts one hit on key against max per windowMs; the count is above max when it is refused. */
  take (key: string, windowMs: number, max: number): WindowCount | Promise<WindowCount>
  /** Sends what is still counted only here. */
  close (): Promise<void>
}

interface Entry {
  /** The key's count in Redis, as Redis last answered. */
  base: number
  /** Hits sent to Redis and not answered yet. */
  sent: number
  /** Hits admitted here and not sent yet: the next flush sends them. */
  unsent: number
  /** When the window ends, by this clock (0 until Redis first answers). */
  endsAt: number
  windowMs: number
}

type WithHit<T> = T & { windowHit (key: string, windowMs: number, by: number): T }

/**
 * Budgets shared by every instance through Redis without a blocking round trip per request: a
 * key's first hit in a window is counted in Redis (so its count and window are known), later ones
 * are counted here and sent every FLUSH_MS, all keys in one pipeline whose answers bring back
 * every key's global count. A hit is answered here only while this instance's hits that Redis
 * has not acknowledged stay under localAllowanceOf(max) and the known count leaves that allowance
 * free; otherwise (near the limit, or in a burst) the hit, with the unsent ones, is counted in
 * Redis first and answered by the global count. Once Redis says a key is spent, its further hits
 * are refused here without a round trip.
 *
 * Bound: in one window, a key admits at most max + instances × localAllowanceOf(max) hits in
 * total. (Only hits admitted here can be over the limit; an instance admits none once an answer
 * shows the key spent, and before it does, every one of its hits Redis places over the limit is
 * still unacknowledged, which the allowance caps.) One instance alone never over-admits: its own
 * view is then exact. Hits admitted here and not yet sent when Redis fails or the process dies are
 * lost to the other instances (at most the allowance per key).
 *
 * Without Redis, or while it is unreachable or failing (see createRedisBreaker), each instance
 * counts in process: the limits stay on.
 */
export function createBudgetCounter (redis: RedisClient | null, log: FastifyBaseLogger): BudgetCounter {
  const memory = createMemoryCounter()
  if (!redis) return { take: (key, windowMs) => memory.hit(key, windowMs), close: async () => {} }
  const shared = createRedisCounter(redis)
  const breaker = createRedisBreaker(redis, log, 'redis rate-limit counter failed; counting in process for now')
  const entries = new Map<string, Entry>()
  const dirty = new Set<string>()
  let timer: NodeJS.Timeout | undefined

  const forget = () => {
    entries.clear()
    dirty.clear()
  }
  const degrade = (err: unknown) => {
    breaker.trip(err)
    forget()
  }

  function acknowledge (key: string, entry: Entry, by: number, count: number, ttlMs: number) {
    // Answers come in the order the commands were written, so the latest is the freshest count.
    if (entries.get(key) !== entry) return
    entry.sent -= by
    entry.base = count
    entry.endsAt = Date.now() + ttlMs
  }

  function entryOf (key: string, windowMs: number) {
    const entry: Entry = { base: 0, sent: 0, unsent: 0, endsAt: 0, windowMs }
    entries.set(key, entry)
    for (const oldest of entries.keys()) {
      if (entries.size <= MAX_KEYS) break
      entries.delete(oldest)
      dirty.delete(oldest)
    }
    return entry
  }

  async function hitInRedis (key: string, windowMs: number, known: Entry | undefined): Promise<WindowCount> {
    const entry = known ?? entryOf(key, windowMs)
    const by = entry.unsent + 1
    entry.unsent = 0
    entry.sent += by
    try {
      const result = await shared.hit(key, windowMs, by)
      acknowledge(key, entry, by, result.count, result.ttlMs)
      return result
    } catch (err) {
      degrade(err)
      return memory.hit(key, windowMs)
    }
  }

  /** One pipeline for every key; on a cluster (a pipeline must stay on one node) one command per key, all sent at once. */
  async function send (batch: Array<[string, Entry, number]>): Promise<WindowCount[]> {
    if (redis!.isCluster) return Promise.all(batch.map(([key, entry, by]) => shared.hit(key, entry.windowMs, by)))
    const pipeline = redis!.pipeline() as WithHit<ChainableCommander>
    for (const [key, entry, by] of batch) pipeline.windowHit(key, entry.windowMs, by)
    const results = await pipeline.exec() ?? []
    return results.map(([err, reply]) => {
      if (err) throw err
      const [count, ttlMs] = reply as [number, number]
      return { count, ttlMs }
    })
  }

  async function flush () {
    timer = undefined
    if (dirty.size === 0) return
    if (!breaker.usable()) return forget()
    const batch: Array<[string, Entry, number]> = []
    for (const key of dirty) {
      const entry = entries.get(key)
      if (!entry || entry.unsent === 0) continue
      const by = entry.unsent
      entry.unsent = 0
      entry.sent += by
      batch.push([key, entry, by])
    }
    dirty.clear()
    try {
      const results = await send(batch)
      results.forEach(({ count, ttlMs }, i) => acknowledge(batch[i][0], batch[i][1], batch[i][2], count, ttlMs))
    } catch (err) {
      degrade(err)
    }
  }

  return {
    take (key, windowMs, max) {
      if (!breaker.usable()) {
        // What was known of Redis may be stale when it is back.
        if (entries.size > 0) forget()
        return memory.hit(key, windowMs)
      }
      const now = Date.now()
      let entry = entries.get(key)
      if (entry && entry.endsAt !== 0 && entry.endsAt <= now) {
        // The window is over: hits still unsent belonged to it.
        entries.delete(key)
        entry = undefined
      }
      if (entry && entry.endsAt !== 0) {
        const count = entry.base + entry.sent + entry.unsent + 1
        const ttlMs = entry.endsAt - now
        if (entry.base >= max) return { count, ttlMs }
        const allowance = localAllowanceOf(max)
        if (entry.sent + entry.unsent < allowance && count <= max - allowance) {
          entry.unsent++
          dirty.add(key)
          timer ??= setTimeout(flush, FLUSH_MS).unref()
          return { count, ttlMs }
        }
      }
      return hitInRedis(key, windowMs, entry)
    },
    async close () {
      clearTimeout(timer)
      await flush()
    }
  }
}
