import t from 'tap'
import { randomUUID } from 'node:crypto'
import { as, assertError, build, createUser, ownPostgresDatabase } from './helper.js'

const app = await build(t)
const admin = await createUser(app, { roles: ['admin'] })

const setRoles = (user: { token: string } | undefined, id: string, roles: unknown) =>
  as(app, user, { method: 'PUT', url: `/api/v1/users/${id}/roles`, payload: { roles } })

t.test('PUT /:id/roles replaces the roles', async t => {
  const user = await createUser(app)
  let res = await setRoles(admin, user.id, ['user', 'admin'])
  t.equal(res.statusCode, 200)
  t.same(res.json().data.roles, ['admin', 'user'])
  t.equal(res.json().data.id, user.id)
  const me = await as(app, user, { method: 'GET', url: '/api/v1/auth/me' })
  t.same(me.json().data.permissions, ['analytics:read', 'audit:read', 'roles:manage', 'users:delete', 'users:read', 'users:write', 'webhooks:manage'], 'the new permissions apply at once')
  t.equal((await as(app, user, { method: 'GET', url: '/api/v1/users?limit=1' })).statusCode, 200, 'the promoted user may list')

  res = await setRoles(admin, user.id, ['user'])
  t.equal(res.statusCode, 200)
  t.same(res.json().data.roles, ['user'])
  assertError(t, await as(app, user, { method: 'GET', url: '/api/v1/users?limit=1' }), 403, 'FORBIDDEN', 'the demoted user may not list any more')

  res = await setRoles(admin, user.id, [])
  t.equal(res.statusCode, 200, 'no role at all is allowed')
  t.same(res.json().data.roles, [])
  t.equal((await as(app, user, { method: 'GET', url: `/api/v1/users/${user.id}` })).statusCode, 200, 'a user without roles still reads itself')
})

t.test('an unknown role is 400 and the roles are unchanged', async t => {
  const user = await createUser(app)
  const unknown = `ghost-${randomUUID().slice(0, 8)}`
  const error = assertError(t, await setRoles(admin, user.id, ['admin', unknown]), 400, 'VALIDATION_ERROR')
  t.ok(error.details?.some(d => d.field === 'roles' && d.message.includes(unknown)), 'a detail names the role')
  const after = await as(app, admin, { method: 'GET', url: `/api/v1/users/${user.id}` })
  t.same(after.json().data.roles, ['user'])
})

t.test('bad bodies and ids', async t => {
  const user = await createUser(app)
  for (const body of [{}, { roles: 'admin' }, { roles: [1] }, { roles: ['user', 'user'] }, { roles: ['user'], extra: true }, { roles: [''] }]) {
    const res = await as(app, admin, { method: 'PUT', url: `/api/v1/users/${user.id}/roles`, payload: body })
    assertError(t, res, 400, 'VALIDATION_ERROR', JSON.stringify(body))
  }
  assertError(t, await setRoles(admin, randomUUID(), ['user']), 404, 'NOT_FOUND', 'unknown user')
  assertError(t, await setRoles(admin, 'not-a-uuid', ['user']), 400, 'VALIDATION_ERROR', 'malformed id')
  t.equal((await as(app, admin, { method: 'DELETE', url: `/api/v1/users/${user.id}` })).statusCode, 204)
  assertError(t, await setRoles(admin, user.id, ['admin']), 404, 'NOT_FOUND', 'deleted user')
})

t.test('roles may also be set through PATCH and PUT by roles:manage', async t => {
  const user = await createUser(app)
  const patched = await as(app, admin, { method: 'PATCH', url: `/api/v1/users/${user.id}`, payload: { roles: ['admin', 'user'], status: 'suspended' } })
  t.equal(patched.statusCode, 200)
  t.same(patched.json().data.roles, ['admin', 'user'])
  t.equal(patched.json().data.status, 'suspended')
  assertError(t, await as(app, user, { method: 'GET', url: '/api/v1/auth/me' }), 401, 'UNAUTHORIZED', 'a suspended user\'s token stops working')
  const error = assertError(t, await as(app, admin, { method: 'PATCH', url: `/api/v1/users/${user.id}`, payload: { roles: ['nope-role'] } }), 400, 'VALIDATION_ERROR', 'unknown role in PATCH')
  t.ok(error.details?.some(d => d.field === 'roles'))
})

// "The last administrator" counts every administrator in the database, so this test needs a
// database of its own: on a real server a throw-away one (embedded, every app has its own anyway).
t.test('the last administrator cannot stop being one', async t => {
  const databaseUrl = await ownPostgresDatabase(t)
  const app = await build(t, databaseUrl ? { databaseUrl } : {})
  const only = await createUser(app, { roles: ['admin'] })
  const count = await app.database.db.selectFrom('userRoles').innerJoin('roles', 'roles.id', 'userRoles.roleId').select('userRoles.userId').where('roles.name', '=', 'admin').execute()
  t.equal(count.length, 1, 'a database with a single admin')

  const attempts = [
    { method: 'PUT', url: `/api/v1/users/${only.id}/roles`, payload: { roles: ['user'] } },
    { method: 'PUT', url: `/api/v1/users/${only.id}/roles`, payload: { roles: [] } },
    { method: 'PATCH', url: `/api/v1/users/${only.id}`, payload: { roles: ['user'] } },
    { method: 'PATCH', url: `/api/v1/users/${only.id}`, payload: { status: 'suspended' } },
    { method: 'PATCH', url: `/api/v1/users/${only.id}`, payload: { status: 'pending' } },
    { method: 'DELETE', url: `/api/v1/users/${only.id}` },
    { method: 'POST', url: `/api/v1/users/${only.id}/erase` }
  ] as const
  for (const attempt of attempts) {
    const res = await as(app, only, { ...attempt, method: attempt.method as 'PUT' })
    assertError(t, res, 409, 'CONFLICT', `${attempt.method} ${attempt.url.replace(only.id, ':id')} ${JSON.stringify('payload' in attempt ? attempt.payload : '')}`)
  }
  const me = await as(app, only, { method: 'GET', url: '/api/v1/auth/me' })
  t.equal(me.statusCode, 200, 'still logged in')
  t.ok(me.json().data.roles.includes('admin'), 'still an admin')
  t.equal(me.json().data.status, 'active', 'still active')
  const audit = await app.database.db.selectFrom('userAuditLog').select('action').where('userId', '=', only.id).where('action', '!=', 'auth.login').execute()
  t.same(audit.map(a => a.action), ['user.created'], 'the refused changes left no audit row')

  // With a second admin the first may step down.
  const second = await createUser(app, { roles: ['admin'] })
  const res = await as(app, second, { method: 'PUT', url: `/api/v1/users/${only.id}/roles`, payload: { roles: ['user'] } })
  t.equal(res.statusCode, 200)
  t.same(res.json().data.roles, ['user'])
  assertError(t, await as(app, second, { method: 'PATCH', url: `/api/v1/users/${second.id}`, payload: { status: 'suspended' } }), 409, 'CONFLICT', 'now the second is the last one')
})
