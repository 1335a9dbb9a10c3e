import t from 'tap'
import { randomUUID } from 'node:crypto'
import { as, build, createUser, PASSWORD, uniqueEmail } from './helper.js'

const app = await build(t)
const admin = await createUser(app, { roles: ['admin'] })
const db = app.database.db

/** Sends one request with its own X-Request-Id and returns the audit rows written under it. */
async function audited (user: { token: string }, options: { method: 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE', url: string, payload?: object, headers?: Record<string, string> }) {
  const requestId = `audit-${randomUUID()}`
  const res = await as(app, user, { ...options, headers: { 'x-request-id': requestId, 'user-agent': 'audit-test', ...options.headers } })
  const rows = await db.selectFrom('userAuditLog').selectAll().where('requestId', '=', requestId).orderBy('createdAt').orderBy('action').execute()
  return { res, rows, requestId }
}

const SECRET = /password|hash|argon|token/i

t.test('each change writes its audit row with actor, request id, ip and user agent', async t => {
  const password = `Audit-${randomUUID().slice(0, 8)}-9A`
  const email = uniqueEmail('audited')
  const created = await audited(admin, { method: 'POST', url: '/api/v1/users', payload: { email, password, firstName: 'Au', lastName: 'Dit', profile: { bio: 'b' } } })
  t.equal(created.res.statusCode, 201)
  const id = created.res.json().data.id
  t.equal(created.rows.length, 1)
  t.match(created.rows[0], { action: 'user.created', actorId: admin.id, userId: id, requestId: created.requestId, ip: '127.0.0.1', userAgent: 'audit-test' })
  t.match(created.rows[0].changes, { email, firstName: 'Au', lastName: 'Dit', status: 'active', roles: ['user'] })
  t.notMatch(JSON.stringify(created.rows[0].changes), SECRET, 'user.created: no password or hash')
  t.notOk(JSON.stringify(created.rows[0]).includes(password), 'the password is nowhere in the row')

  const updated = await audited(admin, { method: 'PATCH', url: `/api/v1/users/${id}`, payload: { firstName: 'Audited', profile: { bio: null } } })
  t.equal(updated.res.statusCode, 200)
  t.same(updated.rows.map(r => r.action), ['user.updated'])
  t.match(updated.rows[0], { actorId: admin.id, userId: id })
  t.same(updated.rows[0].changes, {
    firstName: { from: 'Au', to: 'Audited' },
    profile: { from: { bio: 'b', avatarUrl: null, phone: null, locale: null, timezone: null }, to: { bio: null, avatarUrl: null, phone: null, locale: null, timezone: null } }
  }, 'only what changed, before and after')

  const replaced = await audited(admin, { method: 'PUT', url: `/api/v1/users/${id}`, payload: { email, firstName: 'Audited', lastName: 'Again', profile: null } })
  t.equal(replaced.res.statusCode, 200)
  t.same(replaced.rows.map(r => r.action), ['user.updated'])
  t.match(replaced.rows[0].changes, { lastName: { from: 'Dit', to: 'Again' }, profile: { to: null } })

  const roles = await audited(admin, { method: 'PUT', url: `/api/v1/users/${id}/roles`, payload: { roles: ['admin', 'user'] } })
  t.equal(roles.res.statusCode, 200)
  t.ok(roles.rows.some(r => r.action === 'user.roles_changed'), 'user.roles_changed')
  const rolesRow = roles.rows.find(r => r.action === 'user.roles_changed')
  t.match(rolesRow, { actorId: admin.id, userId: id, requestId: roles.requestId })
  t.same(rolesRow?.changes, { roles: { from: ['user'], to: ['admin', 'user'] } })

  const profile = await audited(admin, { method: 'PATCH', url: `/api/v1/users/${id}/profile`, payload: { locale: 'en' } })
  t.equal(profile.res.statusCode, 200)
  t.same(profile.rows.map(r => r.action), ['user.updated'], 'a profile change is audited too')

  const deleted = await audited(admin, { method: 'DELETE', url: `/api/v1/users/${id}` })
  t.equal(deleted.res.statusCode, 204)
  t.same(deleted.rows.map(r => r.action), ['user.deleted'])
  t.match(deleted.rows[0], { actorId: admin.id, userId: id })

  const restored = await audited(admin, { method: 'POST', url: `/api/v1/users/${id}/restore` })
  t.equal(restored.res.statusCode, 200)
  t.same(restored.rows.map(r => r.action), ['user.restored'])
  t.match(restored.rows[0], { actorId: admin.id, userId: id, changes: { deletedAt: { to: null } } })

  const erased = await audited(admin, { method: 'POST', url: `/api/v1/users/${id}/erase` })
  t.equal(erased.res.statusCode, 204)
  t.same(erased.rows.map(r => r.action), ['user.erased'])
  t.match(erased.rows[0], { actorId: admin.id, userId: id, requestId: erased.requestId })

  const all = await db.selectFrom('userAuditLog').select(['action', 'changes']).where('userId', '=', id).execute()
  for (const row of all) t.notMatch(JSON.stringify(row.changes ?? null), SECRET, `${row.action}: no secret in changes`)
})

t.test('a self-service change names the user as its actor', async t => {
  const self = await createUser(app)
  const { res, rows } = await audited(self, { method: 'PATCH', url: `/api/v1/users/${self.id}`, payload: { lastName: 'Self' } })
  t.equal(res.statusCode, 200)
  t.match(rows, [{ action: 'user.updated', actorId: self.id, userId: self.id }])
})

t.test('a refused change writes no audit row (same transaction)', async t => {
  const user = await createUser(app)
  const other = await createUser(app)
  const stale = (await as(app, admin, { method: 'GET', url: `/api/v1/users/${user.id}` })).headers.etag as string
  await as(app, admin, { method: 'PATCH', url: `/api/v1/users/${user.id}`, payload: { firstName: 'Moved' } })

  const refused = [
    { method: 'POST' as const, url: '/api/v1/users', payload: { email: other.email, password: PASSWORD, firstName: 'A', lastName: 'B' } },
    { method: 'POST' as const, url: '/api/v1/users', payload: { email: uniqueEmail(), password: PASSWORD, firstName: 'A', lastName: 'B', roles: ['nope'] } },
    { method: 'PATCH' as const, url: `/api/v1/users/${user.id}`, payload: { email: other.email } },
    { method: 'PATCH' as const, url: `/api/v1/users/${user.id}`, payload: { firstName: 'X' }, headers: { 'if-match': stale } },
    { method: 'DELETE' as const, url: `/api/v1/users/${user.id}`, headers: { 'if-match': stale } },
    { method: 'PUT' as const, url: `/api/v1/users/${user.id}/roles`, payload: { roles: ['admin', 'nope'] } },
    { method: 'PATCH' as const, url: `/api/v1/users/${user.id}`, payload: { roles: ['user', 'nope'], firstName: 'Y' } }
  ]
  for (const request of refused) {
    const { res, rows } = await audited(admin, request)
    t.ok(res.statusCode >= 400, `${request.method} ${request.url}: refused (${res.statusCode})`)
    t.same(rows, [], 'no audit row')
  }
  const current = await as(app, admin, { method: 'GET', url: `/api/v1/users/${user.id}` })
  t.equal(current.json().data.firstName, 'Moved', 'and no change')
  t.equal(current.json().data.email, user.email)
})
