import { randomUUID } from 'node:crypto'
import { setTimeout as sleep } from 'node:timers/promises'
import t, { type Test } from 'tap'
import { Redis } from 'ioredis'
import pino from 'pino'
import { createBudgetCounter, FLUSH_MS, localAllowanceOf } from '../src/lib/batched-counter.js'
import type { WindowCount } from '../src/lib/window-counter.js'

const REDIS_URL = process.env.REDIS_URL
const needsRedis = { skip: !REDIS_URL && 'REDIS_URL not set' }
const log = pino({ level: 'silent' })
const HOUR = 3_600_000

/** An instance's own client, as each app has; the options the redis plugin uses. */
function client (t: Test, keyPrefix: string, url = REDIS_URL!) {
  const redis = new Redis(url, { keyPrefix, commandTimeout: 500, maxRetriesPerRequest: 1, enableOfflineQueue: false, connectTimeout: 2000 })
  t.teardown(() => { redis.disconnect() })
  return redis
}

/** Counts every command the client writes: blocking hits and flushed pipelines. */
function countRoundTrips (redis: Redis) {
  const counts = { hits: 0, flushes: 0 }
  const hit = (redis as unknown as { windowHit: (...args: unknown[]) => unknown }).windowHit
  if (hit === undefined) throw new Error('windowHit is defined by the first counter')
  // A pipeline borrows the client's script functions and calls them on itself: count only the client's own calls.
  Object.assign(redis, {
    windowHit: function (this: unknown, ...args: unknown[]) {
      if (this === redis) counts.hits++
      return hit.apply(this, args)
    }
  })
  const pipeline = redis.pipeline.bind(redis)
  Object.assign(redis, { pipeline: (...args: Parameters<typeof pipeline>) => { counts.flushes++; return pipeline(...args) } })
  return counts
}

const ready = (redis: Redis) => new Promise(resolve => redis.status === 'ready' ? resolve(null) : redis.once('ready', resolve))

/** Hits in bursts of `burst` per instance per turn, instances taking turns, time passing between turns. */
async function hammer (counters: Array<ReturnType<typeof createBudgetCounter>>, key: string, max: number, total: number, burst: number) {
  let admitted = 0
  let answered = 0
  const pending: Array<Promise<WindowCount>> = []
  const tally = ({ count }: WindowCount) => { answered++; if (count <= max) admitted++ }
  for (let sent = 0; sent < total;) {
    for (const counter of counters) {
      for (let i = 0; i < burst && sent < total; i++, sent++) {
        const counted = counter.take(key, HOUR, max)
        if (counted instanceof Promise) pending.push(counted.then(c => { tally(c); return c })); else tally(counted)
      }
    }
    await sleep(Math.random() * FLUSH_MS / 4)
  }
  await Promise.all(pending)
  return { admitted, answered }
}

t.test('the local allowance is 1 % of the budget, none below 100 (the auth budget is counted in Redis hit by hit)', async t => {
  t.equal(localAllowanceOf(30), 0)
  t.equal(localAllowanceOf(99), 0)
  t.equal(localAllowanceOf(1000), 10)
})

t.test('two instances sharing Redis: the total admitted stays within max + instances × allowance, and most hits cost no round trip', needsRedis, async t => {
  const prefix = `test:${randomUUID()}:`
  const redisA = client(t, prefix)
  const redisB = client(t, prefix)
  await Promise.all([ready(redisA), ready(redisB)])
  const a = createBudgetCounter(redisA, log)
  const b = createBudgetCounter(redisB, log)
  await a.take('warm', HOUR, 1); await b.take('warm', HOUR, 1) // defines the script on both clients
  const trips = [countRoundTrips(redisA), countRoundTrips(redisB)]

  const max = 5000
  const bound = 2 * localAllowanceOf(max)
  const roundTrips = () => trips.reduce((sum, c) => sum + c.hits + c.flushes, 0)
  // Bursts of 3 stay within the allowance between flushes; bursts of 40 exceed it, so most of
  // their hits are counted in Redis one by one: the bound must hold either way.
  for (const burst of [3, 40]) {
    const key = `rl:api:burst-${burst}`
    const before = roundTrips()
    const { admitted, answered } = await hammer([a, b], key, max, 7000, burst)
    await Promise.all([a.close(), b.close()])
    t.equal(answered, 7000)
    t.ok(admitted >= max, `at least the budget is admitted (${admitted}, bursts of ${burst})`)
    t.ok(admitted <= max + bound, `at most max + 2 × allowance = ${max + bound} admitted (${admitted}, bursts of ${burst})`)
    if (burst === 3) t.ok(roundTrips() - before < 7000 / 5, `far fewer round trips than hits (${roundTrips() - before} for 7,000 hits: ${JSON.stringify(trips)})`)
  }
  const global = Number(await redisA.get('rl:api:burst-3'))
  t.ok(global >= max, `Redis holds the global count (${global})`)
})

