import { randomUUID } from 'node:crypto'
import { setTimeout as sleep } from 'node:timers/promises'
import t from 'tap'
import { assertError, build, uniqueEmail } from './helper.js'

const limits = (api: number, auth: number) => ({ RATE_LIMIT_MAX: String(api), AUTH_RATE_LIMIT_MAX: String(auth), RATE_LIMIT_WINDOW: '1h' })
const login = (email = uniqueEmail('rl')) => ({ method: 'POST' as const, url: '/api/v1/auth/login', payload: { email, password: 'Wrong-password-1' } })

t.test('every /api/v1 answer carries the rate-limit headers, 401 and 404 included; operational routes do not', async t => {
  const app = await build(t, {}, limits(50, 10))
  for (const url of ['/api/v1/users', '/api/v1/roles', '/api/v1/nope', '/api/v1/health']) {
    const res = await app.inject({ method: 'GET', url })
    t.equal(res.headers['x-ratelimit-limit'], '50', `${url} (${res.statusCode}): limit`)
    t.ok(Number(res.headers['x-ratelimit-remaining']) < 50, `${url}: remaining`)
    t.ok(Number(res.headers['x-ratelimit-reset']) > 0, `${url}: reset in seconds`)
  }
  // A merge-patch body off PATCH was refused before the limit counted it (found by test/openapi-validator.ts).
  const mergePatch = await app.inject({ method: 'POST', url: '/api/v1/auth/login', headers: { 'content-type': 'application/merge-patch+json' }, payload: '{}' })
  t.equal(mergePatch.statusCode, 415, 'merge-patch on POST is 415')
  t.equal(mergePatch.headers['x-ratelimit-limit'], '10', 'and counted on the auth budget')
  for (const url of ['/health', '/health/ready', '/metrics', '/openapi.json']) {
    const res = await app.inject({ method: 'GET', url })
    t.equal(res.statusCode, 200, url)
    t.notOk(res.headers['x-ratelimit-limit'], `${url} is not rate limited`)
  }
})

t.test('over the global limit: 429 RATE_LIMITED in the envelope with Retry-After, per client IP', async t => {
  const app = await build(t, {}, limits(3, 100))
  const get = (remoteAddress = '10.0.0.1') => app.inject({ method: 'GET', url: '/api/v1/users', remoteAddress })
  const remaining = []
  for (let i = 0; i < 3; i++) remaining.push((await get()).headers['x-ratelimit-remaining'])
  t.same(remaining, ['2', '1', '0'])
  const limited = await get()
  assertError(t, limited, 429, 'RATE_LIMITED')
  const retryAfter = Number(limited.headers['retry-after'])
  t.ok(retryAfter > 0 && retryAfter <= 3600, `Retry-After in seconds (${retryAfter})`)
  t.equal(limited.headers['x-ratelimit-remaining'], '0')

  const otherClient = await get('10.0.0.2')
  t.equal(otherClient.statusCode, 401, 'another IP has its own budget (and gets the real answer)')
  t.equal(otherClient.headers['x-ratelimit-remaining'], '2')
})

t.test('auth routes have their own stricter budget, per route', async t => {
  const app = await build(t, {}, limits(1000, 2))
  const remoteAddress = '10.0.1.1'
  for (let i = 0; i < 2; i++) {
    const res = await app.inject({ ...login(), remoteAddress })
    t.equal(res.statusCode, 401, `login ${i + 1} is answered`)
    t.equal(res.headers['x-ratelimit-limit'], '2')
  }
  const limited = await app.inject({ ...login(), remoteAddress })
  assertError(t, limited, 429, 'RATE_LIMITED', 'third login')
  t.ok(Number(limited.headers['retry-after']) > 0, 'Retry-After')

  const forgot = await app.inject({ method: 'POST', url: '/api/v1/auth/password/forgot', payload: { email: uniqueEmail() }, remoteAddress })
  t.equal(forgot.statusCode, 202, 'password/forgot is a separate budget')
  t.equal(forgot.headers['x-ratelimit-limit'], '2')
  const other = await app.inject({ method: 'GET', url: '/api/v1/users', remoteAddress })
  t.equal(other.headers['x-ratelimit-limit'], '1000', 'other routes use the general limit')

  for (const url of ['/api/v1/auth/register', '/api/v1/auth/refresh', '/api/v1/auth/password/reset', '/api/v1/auth/email/verify']) {
    const res = await app.inject({ method: 'POST', url, payload: {}, remoteAddress })
    t.equal(res.headers['x-ratelimit-limit'], '2', `${url} has the auth limit`)
  }
})

