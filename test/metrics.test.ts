import { randomUUID } from 'node:crypto'
import t from 'tap'
import { sql } from 'kysely'
import { build, testConfig } from './helper.js'

t.test('GET /metrics: Prometheus text with process defaults and request durations by route template', async t => {
  const app = await build(t)
  await app.inject({ method: 'GET', url: `/api/v1/users/${randomUUID()}` })
  await app.inject({ method: 'GET', url: '/health' })
  await app.inject({ method: 'GET', url: `/no/such/${randomUUID()}` })

  const res = await app.inject({ method: 'GET', url: '/metrics' })
  t.equal(res.statusCode, 200)
  t.match(res.headers['content-type'], /^text\/plain; version=0\.0\.4/)
  t.match(res.body, /^process_cpu_user_seconds_total \d/m, 'default process metrics')
  t.match(res.body, /^nodejs_eventloop_lag_seconds /m, 'default Node.js metrics')
  t.match(res.body, /^# TYPE http_request_duration_seconds histogram$/m)
  t.match(res.body, /^http_request_duration_seconds_count\{route="\/api\/v1\/users\/:id",method="GET",status_code="401"\} 1$/m, 'labelled by route template')
  t.match(res.body, /^http_request_duration_seconds_bucket\{le="0\.005",route="\/health",method="GET",status_code="200"\} \d+$/m)
  t.match(res.body, /route="unmatched",method="GET",status_code="404"/, 'unknown URLs share one label')
  t.notMatch(res.body, /\/no\/such\//, 'raw URLs never become labels')
})

t.test('/metrics is not part of the OpenAPI document', async t => {
  const app = await build(t)
  const doc = (await app.inject({ method: 'GET', url: '/openapi.json' })).json()
  t.ok(doc.paths['/api/v1/roles'], 'the document lists the API')
  t.notOk(doc.paths['/metrics'])
})

t.test('/metrics on the API port answers only the addresses in METRICS_ALLOW (default loopback)', async t => {
  const app = await build(t)
  t.equal((await app.inject({ url: '/metrics' })).statusCode, 200, 'loopback')
  t.equal((await app.inject({ url: '/metrics', remoteAddress: '::1' })).statusCode, 200, 'IPv6 loopback')
  const outside = await app.inject({ url: '/metrics', remoteAddress: '203.0.113.9', headers: { 'x-forwarded-for': '127.0.0.1' } })
  t.equal(outside.statusCode, 403, 'another address, whatever X-Forwarded-For says')
  t.equal(outside.json().error.code, 'FORBIDDEN')

  const listed = await build(t, { metricsAllow: ['10.0.0.0/8'] })
  t.equal((await listed.inject({ url: '/metrics', remoteAddress: '10.1.2.3' })).statusCode, 200, 'a listed network')
  t.equal((await listed.inject({ url: '/metrics' })).statusCode, 403, 'loopback is no longer listed')
  t.throws(() => testConfig({}, { METRICS_ALLOW: 'not-an-address' }), /METRICS_ALLOW/, 'a bad entry stops the start')
})

t.test('with METRICS_PORT /metrics is served there, and not on the API port', async t => {
  const app = await build(t, { metricsPort: 0 })
  const address = app.metricsAddress()
  t.ok(address?.port, 'listening once ready')
  const res = await fetch(`http://127.0.0.1:${address!.port}/metrics`)
  t.equal(res.status, 200)
  t.match(await res.text(), /^process_cpu_user_seconds_total \d/m)
  t.equal((await fetch(`http://127.0.0.1:${address!.port}/other`)).status, 404)
  t.equal((await app.inject({ url: '/metrics' })).statusCode, 404, 'not on the API port')
})

t.test('the service metrics: statements by kind, rate-limit rejections, logins, refreshes, job backlog, Redis fallback', async t => {
  const app = await build(t, { authRateLimitMax: 3, loginMaxFailures: 2 })
  const scrape = async () => (await app.inject({ url: '/metrics' })).body
  const value = (text: string, series: string) => Number(new RegExp(`^${series.replace(/[{}]/g, '\\$&')} (\\S+)$`, 'm').exec(text)?.[1] ?? 0)
  const email = `metrics-${randomUUID().slice(0, 8)}@example.test`
  await app.inject({ method: 'POST', url: '/api/v1/auth/register', payload: { email, password: 'Correct-Horse-9', firstName: 'M', lastName: 'E' } })
  const login = (password: string, ip = '10.0.0.1') => app.inject({ method: 'POST', url: '/api/v1/auth/login', payload: { email, password }, remoteAddress: ip })
  const ok = await login('Correct-Horse-9')
  await login('wrong-password-1', '10.0.0.2')
  await login('wrong-password-2', '10.0.0.3')
  t.equal((await login('Correct-Horse-9', '10.0.0.4')).statusCode, 429, 'locked after two failures')
  const { refreshToken } = ok.json().data
  const refresh = (token: string) => app.inject({ method: 'POST', url: '/api/v1/auth/refresh', payload: { refreshToken: token }, remoteAddress: '10.0.0.5' })
  t.equal((await refresh(refreshToken)).statusCode, 200)
  t.equal((await refresh(refreshToken)).statusCode, 401, 'reused')
  await refresh(refreshToken)
  t.equal((await refresh(refreshToken)).statusCode, 429, 'the auth budget of 3 is spent')

  const text = await scrape()
  t.equal(value(text, 'logins_total{outcome="success"}'), 1, 'a success')
  t.equal(value(text, 'logins_total{outcome="failure"}'), 2, 'two failures')
  t.equal(value(text, 'logins_total{outcome="locked"}'), 1, 'one refused while locked')
  t.equal(value(text, 'refresh_rotations_total'), 1)
  t.equal(value(text, 'refresh_reuse_detections_total'), 2, 'each replay')
  t.equal(value(text, 'rate_limit_rejections_total{budget="auth"}'), 1)
  t.ok(value(text, 'db_query_duration_seconds_count{kind="select"}') > 0, 'selects timed')
  t.ok(value(text, 'db_query_duration_seconds_count{kind="insert"}') > 0, 'inserts timed')
  t.ok(value(text, 'db_query_duration_seconds_count{kind="update"}') > 0, 'updates timed (the rotation CTE counts as one)')
  t.ok(value(text, 'jobs_backlog{queue="email.send"}') >= 1, 'the verification email waits (no delivery worker in tests)')
  t.ok(value(text, 'jobs_oldest_pending_age_seconds{queue="email.send"}') >= 0, 'with its age')
  t.equal(value(text, 'redis_fallback_active'), 0, 'Redis, when configured, is in use')
  t.match(text, /^process_resident_memory_bytes \d/m, 'RSS')
  t.match(text, /^nodejs_heap_size_used_bytes \d/m, 'heap')
  t.match(text, /^nodejs_eventloop_lag_seconds \d/m, 'event-loop delay')
})

t.test('database pool: open and idle connections and queries waiting for one (PostgreSQL; no pool embedded)', async t => {
  const app = await build(t, { dbPoolSize: 2 })
  const value = (text: string, series: string) => new RegExp(`^${series.replace(/[{}]/g, '\\$&')} (\\S+)$`, 'm').exec(text)?.[1]
  if (!process.env.DATABASE_URL) {
    const text = (await app.inject({ url: '/metrics' })).body
    t.equal(value(text, 'db_pool_connections{state="open"}'), undefined, 'no pool series on the embedded database')
    t.equal(value(text, 'db_pool_waiting_requests'), '0', 'and nothing waits')
    return
  }
  // Three slow statements on a pool of two: two connections busy, one query queued, while scraping.
  const slow = Array.from({ length: 3 }, () => sql`select pg_sleep(0.5)`.execute(app.database.db))
  await new Promise(resolve => setTimeout(resolve, 150))
  const busy = (await app.inject({ url: '/metrics' })).body
  t.equal(value(busy, 'db_pool_connections{state="open"}'), '2', 'the pool is at its size')
  t.equal(value(busy, 'db_pool_connections{state="idle"}'), '0', 'no connection is free')
  t.ok(Number(value(busy, 'db_pool_waiting_requests')) >= 1, 'the third query waits')
  await Promise.all(slow)
  const quiet = (await app.inject({ url: '/metrics' })).body
  t.equal(value(quiet, 'db_pool_waiting_requests'), '0', 'nothing waits once they are done')
  t.equal(value(quiet, 'db_pool_connections{state="idle"}'), value(quiet, 'db_pool_connections{state="open"}'), 'every open connection is idle again')
})

t.test('statementKind names a statement by its first data-changing word', async t => {
  const { statementKind } = await import('../src/lib/app-metrics.js')
  t.equal(statementKind('select 1'), 'select')
  t.equal(statementKind('  INSERT into x values (1)'), 'insert')
  t.equal(statementKind('with spent as (update refresh_tokens set x = 1 returning *) select * from spent'), 'update')
  t.equal(statementKind('with a as (select 1) select * from a'), 'select')
  t.equal(statementKind('(select 1) union (select 2)'), 'select')
  t.equal(statementKind('begin'), 'other')
})
