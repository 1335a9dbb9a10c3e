import t from 'tap'
import { randomUUID } from 'node:crypto'
import { sql } from 'kysely'
import { insertAudit } from '../src/repositories/audit.js'
import { as, build, createUser, PASSWORD, uniqueEmail } from './helper.js'

const app = await build(t)
const admin = await createUser(app, { roles: ['admin'] })
const db = app.database.db

/** Sends one request with its own X-Request-Id; resolves to it and the events of the audit rows written under it. */
async function withEvents (user: { token: string } | undefined, options: { method: 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE', url: string, payload?: object }) {
  const requestId = `events-${randomUUID()}`
  const res = await as(app, user, { ...options, headers: { 'x-request-id': requestId } })
  const audit = await db.selectFrom('userAuditLog').select(['id', 'action', 'userId', 'actorId', 'changes', 'createdAt'])
    .where('requestId', '=', requestId).orderBy('seq').execute()
  const events = await Promise.all(audit.map(row => app.eventsService.find(row.id)))
  return { res, audit, events: events.map(e => e?.event) }
}

const SECRET = /passwordHash|password_hash|\$argon2|\$2[aby]\$|refreshToken|accessToken/i

t.test('every audit action is an event with the audit row\'s id, type, data and the user as returned', async t => {
  const email = uniqueEmail('evented')
  const created = await withEvents(admin, { method: 'POST', url: '/api/v1/users', payload: { email, password: PASSWORD, firstName: 'Ev', lastName: 'Ent', profile: { bio: 'hi' } } })
  t.equal(created.res.statusCode, 201)
  const user = created.res.json().data
  t.equal(created.events.length, 1)
  const [event] = created.events
  t.match(event, { id: created.audit[0].id, type: 'user.created', createdAt: created.audit[0].createdAt.toISOString() })
  t.same(event!.data, { userId: user.id, actorId: admin.id, changes: created.audit[0].changes, user }, 'data: ids, the changes, the user as the API returned it')
  t.notMatch(JSON.stringify(event), SECRET, 'no password or hash')

  const updated = await withEvents(admin, { method: 'PATCH', url: `/api/v1/users/${user.id}`, payload: { firstName: 'Evented' } })
  t.equal(updated.res.statusCode, 200)
  t.same(updated.events.map(e => e?.type), ['user.updated'])
  t.same(updated.events[0]!.data.user, updated.res.json().data, 'the user as the change left it')
  t.same(updated.events[0]!.data.changes, { firstName: { from: 'Ev', to: 'Evented' } })

  const roles = await withEvents(admin, { method: 'PUT', url: `/api/v1/users/${user.id}/roles`, payload: { roles: ['user', 'admin'] } })
  t.ok(roles.events.some(e => e?.type === 'user.roles_changed' && e.data.user?.roles.includes('admin')), 'user.roles_changed carries the new roles')

  const deleted = await withEvents(admin, { method: 'DELETE', url: `/api/v1/users/${user.id}` })
  t.equal(deleted.res.statusCode, 204)
  t.same(deleted.events.map(e => e?.type), ['user.deleted'])
  t.ok(deleted.events[0]!.data.user?.deletedAt, 'a soft-deleted user still exists: its deletedAt is set')

  const restored = await withEvents(admin, { method: 'POST', url: `/api/v1/users/${user.id}/restore` })
  t.same(restored.events.map(e => e?.type), ['user.restored'])
  t.equal(restored.events[0]!.data.user?.deletedAt, null)
})

t.test('logins (the one-statement login too) and failed logins are events', async t => {
  const user = await createUser(app)
  const login = await withEvents(undefined, { method: 'POST', url: '/api/v1/auth/login', payload: { email: user.email, password: user.password } })
  t.equal(login.res.statusCode, 200)
  t.same(login.events.map(e => e?.type), ['auth.login'])
  t.match(login.events[0]!.data, { userId: user.id, actorId: user.id, changes: { method: 'password' } })
  t.equal(login.events[0]!.data.user?.lastLoginAt, login.res.json().data.user.lastLoginAt, 'the user as the login left it (its lastLoginAt)')
  t.notMatch(JSON.stringify(login.events), SECRET)
  t.notOk(JSON.stringify(login.events).includes(user.password), 'nor the password')

  const failed = await withEvents(undefined, { method: 'POST', url: '/api/v1/auth/login', payload: { email: user.email, password: 'Wrong-Password-1' } })
  t.equal(failed.res.statusCode, 401)
  t.same(failed.events.map(e => e?.type), ['auth.login_failed'])
  t.notOk(JSON.stringify(failed.events).includes('Wrong-Password-1'))
})

t.test('an event is written in the change\'s transaction: a rolled-back change leaves none', async t => {
  const marker = { changes: { marker: randomUUID() } }
  const find = (ex: typeof db) => sql<{ id: string }>`select id from events where data @> ${JSON.stringify(marker)}::jsonb`.execute(ex)
  await t.rejects(db.transaction().execute(async trx => {
    await insertAudit(trx, { actorId: null, ip: null, userAgent: null, requestId: null }, { action: 'user.updated', userId: null, ...marker })
    t.equal((await find(trx)).rows.length, 1, 'the event exists inside the transaction')
    throw new Error('roll back')
  }), /roll back/)
  t.equal((await find(db)).rows.length, 0, 'and not after it rolled back')
})

t.test('positions increase; after() reads on from one, filtered by type and user', async t => {
  const user = await createUser(app)
  const first = await withEvents(user, { method: 'PATCH', url: `/api/v1/users/${user.id}`, payload: { firstName: 'One' } })
  const second = await withEvents(user, { method: 'PATCH', url: `/api/v1/users/${user.id}`, payload: { firstName: 'Two' } })
  const a = await app.eventsService.find(first.audit[0].id)
  const b = await app.eventsService.find(second.audit[0].id)
  t.ok(BigInt(a!.seq) < BigInt(b!.seq), 'a later event has a higher position')
  const after = await app.eventsService.after(a!.seq, 100, { userId: user.id })
  t.same(after.map(e => e.event.id), [b!.event.id], 'after a position: only the later ones')
  t.same((await app.eventsService.after(a!.seq, 100, { userId: user.id, types: ['auth.login'] })).length, 0)
  const fromStart = await app.eventsService.after(null, 1000, { userId: user.id })
  t.same(fromStart.map(e => e.event.type), ['user.created', 'auth.login', 'user.updated', 'user.updated'], 'oldest first')
})

t.test('an erasure leaves nothing personal in the events about the user', async t => {
  const user = await createUser(app)
  await withEvents(user, { method: 'PATCH', url: `/api/v1/users/${user.id}`, payload: { firstName: 'Private', profile: { phone: '+44 20 7946 0000' } } })
  const erased = await withEvents(user, { method: 'POST', url: `/api/v1/users/${user.id}/erase` })
  t.equal(erased.res.statusCode, 204)
  t.same(erased.events.map(e => e?.type), ['user.erased'])
  t.notOk('user' in erased.events[0]!.data, 'an erased user is not in its event')
  const all = await app.eventsService.after(null, 1000, { userId: user.id })
  t.ok(all.length >= 3)
  const text = JSON.stringify(all)
  t.notOk(text.includes(user.email) || text.includes('Private') || text.includes('7946'), 'no email, name or phone left')
})

t.test('the retention purge drops events past their retention only', async t => {
  const user = await createUser(app)
  await sql`insert into user_audit_log (action, user_id, created_at) values ('user.updated', ${user.id}, now() - interval '3 days')`.execute(db)
  const before = await app.eventsService.after(null, 1000, { userId: user.id })
  t.same(before.map(e => e.event.type), ['user.created', 'auth.login', 'user.updated'])
  t.ok((await app.retention.run())!.events >= 1)
  t.same((await app.eventsService.after(null, 1000, { userId: user.id })).map(e => e.event.type), ['user.created', 'auth.login'], 'the three-day-old one went, the fresh ones stay')
})