// The contract's auth routes: each declares the auth budget on itself, so renaming or moving one
// must not silently put it on the general budget.
const CONTRACT_AUTH_ROUTES = ['login', 'register', 'refresh', 'password/forgot', 'password/reset', 'email/verify']

t.test('each of the contract\'s auth routes spends AUTH_RATE_LIMIT_MAX; other routes, writes included, RATE_LIMIT_MAX', async t => {
  const app = await build(t, {}, limits(777, 7))
  const remoteAddress = '10.0.1.9'
  for (const route of CONTRACT_AUTH_ROUTES) {
    const res = await app.inject({ method: 'POST', url: `/api/v1/auth/${route}`, payload: {}, remoteAddress })
    t.equal(res.headers['x-ratelimit-limit'], '7', `POST /api/v1/auth/${route} (${res.statusCode}) has the auth limit`)
    t.equal(res.headers['x-ratelimit-remaining'], '6', `POST /api/v1/auth/${route} has a budget of its own`)
  }
  const general = [
    ['GET', '/api/v1/users'], ['POST', '/api/v1/users'], ['POST', '/api/v1/auth/logout'], ['POST', '/api/v1/auth/password/change'],
    ['POST', '/api/v1/auth/email/verify/resend'], ['GET', '/api/v1/auth/me'], ['GET', '/api/v1/health'], ['GET', '/api/v1/nope'],
    ['DELETE', '/api/v1/auth/login']
  ] as const
  for (const [method, url] of general) {
    const res = await app.inject({ method, url, remoteAddress })
    t.equal(res.headers['x-ratelimit-limit'], '777', `${method} ${url} (${res.statusCode}) has the general limit`)
  }
})

t.test('X-Forwarded-For is ignored unless TRUST_PROXY is set', async t => {
  const remaining = async (env: Record<string, string>) => {
    const app = await build(t, {}, { ...limits(10, 10), ...env })
    const out = []
    for (const ip of ['203.0.113.1', '203.0.113.2']) {
      const res = await app.inject({ method: 'GET', url: '/api/v1/users', headers: { 'x-forwarded-for': ip } })
      out.push(res.headers['x-ratelimit-remaining'])
    }
    return out
  }
  t.same(await remaining({}), ['9', '8'], 'by default both requests count against the socket address')
  t.same(await remaining({ TRUST_PROXY: 'true' }), ['9', '9'], 'behind a trusted proxy each forwarded client has its own budget')
})

t.test('an IPv6 client is counted by its /64, and an IPv4-mapped address as the IPv4 one', async t => {
  const app = await build(t, {}, limits(10, 10))
  const remaining = async (remoteAddress: string) =>
    (await app.inject({ method: 'GET', url: '/api/v1/users', remoteAddress })).headers['x-ratelimit-remaining']
  t.equal(await remaining('2001:db8:1:2::1'), '9')
  t.equal(await remaining('2001:db8:1:2:ffff::9'), '8', 'another address of the same /64 shares its budget')
  t.equal(await remaining('2001:db8:1:3::1'), '9', 'the next /64 has its own')
  t.equal(await remaining('198.51.100.7'), '9')
  t.equal(await remaining('::ffff:198.51.100.7'), '8', 'the mapped form is the same client')
})

t.test('with Redis the counts are shared by every instance', { skip: !process.env.REDIS_URL && 'REDIS_URL not set' }, async t => {
  const redisKeyPrefix = `test:${randomUUID()}:`
  const a = await build(t, { redisKeyPrefix }, limits(2, 100))
  const b = await build(t, { redisKeyPrefix }, limits(2, 100))
  t.equal(a.redis?.status, 'ready')
  const get = (app: typeof a) => app.inject({ method: 'GET', url: '/api/v1/users', remoteAddress: '10.0.2.1' })
  t.equal((await get(a)).headers['x-ratelimit-remaining'], '1')
  t.equal((await get(b)).headers['x-ratelimit-remaining'], '0', 'the second instance sees the first one\'s count')
  assertError(t, await get(a), 429, 'RATE_LIMITED')
  t.ok(await a.redis!.exists('rl:api:10.0.2.1'), 'the counter lives in Redis under the app\'s prefix')
  const ready = await a.inject({ method: 'GET', url: '/health/ready' })
  t.same(ready.json().data, { status: 'ok', checks: { database: 'ok', redis: 'ok' } }, 'readiness checks Redis')
})

