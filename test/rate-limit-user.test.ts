import { randomUUID } from 'node:crypto'
import t from 'tap'
import { as, assertError, build, createUser } from './helper.js'

const limits = (ip: number, user: number) => ({ RATE_LIMIT_MAX: String(ip), RATE_LIMIT_USER_MAX: String(user), RATE_LIMIT_WINDOW: '1h' })
const headersOf = (res: { headers: Record<string, unknown> }) =>
  [res.headers['x-ratelimit-limit'], res.headers['x-ratelimit-remaining']].map(String)

t.test('RATE_LIMIT_USER_MAX: an authenticated user has its own budget, whatever its IP; the headers show the tighter', async t => {
  const app = await build(t, {}, limits(100, 3))
  const user = await createUser(app)
  const other = await createUser(app)
  const me = (caller: typeof user | undefined, remoteAddress: string) => as(app, caller, { method: 'GET', url: '/api/v1/auth/me', remoteAddress })

  t.same(headersOf(await me(user, '10.1.0.1')), ['3', '2'], 'the user budget is the tighter')
  t.same(headersOf(await me(user, '10.1.0.2')), ['3', '1'], 'counted per user, from any IP')
  t.same(headersOf(await me(user, '10.1.0.3')), ['3', '0'])
  const limited = await me(user, '10.1.0.4')
  assertError(t, limited, 429, 'RATE_LIMITED', 'the user budget is spent')
  t.same(headersOf(limited), ['3', '0'])
  t.ok(Number(limited.headers['retry-after']) > 0 && Number(limited.headers['retry-after']) <= 3600, 'Retry-After')
  t.ok(Number(limited.headers['x-ratelimit-reset']) > 0)

  t.same(headersOf(await me(other, '10.1.0.4')), ['3', '2'], 'another user from the same IP is not affected')
  const anonymous = await me(undefined, '10.1.0.4')
  t.equal(anonymous.statusCode, 401)
  t.same(headersOf(anonymous), ['100', '97'], 'an anonymous request spends and shows the IP budget only')
  const metrics = await app.inject({ method: 'GET', url: '/metrics' })
  t.match(metrics.body, /rate_limit_rejections_total\{budget="user"\} 1/)
})

t.test('the IP budget still applies to authenticated requests, and shows when it is the tighter', async t => {
  const app = await build(t, {}, limits(3, 100))
  const user = await createUser(app)
  const get = () => as(app, user, { method: 'GET', url: '/api/v1/auth/me', remoteAddress: '10.1.1.1' })
  t.same(headersOf(await get()), ['3', '2'])
  t.same(headersOf(await get()), ['3', '1'])
  t.same(headersOf(await get()), ['3', '0'])
  assertError(t, await get(), 429, 'RATE_LIMITED', 'the IP budget is spent first')
})

t.test('with Redis the user budget is counted across instances', { skip: !(process.env.REDIS_URL && process.env.DATABASE_URL) && 'REDIS_URL and DATABASE_URL not set' }, async t => {
  const redisKeyPrefix = `test:${randomUUID()}:`
  const a = await build(t, { redisKeyPrefix }, limits(1000, 4))
  const b = await build(t, { redisKeyPrefix }, limits(1000, 4))
  const user = await createUser(a)
  const me = (app: typeof a, remoteAddress: string) => as(app, user, { method: 'GET', url: '/api/v1/auth/me', remoteAddress })
  t.same(headersOf(await me(a, '10.1.2.1')), ['4', '3'])
  t.same(headersOf(await me(b, '10.1.2.2')), ['4', '2'], 'the second instance sees the first one\'s count')
  t.same(headersOf(await me(a, '10.1.2.3')), ['4', '1'])
  t.same(headersOf(await me(b, '10.1.2.4')), ['4', '0'])
  assertError(t, await me(a, '10.1.2.5'), 429, 'RATE_LIMITED', 'spent on one instance')
  assertError(t, await me(b, '10.1.2.6'), 429, 'RATE_LIMITED', 'and on the other')
  t.ok(await a.redis!.exists(`rl:user:${user.id}`), 'the counter lives in Redis')
})
