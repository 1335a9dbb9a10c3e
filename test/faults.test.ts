import { spawn, type ChildProcess } from 'node:child_process'
import { setTimeout as sleep } from 'node:timers/promises'
import t from 'tap'
import pg from 'pg'
import { buildApp } from '../src/app.js'
import { as, createUser, freePort, testConfig, uniqueEmail, PASSWORD } from './helper.js'
import { needsPostgres, ownPostgres, run } from './own-servers.js'

// Faults injected into a PostgreSQL server and a Redis of the test's own (test/own-servers.ts),
// never the machine's shared ones. Needs PostgreSQL's server binaries and redis-server.
const skip = needsPostgres

t.test('PostgreSQL stopped under load: 503 with Retry-After in bounded time, liveness up, readiness down, recovery on its own', { skip }, async t => {
  const db = await ownPostgres(t)
  const app = await buildApp(testConfig({ databaseUrl: db.url, dbPoolSize: 4 }))
  await app.ready()
  t.teardown(() => app.close())
  const user = await createUser(app)

  const seen = new Map<number, number>()
  let slowest = 0
  let unexpected = ''
  const load = { running: true }
  const worker = async () => {
    while (load.running) {
      const started = Date.now()
      const res = await as(app, user, { method: 'GET', url: `/api/v1/users/${user.id}` })
      slowest = Math.max(slowest, Date.now() - started)
      seen.set(res.statusCode, (seen.get(res.statusCode) ?? 0) + 1)
      if (res.statusCode === 503 && (res.json().error.code !== 'SERVICE_UNAVAILABLE' || !res.headers['retry-after'])) unexpected = res.body
      if (res.statusCode !== 200 && res.statusCode !== 503) unexpected = `${res.statusCode} ${res.body}`
      if (res.statusCode === 503) await sleep(20)
    }
  }
  const workers = Array.from({ length: 8 }, worker)
  await sleep(300)
  await db.stop()
  await sleep(300)
  t.equal((await app.inject({ url: '/health' })).statusCode, 200, 'liveness answers while the database is down')
  t.equal((await app.inject({ url: '/health/ready' })).statusCode, 503, 'readiness is 503 while it is down')
  await sleep(700)
  await db.start()
  const restarted = Date.now()
  let recoveredMs = -1
  while (Date.now() - restarted < 10_000) {
    if ((await as(app, user, { method: 'GET', url: `/api/v1/users/${user.id}` })).statusCode === 200) { recoveredMs = Date.now() - restarted; break }
    await sleep(50)
  }
  load.running = false
  await Promise.all(workers)

  t.equal(unexpected, '', 'only 200 and 503 SERVICE_UNAVAILABLE with Retry-After')
  t.ok((seen.get(503) ?? 0) > 0, `503s while down (${JSON.stringify(Object.fromEntries(seen))})`)
  t.ok(slowest < 6000, `no request hung (slowest ${slowest} ms)`)
  t.ok(recoveredMs >= 0 && recoveredMs < 5000, `recovered ${recoveredMs} ms after the restart, without a restart of its own`)
  t.equal((await app.inject({ url: '/health/ready' })).statusCode, 200, 'ready again')
})

