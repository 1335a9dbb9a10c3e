import type { FastifyBaseLogger } from 'fastify'
import { redisOrMemory, type RedisClient } from './redis-fallback.js'

/**
 * A failure budget: a key's failures within a window (the window starts at the first failure),
 * and the attempts running right now. An attempt may start only while failures plus running
 * attempts stay under the budget, so parallel attempts can never produce more failures than the
 * budget allows, and only an attempt that ends as a failure uses any of it.
 */
export interface Budget {
  key: string
  max: number
}

export type AcquireResult =
  | { state: 'acquired' }
  /** The budget is spent: refused until the window ends. `budget` is the index of the spent one. */
  | { state: 'locked', ttlMs: number, budget: number }
  /** Running attempts hold what is left of the budget: try again when one of them ends. */
  | { state: 'busy', budget: number }

/** How an attempt ended: a failure counts; a pass clears the first budget's failures. */
export type AttemptOutcome = 'failed' | 'passed' | 'abandoned'

export interface AttemptStore {
  /** Starts an attempt on every budget at once, or on none. */
  acquire (budgets: Budget[], attemptId: string): Promise<AcquireResult>
  /** Ends an attempt; true when it was the failure that locked the first budget (the account). */
  end (budgets: Budget[], attemptId: string, outcome: AttemptOutcome, windowMs: number): Promise<boolean>
}

/** In-process budgets: one instance's view only. Bounded: the oldest keys go first when full. */
export function createMemoryAttemptStore (maxKeys = 100_000, now = () => Date.now()): AttemptStore {
  const failures = new Map<string, { count: number, endsAt: number }>()
  const running = new Map<string, number>()
  const failuresOf = (key: string, t: number) => {
    const entry = failures.get(key)
    if (entry && entry.endsAt <= t) failures.delete(key)
    return entry && entry.endsAt > t ? entry : undefined
  }
  return {
    // Synchronous inside: no other attempt can interleave between the check and the count.
    async acquire (budgets) {
      const t = now()
      for (const [index, { key, max }] of budgets.entries()) {
        const failed = failuresOf(key, t)
        if (failed && failed.count >= max) return { state: 'locked', ttlMs: failed.endsAt - t, budget: index }
        if ((failed?.count ?? 0) + (running.get(key) ?? 0) >= max) return { state: 'busy', budget: index }
      }
      for (const { key } of budgets) running.set(key, (running.get(key) ?? 0) + 1)
      return { state: 'acquired' }
    },
    async end (budgets, _attemptId, outcome, windowMs) {
      const t = now()
      for (const { key } of budgets) {
        const left = (running.get(key) ?? 0) - 1
        if (left > 0) running.set(key, left)
        else running.delete(key)
      }
      if (outcome === 'passed') failures.delete(budgets[0].key)
      if (outcome !== 'failed') return false
      for (const { key } of budgets) {
        const entry = failuresOf(key, t)
        if (entry) entry.count++
        else failures.set(key, { count: 1, endsAt: t + windowMs })
      }
      const locked = failures.get(budgets[0].key)!.count === budgets[0].max
      for (const oldest of failures.keys()) {
        if (failures.size <= maxKeys) break
        failures.delete(oldest)
      }
      return locked
    }
  }
}

// KEYS: a failure counter and a running-attempts set per budget. ARGV: attempt id, how long an
// attempt may hold its place (an instance that dies mid-attempt frees it then), each budget's max.
// Running attempts are a sorted set scored by their expiry, so a lost one expires on its own.
const ACQUIRE_SCRIPT = `
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
local hold = tonumber(ARGV[2])
for i = 1, #KEYS, 2 do
  local budget = (i + 1) / 2
  local failed = tonumber(redis.call('GET', KEYS[i]) or '0')
  local max = tonumber(ARGV[2 + budget])
  if failed >= max then return {1, redis.call('PTTL', KEYS[i]), budget - 1} end
  redis.call('ZREMRANGEBYSCORE', KEYS[i + 1], '-inf', now)
  if failed + redis.call('ZCARD', KEYS[i + 1]) >= max then return {2, 0, budget - 1} end
end
for i = 2, #KEYS, 2 do
  redis.call('ZADD', KEYS[i], now + hold, ARGV[1])
  redis.call('PEXPIRE', KEYS[i], hold)
end
return {0, 0, 0}
`