t.test('one instance alone never over-admits, and never under-admits', needsRedis, async t => {
  const redis = client(t, `test:${randomUUID()}:`)
  await ready(redis)
  const counter = createBudgetCounter(redis, log)
  for (const [max, burst] of [[1000, 1], [1000, 50], [30, 10]]) {
    const { admitted } = await hammer([counter], `rl:k:${max}:${burst}`, max, max + 500, burst)
    t.equal(admitted, max, `exactly ${max} admitted in bursts of ${burst}`)
  }
  await counter.close()
})

t.test('the count, remaining and window come back from Redis: a second instance sees the first one\'s hits after a flush', needsRedis, async t => {
  const prefix = `test:${randomUUID()}:`
  const redisA = client(t, prefix)
  const redisB = client(t, prefix)
  await Promise.all([ready(redisA), ready(redisB)])
  const a = createBudgetCounter(redisA, log)
  const b = createBudgetCounter(redisB, log)
  const first = await a.take('k', 60_000, 1000)
  t.equal(first.count, 1)
  t.ok(first.ttlMs > 59_000 && first.ttlMs <= 60_000, 'the window started in Redis')
  for (let i = 0; i < 5; i++) t.notOk(a.take('k', 60_000, 1000) instanceof Promise, 'later hits are answered in process')
  await sleep(FLUSH_MS * 3)
  const seen = await b.take('k', 60_000, 1000)
  t.equal(seen.count, 7, 'the other instance\'s first hit returns the global count')
  t.ok(seen.ttlMs <= first.ttlMs, 'and the same window')
  await Promise.all([a.close(), b.close()])
})

t.test('a key whose window ended starts again from zero', needsRedis, async t => {
  const redis = client(t, `test:${randomUUID()}:`)
  await ready(redis)
  const counter = createBudgetCounter(redis, log)
  const max = 200
  for (let i = 0; i < max + 5; i++) await counter.take('short', 300, max)
  t.ok((await counter.take('short', 300, max)).count > max, 'spent')
  await sleep(400)
  t.equal((await counter.take('short', 300, max)).count, 1, 'a new window')
  await counter.close()
})

t.test('Redis unreachable: counted in process at once, never hanging, limits on', async t => {
  const redis = client(t, 'test:', 'redis://127.0.0.1:1')
  const counter = createBudgetCounter(redis, log)
  const started = Date.now()
  const counts = []
  for (let i = 0; i < 4; i++) counts.push((await counter.take('k', HOUR, 3)).count)
  t.same(counts, [1, 2, 3, 4], 'the fourth hit is over the limit')
  t.ok(Date.now() - started < 100, 'no wait on Redis')
  await counter.close()
})

t.test('a flush that fails degrades to in-process counting, not to errors', needsRedis, async t => {
  const redis = client(t, `test:${randomUUID()}:`)
  await ready(redis)
  const counter = createBudgetCounter(redis, log)
  t.equal((await counter.take('k', HOUR, 1000)).count, 1)
  for (let i = 0; i < 5; i++) counter.take('k', HOUR, 1000)
  Object.assign(redis, { pipeline: () => ({ windowHit () {}, exec: async () => { throw new Error('Connection is closed') } }) })
  await sleep(FLUSH_MS * 3)
  const after = await counter.take('k', HOUR, 1000)
  t.equal(after.count, 1, 'counted in process from here on (Redis is left alone for a while)')
  await counter.close()
})
