import { randomUUID } from 'node:crypto'
import t from 'tap'
import { as, assertError, build, createUser } from './helper.js'
import { insertAudit } from '../src/repositories/audit.js'

const app = await build(t)
const auditor = await createUser(app, { roles: ['admin'] })
const list = (query: Record<string, string | number>, user: { token: string } | undefined = auditor) =>
  as(app, user, { method: 'GET', url: '/api/v1/audit-logs', query: Object.fromEntries(Object.entries(query).map(([k, v]) => [k, String(v)])) })

/** Audit rows about one fresh subject user, written straight through the repository. */
async function seed (count: number, actorId: string | null = null) {
  const userId = randomUUID()
  const requestId = `seed-${randomUUID()}`
  for (let i = 0; i < count; i++) {
    await insertAudit(app.database.db, { actorId, ip: '192.0.2.1', userAgent: 'tap', requestId }, { action: i % 2 === 0 ? 'user.updated' : 'user.deleted', userId, changes: { n: i } })
  }
  return { userId, requestId }
}

t.test('entries about a user, newest first, in the contract shape', async t => {
  const actor = randomUUID()
  const { userId, requestId } = await seed(3, actor)
  const res = await list({ userId })
  t.equal(res.statusCode, 200)
  const body = res.json()
  t.equal(body.success, true)
  t.same(body.data.map((e: { changes: { n: number } }) => e.changes.n), [2, 1, 0], 'newest first')
  t.match(body.data[0], { action: 'user.updated', actorId: actor, userId, ip: '192.0.2.1', userAgent: 'tap', requestId })
  t.same(Object.keys(body.data[0]).sort(), ['action', 'actorId', 'changes', 'createdAt', 'id', 'ip', 'requestId', 'userAgent', 'userId'])
  t.same(body.pagination, { limit: 20, hasNext: false, nextCursor: null })
})

t.test('keyset paging walks every entry exactly once, stable under inserts', async t => {
  const { userId } = await seed(7)
  const seen: number[] = []
  let cursor: string | null = null
  let pages = 0
  do {
    const res = await list({ userId, limit: 3, ...(cursor ? { cursor } : {}) })
    t.equal(res.statusCode, 200)
    const body = res.json()
    seen.push(...body.data.map((e: { changes: { n: number } }) => e.changes.n))
    t.equal(body.pagination.limit, 3)
    t.equal(body.pagination.hasNext, body.pagination.nextCursor !== null)
    cursor = body.pagination.nextCursor
    if (pages++ === 0) await insertAudit(app.database.db, { actorId: null, ip: null, userAgent: null, requestId: null }, { action: 'user.updated', userId, changes: { n: 99 } })
  } while (cursor && pages < 10)
  t.same(seen, [6, 5, 4, 3, 2, 1, 0], 'all seven, in order; the row added meanwhile is newer than the walk')
})

t.test('filters: actorId, action, from and to', async t => {
  const actor = randomUUID()
  const { userId } = await seed(4, actor)
  const byActor = (await list({ actorId: actor })).json().data
  t.equal(byActor.length, 4)
  t.ok(byActor.every((e: { actorId: string }) => e.actorId === actor))

  const deletes = (await list({ userId, action: 'user.deleted' })).json().data
  t.same(deletes.map((e: { changes: { n: number } }) => e.changes.n), [3, 1])

  const all = (await list({ userId })).json().data as Array<{ createdAt: string, changes: { n: number } }>
  const oldest = all[all.length - 1]
  const newest = all[0]
  const fromOldest = (await list({ userId, from: oldest.createdAt })).json().data
  t.equal(fromOldest.length, 4, 'from is inclusive')
  const toNewest = (await list({ userId, to: newest.createdAt })).json().data as Array<{ createdAt: string }>
  t.ok(toNewest.every(e => e.createdAt < newest.createdAt), 'to is exclusive')
  t.equal((await list({ userId, from: '2000-01-01T00:00:00.000Z', to: '2000-01-02T00:00:00.000Z' })).json().data.length, 0)
  // RFC 3339 allows a leap second, which a Date cannot hold; it was a 500 (found by test/fuzz.test.ts).
  t.equal((await list({ userId, from: '2016-12-31T23:59:60Z' })).json().data.length, 4, 'a leap second in from')
  t.equal((await list({ userId, from: '2016-12-31T23:59:59Z', to: '2016-12-31T23:59:60Z' })).json().data.length, 0, 'and in to')
})

t.test('bad queries are 400', async t => {
  const { userId } = await seed(3)
  assertError(t, await list({ userId: 'nope' }), 400, 'VALIDATION_ERROR', 'userId')
  assertError(t, await list({ limit: 0 }), 400, 'VALIDATION_ERROR', 'limit 0')
  assertError(t, await list({ limit: 101 }), 400, 'VALIDATION_ERROR', 'limit 101')
  assertError(t, await list({ from: 'yesterday' }), 400, 'VALIDATION_ERROR', 'from')
  assertError(t, await list({ action: 'DROP TABLE' }), 400, 'VALIDATION_ERROR', 'action')
  assertError(t, await list({ from: '2026-01-02T00:00:00.000Z', to: '2026-01-01T00:00:00.000Z' }), 400, 'VALIDATION_ERROR', 'from after to')
  assertError(t, await list({ cursor: 'garbage!' }), 400, 'VALIDATION_ERROR', 'malformed cursor')
  const cursor = (await list({ userId, limit: 1 })).json().pagination.nextCursor
  t.ok(cursor)
  assertError(t, await list({ userId: randomUUID(), limit: 1, cursor }), 400, 'VALIDATION_ERROR', 'cursor of another filter')
})

t.test('reading the trail needs audit:read', async t => {
  const plain = await createUser(app)
  assertError(t, await list({}, plain), 403, 'FORBIDDEN')
  assertError(t, await app.inject({ method: 'GET', url: '/api/v1/audit-logs' }), 401, 'UNAUTHORIZED')
})

t.test('the trail is append-only: UPDATE and DELETE fail in the database itself', async t => {
  const { userId } = await seed(1)
  const { db } = app.database
  await t.rejects(db.updateTable('userAuditLog').set({ action: 'user.forged' }).where('userId', '=', userId).execute(), /append-only/)
  await t.rejects(db.deleteFrom('userAuditLog').where('userId', '=', userId).execute(), /append-only/)
  const rows = await db.selectFrom('userAuditLog').select('action').where('userId', '=', userId).execute()
  t.same(rows, [{ action: 'user.updated' }], 'the row is intact')
})