// KEYS as above. ARGV: attempt id, outcome, window (ms). Returns the first budget's failures after a failure, else 0.
const END_SCRIPT = `
for i = 2, #KEYS, 2 do redis.call('ZREM', KEYS[i], ARGV[1]) end
local first = 0
if ARGV[2] == 'passed' then
  redis.call('DEL', KEYS[1])
elseif ARGV[2] == 'failed' then
  for i = 1, #KEYS, 2 do
    local count = redis.call('INCR', KEYS[i])
    if i == 1 then first = count end
    if redis.call('PTTL', KEYS[i]) < 0 then redis.call('PEXPIRE', KEYS[i], ARGV[3]) end
  end
end
return first
`

/** How long a running attempt holds its place at most: a password check takes well under this. */
const ATTEMPT_HOLD_MS = 30_000

type RedisWithAttempts = RedisClient & {
  attemptAcquire (...args: Array<string | number>): Promise<[number, number, number]>
  attemptEnd (...args: Array<string | number>): Promise<number>
}

// One script takes every budget of an attempt at once (the account's and the client IP's, which
// is shared by every account), so on a Redis Cluster all their keys must hash to one slot: every
// budget key carries the same {hashtag}. Logins are few (AUTH_RATE_LIMIT_MAX) next to the rate
// limits, whose keys spread over the cluster.
const SLOT = '{login-budgets}:'
const keysOf = (budgets: Budget[]) => budgets.flatMap(({ key }) => [`${SLOT}${key}`, `${SLOT}${key}:running`])

/** Budgets shared by every instance through Redis (its keyPrefix applies), each step one atomic script. */
export function createRedisAttemptStore (redis: RedisClient): AttemptStore {
  const client = redis as RedisWithAttempts
  if (typeof client.attemptAcquire !== 'function') {
    client.defineCommand('attemptAcquire', { lua: ACQUIRE_SCRIPT })
    client.defineCommand('attemptEnd', { lua: END_SCRIPT })
  }
  return {
    async acquire (budgets, attemptId) {
      const keys = keysOf(budgets)
      const [state, ttlMs, budget] = await client.attemptAcquire(keys.length, ...keys, attemptId, ATTEMPT_HOLD_MS, ...budgets.map(b => b.max))
      if (state === 0) return { state: 'acquired' }
      return state === 1 ? { state: 'locked', ttlMs, budget } : { state: 'busy', budget }
    },
    async end (budgets, attemptId, outcome, windowMs) {
      const keys = keysOf(budgets)
      // Places are taken so that failures never pass the max: the count reaches it exactly once per window.
      return await client.attemptEnd(keys.length, ...keys, attemptId, outcome, Math.max(1, Math.round(windowMs))) === budgets[0].max
    }
  }
}

/**
 * Redis budgets that degrade to in-process ones, never to "no limit" (see redisOrMemory). An
 * attempt started on Redis and ended in process leaves its place on Redis until it expires.
 */
export function createResilientAttemptStore (redis: RedisClient | null, log: FastifyBaseLogger): AttemptStore {
  const memory = createMemoryAttemptStore()
  if (!redis) return memory
  const pick = redisOrMemory(redis, createRedisAttemptStore(redis), memory, log, 'redis login budget failed; counting in process for now')
  return {
    acquire: (budgets, attemptId) => pick(store => store.acquire(budgets, attemptId)),
    end: (budgets, attemptId, outcome, windowMs) => pick(store => store.end(budgets, attemptId, outcome, windowMs))
  }
}