t.test('an exhausted pool answers 503 after a bounded wait; backends killed mid-write leave no partial rows', { skip }, async t => {
  const db = await ownPostgres(t)
  const app = await buildApp(testConfig({ databaseUrl: db.url, dbPoolSize: 2 }))
  await app.ready()
  t.teardown(() => app.close())
  const admin = await createUser(app, { roles: ['admin'] })

  // Both pooled connections held by transactions that wait on a lock: the next request waits for
  // a connection at most the pool's acquire timeout (5 s), then is 503.
  const locker = new pg.Client({ connectionString: db.url })
  await locker.connect()
  t.teardown(() => locker.end())
  await locker.query('begin')
  await locker.query('lock table user_profiles in access exclusive mode')
  const held = Array.from({ length: 2 }, (_, i) => as(app, admin, { method: 'PATCH', url: `/api/v1/users/${admin.id}/profile`, payload: { bio: `held ${i}` } }))
  await sleep(200)
  const started = Date.now()
  const waiting = await as(app, admin, { method: 'GET', url: `/api/v1/users/${admin.id}` })
  const waitedMs = Date.now() - started
  t.equal(waiting.statusCode, 503, 'pool exhausted: 503')
  t.ok(waiting.headers['retry-after'], 'with Retry-After')
  t.ok(waitedMs < 7000, `after a bounded wait (${waitedMs} ms)`)
  await locker.query('rollback')
  for (const res of await Promise.all(held)) t.equal(res.statusCode, 200, 'the held requests finish once the lock is gone')

  // Creates (user, profile, roles and audit row in one transaction) while every backend is killed.
  const emails = Array.from({ length: 24 }, () => uniqueEmail('fault'))
  const creates = Promise.all(emails.map(async (email, i) => {
    await sleep(i * 10)
    return as(app, admin, { method: 'POST', url: '/api/v1/users', payload: { email, password: PASSWORD, firstName: 'F', lastName: 'T', profile: { bio: 'written with the user' } } })
  }))
  await sleep(60)
  await locker.query("select pg_terminate_backend(pid) from pg_stat_activity where application_name = 'user-management-api' and pid <> pg_backend_pid()")
  const statuses = (await creates).map(res => res.statusCode)
  t.ok(statuses.every(s => s === 201 || s === 503), `only 201 and 503 (${statuses.join(',')})`)
  const { rows } = await locker.query(`select u.email, (select count(*) from user_profiles p where p.user_id = u.id)::int as profiles,
      (select count(*) from user_roles r where r.user_id = u.id)::int as roles,
      (select count(*) from user_audit_log a where a.user_id = u.id and a.action = 'user.created')::int as audits
    from users u where u.email = any($1)`, [emails])
  t.ok(rows.every(r => r.profiles === 1 && r.roles === 1 && r.audits === 1), `every user that exists is whole: profile, role and audit row (${JSON.stringify(rows.slice(0, 3))})`)
  const created = new Set(rows.map(r => r.email))
  emails.forEach((email, i) => { if (statuses[i] === 201) t.ok(created.has(email), `a 201 was kept (${email})`) })
})

t.test('Redis paused or stopped costs requests nothing and fails none', async t => {
  const port = await freePort()
  let redis: ChildProcess = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], { stdio: 'ignore' })
  t.teardown(() => { redis.kill('SIGKILL') })
  for (let i = 0; i < 50 && !(await run('redis-cli', ['-p', String(port), 'ping']).then(r => r.stdout.includes('PONG'), () => false)); i++) await sleep(100)
  const app = await buildApp(testConfig({ redisUrl: `redis://127.0.0.1:${port}` }))
  await app.ready()
  t.teardown(() => app.close())
  const user = await createUser(app)
  const timed = async () => {
    const started = Date.now()
    const res = await as(app, user, { method: 'GET', url: `/api/v1/users/${user.id}` })
    return { status: res.statusCode, ms: Date.now() - started, limited: res.headers['x-ratelimit-limit'] }
  }
  t.equal((await timed()).status, 200)

  // Paused: every command waits; the fallback answers instead (commands time out after 500 ms).
  const paused = run('redis-cli', ['-p', String(port), 'debug', 'sleep', '3'])
  await sleep(100)
  const during = await Promise.all(Array.from({ length: 20 }, timed))
  t.ok(during.every(r => r.status === 200 && r.limited), 'all 200 with rate-limit headers while Redis is paused')
  t.ok(Math.max(...during.map(r => r.ms)) < 1500, `none waited for Redis (slowest ${Math.max(...during.map(r => r.ms))} ms)`)
  await paused

  redis.kill('SIGKILL')
  await sleep(200)
  const down = await Promise.all(Array.from({ length: 20 }, timed))
  t.ok(down.every(r => r.status === 200 && r.limited), 'all 200 with Redis gone')
  t.ok(Math.max(...down.map(r => r.ms)) < 1500, `and fast (slowest ${Math.max(...down.map(r => r.ms))} ms)`)

  redis = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], { stdio: 'ignore' })
  t.equal((await timed()).status, 200, 'and after it is back')
})
