import t from 'tap'
import type { FastifyInstance } from 'fastify'
import { buildApp } from '../src/app.js'
import { ACCESS_AUDIT_BATCH } from '../src/services/access-audit.js'
import { as, build, createUser, ownDatabase, testConfig, validateResponses, type TestUser } from './helper.js'

const viewedRows = (app: FastifyInstance, userId: string) => app.database.db.selectFrom('userAuditLog')
  .select(['actorId', 'userId', 'ip', 'userAgent', 'requestId', 'changes']).where('action', '=', 'user.viewed').where('userId', '=', userId).execute()

async function eventually (check: () => Promise<boolean>, what: string) {
  for (let i = 0; i < 250; i++) {
    if (await check()) return true
    await new Promise(resolve => setTimeout(resolve, 20))
  }
  throw new Error(`timed out waiting for ${what}`)
}

t.test('AUDIT_DATA_ACCESS=true: a read of another user is audited as user.viewed, in the background', async t => {
  const app = await build(t, { accessAuditFlushMs: 20 }, { AUDIT_DATA_ACCESS: 'true' })
  const admin = await createUser(app, { roles: ['admin'] })
  const user = await createUser(app)

  const res = await as(app, admin, { method: 'GET', url: `/api/v1/users/${user.id}`, headers: { 'user-agent': 'viewer-agent' } })
  t.equal(res.statusCode, 200)
  await eventually(async () => (await viewedRows(app, user.id)).length === 1, 'the user.viewed row')
  t.match((await viewedRows(app, user.id))[0], { actorId: admin.id, userId: user.id, ip: String, userAgent: 'viewer-agent', requestId: res.headers['x-request-id'], changes: null })

  // A read of oneself, a list, and a read that fails are not views of another user's record.
  t.equal((await as(app, user, { method: 'GET', url: `/api/v1/users/${user.id}` })).statusCode, 200)
  t.equal((await as(app, admin, { method: 'GET', url: `/api/v1/users?q=${encodeURIComponent(user.email)}` })).statusCode, 200)
  t.equal((await as(app, user, { method: 'GET', url: `/api/v1/users/${admin.id}` })).statusCode, 403)
  // An If-None-Match revalidation (304) is a read too, as is GraphQL's user(id).
  t.equal((await as(app, admin, { method: 'GET', url: `/api/v1/users/${user.id}`, headers: { 'if-none-match': res.headers.etag as string } })).statusCode, 304)
  const gql = await as(app, admin, { method: 'POST', url: '/graphql', payload: { query: 'query ($id: ID!) { user(id: $id) { id } }', variables: { id: user.id } } })
  t.equal(gql.json().data.user.id, user.id)
  await eventually(async () => (await viewedRows(app, user.id)).length === 3, 'three user.viewed rows')
  await new Promise(resolve => setTimeout(resolve, 100))
  const rows = await viewedRows(app, user.id)
  t.equal(rows.length, 3, 'the GET, the 304 and the GraphQL read; not the own read, the list or the refused read')
  t.ok(rows.every(row => row.actorId === admin.id))
  t.equal((await viewedRows(app, admin.id)).length, 0, 'the refused read of the admin is not a view')

  // An audit row only: no event (which would copy the viewed record to every webhook and stream), unlike other actions.
  const events = await app.database.db.selectFrom('events').select('type').where('userId', '=', user.id).execute()
  t.notOk(events.some(e => e.type === 'user.viewed'), 'no user.viewed event')
  t.ok(events.some(e => e.type === 'user.created'), 'other actions still are events')
})

t.test('AUDIT_DATA_ACCESS off (the default): nothing is written', async t => {
  const app = await build(t, { accessAuditFlushMs: 20 })
  const admin = await createUser(app, { roles: ['admin'] })
  const user = await createUser(app)
  t.equal((await as(app, admin, { method: 'GET', url: `/api/v1/users/${user.id}` })).statusCode, 200)
  await new Promise(resolve => setTimeout(resolve, 200))
  t.equal((await viewedRows(app, user.id)).length, 0)
})

t.test('no write on the read path; a full batch is written at once; a graceful close writes the rest', async t => {
  // A database of its own (embedded: on disk), so that a second app can read what the first wrote before closing.
  const config = testConfig({ accessAuditFlushMs: 3_600_000 }, { AUDIT_DATA_ACCESS: 'true', ...await ownDatabase(t) })
  const built = await buildApp(config)
  await built.ready()
  const first = validateResponses(built)
  let admin: TestUser, user: TestUser
  try {
    admin = await createUser(first, { roles: ['admin'] })
    user = await createUser(first)
    for (let i = 0; i < 3; i++) t.equal((await as(first, admin, { method: 'GET', url: `/api/v1/users/${user.id}` })).statusCode, 200)
    t.equal((await viewedRows(first, user.id)).length, 0, 'answered before anything was written (the flush is an hour away)')

    const other = await createUser(first)
    for (let i = 0; i < ACCESS_AUDIT_BATCH; i++) await as(first, admin, { method: 'GET', url: `/api/v1/users/${other.id}` })
    await eventually(async () => (await viewedRows(first, other.id)).length > 0, 'a full batch')
    t.ok((await viewedRows(first, other.id)).length >= ACCESS_AUDIT_BATCH - 3, `a batch of ${ACCESS_AUDIT_BATCH} is written without waiting for the timer`)
    await as(first, admin, { method: 'GET', url: `/api/v1/users/${user.id}` })
  } finally {
    await first.close()
  }

  const second = await buildApp(config)
  t.teardown(() => second.close())
  await second.ready()
  t.equal((await viewedRows(second, user.id)).length, 4, 'every read held in memory was written on close')
  t.equal((await viewedRows(second, admin!.id)).length, 0)
})