t.test('with Redis, two instances counting in batches admit at most RATE_LIMIT_MAX + 2 × 1 % between them, with the headers on every answer', { skip: !process.env.REDIS_URL && 'REDIS_URL not set' }, async t => {
  const redisKeyPrefix = `test:${randomUUID()}:`
  const max = 300
  const apps = [await build(t, { redisKeyPrefix }, limits(max, 100)), await build(t, { redisKeyPrefix }, limits(max, 100))]
  let admitted = 0
  const faults: string[] = []
  for (let round = 0; round < 75; round++) {
    const answers = await Promise.all(apps.flatMap(app => [0, 1, 2].map(() => app.inject({ method: 'GET', url: '/api/v1/nope', remoteAddress: '10.0.2.9' }))))
    for (const { statusCode, headers } of answers) {
      if (headers['x-ratelimit-limit'] !== String(max) || headers['x-ratelimit-remaining'] === undefined || !(Number(headers['x-ratelimit-reset']) > 0)) faults.push(`headers ${JSON.stringify(headers)}`)
      if (statusCode === 429 && !(Number(headers['retry-after']) > 0)) faults.push('429 without Retry-After')
      if (statusCode !== 429) admitted++
    }
    await sleep(5)
  }
  t.same(faults, [], 'every answer has the x-ratelimit-* headers, every 429 Retry-After')
  t.ok(admitted >= max && admitted <= max + 2 * 3, `${admitted} admitted of 450 (budget ${max}, bound ${max + 6})`)
})

t.test('without Redis each instance counts in process', { skip: !!process.env.REDIS_URL && 'REDIS_URL is set' }, async t => {
  const a = await build(t, {}, limits(2, 100))
  const b = await build(t, {}, limits(2, 100))
  t.equal(a.redis, null)
  const get = (app: typeof a) => app.inject({ method: 'GET', url: '/api/v1/users', remoteAddress: '10.0.2.1' })
  t.equal((await get(a)).headers['x-ratelimit-remaining'], '1')
  t.equal((await get(b)).headers['x-ratelimit-remaining'], '1')
})

t.test('Redis down: the app starts, never hangs or fails, and still enforces the limits in process', async t => {
  const started = Date.now()
  const app = await build(t, {}, { ...limits(3, 2), REDIS_URL: 'redis://127.0.0.1:1' })
  t.ok(Date.now() - started < 30_000, 'start does not wait for Redis')
  t.not(app.redis?.status, 'ready')

  const remoteAddress = '10.0.3.1'
  const statuses = []
  for (let i = 0; i < 4; i++) statuses.push((await app.inject({ method: 'GET', url: '/api/v1/users', remoteAddress })).statusCode)
  t.same(statuses, [401, 401, 401, 429], 'the general limit still applies')

  const logins = []
  for (let i = 0; i < 3; i++) logins.push((await app.inject({ ...login(), remoteAddress })).statusCode)
  t.same(logins, [401, 401, 429], 'the auth limit still applies')

  const ready = await app.inject({ method: 'GET', url: '/health/ready' })
  const error = assertError(t, ready, 503, 'SERVICE_UNAVAILABLE', 'readiness')
  t.same(error.details, [{ field: 'redis', message: 'redis is not reachable' }])
})

t.test('a Redis that fails mid-flight degrades to in-process counting, not to errors', { skip: !process.env.REDIS_URL && 'REDIS_URL not set' }, async t => {
  const app = await build(t, {}, limits(2, 100))
  t.equal(app.redis?.status, 'ready')
  const client = app.redis as unknown as { windowHit: () => Promise<never> }
  client.windowHit = async () => { throw new Error('Command timed out') }
  const statuses = []
  for (let i = 0; i < 3; i++) statuses.push((await app.inject({ method: 'GET', url: '/api/v1/users', remoteAddress: '10.0.4.1' })).statusCode)
  t.same(statuses, [401, 401, 429])
})
