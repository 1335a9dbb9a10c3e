import { randomUUID } from 'node:crypto'
import t from 'tap'
import pg from 'pg'
import { buildApp } from '../src/app.js'
import { as, createUser, testConfig, validateResponses } from './helper.js'

const skip = process.env.DATABASE_URL ? false : 'needs DATABASE_URL (CI runs it against the local PostgreSQL)'

t.test('a database that drops every connection does not crash the service; it recovers by itself', { skip }, async t => {
  const base = new URL(process.env.DATABASE_URL!)
  const name = `resilience_${randomUUID().slice(0, 8)}`
  const admin = new pg.Client({ connectionString: base.toString() })
  await admin.connect()
  await admin.query(`create database ${name}`)
  t.teardown(async () => {
    await admin.query(`drop database if exists ${name} with (force)`)
    await admin.end()
  })
  const url = new URL(base); url.pathname = `/${name}`
  const app = await buildApp(testConfig({ databaseUrl: url.toString() }))
  await app.ready()
  validateResponses(app)
  t.teardown(() => app.close())

  const user = await createUser(app)
  const get = () => as(app, user, { method: 'GET', url: `/api/v1/users/${user.id}` })
  t.equal((await get()).statusCode, 200)

  // What a restart or failover looks like from the pool: every server connection ends at once.
  const killed = await admin.query('select pg_terminate_backend(pid) from pg_stat_activity where datname = $1', [name])
  t.ok(killed.rowCount! > 0, 'connections were terminated')

  const statuses: number[] = []
  for (let i = 0; i < 5; i++) {
    const res = await get()
    statuses.push(res.statusCode)
    if (res.statusCode !== 200) {
      t.equal(res.statusCode, 503, 'a lost connection is 503, never 500')
      t.equal(res.json().error.code, 'SERVICE_UNAVAILABLE')
      t.equal(res.headers['retry-after'], '2', 'with Retry-After')
    }
  }
  t.equal(statuses[statuses.length - 1], 200, `recovered (statuses: ${statuses.join(',')})`)
  const ready = await app.inject({ method: 'GET', url: '/health/ready' })
  t.equal(ready.statusCode, 200)
})

t.test('a statement ended by DB_STATEMENT_TIMEOUT is 503 with Retry-After, not 500', { skip }, async t => {
  const app = await buildApp(testConfig({ dbStatementTimeoutMs: 300 }))
  await app.ready()
  t.teardown(() => app.close())
  const user = await createUser(app)
  const locker = new pg.Client({ connectionString: process.env.DATABASE_URL })
  await locker.connect()
  t.teardown(() => locker.end())
  await locker.query('begin')
  await locker.query('lock table users in access exclusive mode')
  try {
    const res = await as(app, user, { method: 'GET', url: `/api/v1/users/${user.id}` })
    t.equal(res.statusCode, 503, `blocked by a lock: ${res.body}`)
    t.equal(res.json().error.code, 'SERVICE_UNAVAILABLE')
    t.equal(res.headers['retry-after'], '2', 'with Retry-After')
  } finally {
    await locker.query('rollback')
  }
  t.equal((await as(app, user, { method: 'GET', url: `/api/v1/users/${user.id}` })).statusCode, 200, 'fine once the lock is gone')
})

t.test('every transient database failure is 503 SERVICE_UNAVAILABLE with Retry-After', async t => {
  const app = await buildApp(testConfig())
  t.teardown(() => app.close())
  const failures: Record<string, object> = {
    'connection refused': { code: 'ECONNREFUSED' },
    'server shutting down': { code: '57P01' },
    'pool exhausted': { message: 'timeout exceeded when trying to connect' },
    'statement timeout': { code: '57014' },
    'lock timeout': { code: '55P03' }
  }
  app.get('/fail/:kind', async request => { throw Object.assign(new Error('database failure'), failures[(request.params as { kind: string }).kind]) })
  await app.ready()
  for (const kind of Object.keys(failures)) {
    const res = await app.inject({ url: `/fail/${encodeURIComponent(kind)}` })
    t.equal(res.statusCode, 503, `${kind}: 503`)
    t.equal(res.json().error.code, 'SERVICE_UNAVAILABLE', `${kind}: code`)
    t.equal(res.headers['retry-after'], '2', `${kind}: Retry-After`)
  }
})
