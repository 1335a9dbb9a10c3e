import { randomUUID } from 'node:crypto'
import t from 'tap'
import { as, assertError, build, createUser, uniqueEmail, PASSWORD } from './helper.js'

const app = await build(t)
const admin = await createUser(app, { roles: ['admin'] })
const roleName = (tag = 'role') => `${tag}-${randomUUID().slice(0, 8)}`
const createRole = (body: Record<string, unknown>, user: { token: string } | undefined = admin) =>
  as(app, user, { method: 'POST', url: '/api/v1/roles', payload: body })

t.test('create, read, list, replace and delete a role', async t => {
  const name = roleName('support')
  const created = await createRole({ name, description: 'Reads users', permissions: ['users:read'] })
  t.equal(created.statusCode, 201)
  const role = created.json().data
  t.equal(created.headers.location, `/api/v1/roles/${role.id}`)
  t.match(role, { name, description: 'Reads users', permissions: ['users:read'], builtIn: false })
  t.match(role.createdAt, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/)

  const got = await as(app, admin, { method: 'GET', url: `/api/v1/roles/${role.id}` })
  t.equal(got.statusCode, 200)
  t.same(got.json().data, role)

  const list = await as(app, admin, { method: 'GET', url: '/api/v1/roles' })
  t.equal(list.statusCode, 200)
  const roles = list.json().data as Array<{ name: string, builtIn: boolean, permissions: string[] }>
  t.same(roles.find(r => r.name === name), role)
  t.match(roles.find(r => r.name === 'admin'), { builtIn: true, permissions: ['analytics:read', 'audit:read', 'roles:manage', 'users:delete', 'users:read', 'users:write', 'webhooks:manage'] })
  t.match(roles.find(r => r.name === 'user'), { builtIn: true, permissions: [] })

  const renamed = roleName('helpdesk')
  const replaced = await as(app, admin, { method: 'PUT', url: `/api/v1/roles/${role.id}`, payload: { name: renamed, permissions: ['users:write', 'users:read'] } })
  t.equal(replaced.statusCode, 200)
  t.match(replaced.json().data, { id: role.id, name: renamed, description: '', permissions: ['users:read', 'users:write'], builtIn: false })

  const deleted = await as(app, admin, { method: 'DELETE', url: `/api/v1/roles/${role.id}` })
  t.equal(deleted.statusCode, 204)
  t.equal(deleted.body, '')
  assertError(t, await as(app, admin, { method: 'GET', url: `/api/v1/roles/${role.id}` }), 404, 'NOT_FOUND')
  assertError(t, await as(app, admin, { method: 'DELETE', url: `/api/v1/roles/${role.id}` }), 404, 'NOT_FOUND')
  assertError(t, await as(app, admin, { method: 'PUT', url: `/api/v1/roles/${role.id}`, payload: { name: renamed, permissions: [] } }), 404, 'NOT_FOUND')

  const audit = await app.database.db.selectFrom('userAuditLog').select(['action', 'actorId', 'changes'])
    .where('actorId', '=', admin.id).where('action', 'like', 'role.%').orderBy('createdAt').execute()
  const mine = audit.filter(row => (row.changes as { roleId?: string }).roleId === role.id)
  t.same(mine.map(row => row.action), ['role.created', 'role.updated', 'role.deleted'], 'every change is audited with its actor')
})

t.test('invalid input is 400', async t => {
  for (const [body, field] of [
    [{ name: 'Bad Name', permissions: [] }, 'name'],
    [{ name: roleName(), permissions: ['users:fly'] }, 'permissions.0'],
    [{ name: roleName(), permissions: ['users:read', 'users:read'] }, 'permissions'],
    [{ name: roleName() }, 'permissions'],
    [{ name: roleName(), permissions: [], builtIn: true }, 'builtIn'],
    [{ name: roleName(), permissions: [], description: 'x'.repeat(501) }, 'description']
  ] as const) {
    const error = assertError(t, await createRole(body), 400, 'VALIDATION_ERROR', JSON.stringify(body).slice(0, 80))
    t.ok(error.details?.some(d => d.field === field), `a detail names ${field}: ${JSON.stringify(error.details)}`)
  }
  assertError(t, await as(app, admin, { method: 'GET', url: '/api/v1/roles/not-a-uuid' }), 400, 'VALIDATION_ERROR')
})

t.test('a duplicate name is 409 CONFLICT', async t => {
  const name = roleName('dup')
  t.equal((await createRole({ name, permissions: [] })).statusCode, 201)
  assertError(t, await createRole({ name, permissions: ['users:read'] }), 409, 'CONFLICT', 'create')
  assertError(t, await createRole({ name: 'admin', permissions: [] }), 409, 'CONFLICT', 'a built-in name')

  const other = (await createRole({ name: roleName('other'), permissions: [] })).json().data
  assertError(t, await as(app, admin, { method: 'PUT', url: `/api/v1/roles/${other.id}`, payload: { name, permissions: [] } }), 409, 'CONFLICT', 'rename')
  const racing = await Promise.all([createRole({ name: `${name}-r`, permissions: [] }), createRole({ name: `${name}-r`, permissions: [] })])
  t.same(racing.map(r => r.statusCode).sort(), [201, 409], 'two racing creates: one wins, one is 409')
})

t.test('built-in roles cannot be changed or deleted', async t => {
  const list = (await as(app, admin, { method: 'GET', url: '/api/v1/roles' })).json().data as Array<{ id: string, name: string, permissions: string[] }>
  for (const name of ['admin', 'user']) {
    const role = list.find(r => r.name === name)!
    assertError(t, await as(app, admin, { method: 'PUT', url: `/api/v1/roles/${role.id}`, payload: { name, permissions: ['users:read'] } }), 409, 'CONFLICT', `PUT ${name}`)
    assertError(t, await as(app, admin, { method: 'DELETE', url: `/api/v1/roles/${role.id}` }), 409, 'CONFLICT', `DELETE ${name}`)
    const after = await as(app, admin, { method: 'GET', url: `/api/v1/roles/${role.id}` })
    t.same(after.json().data.permissions, role.permissions, `${name} is unchanged`)
  }
})

t.test('a role that users hold cannot be deleted until it is taken from them', async t => {
  const role = (await createRole({ name: roleName('held'), permissions: ['users:read'] })).json().data
  const holder = await createUser(app, { roles: ['user', role.name] })
  assertError(t, await as(app, admin, { method: 'DELETE', url: `/api/v1/roles/${role.id}` }), 409, 'CONFLICT')
  t.same((await as(app, holder, { method: 'GET', url: '/api/v1/auth/me' })).json().data.roles, [role.name, 'user'].sort(), 'the holder keeps it')

  t.equal((await as(app, admin, { method: 'PUT', url: `/api/v1/users/${holder.id}/roles`, payload: { roles: ['user'] } })).statusCode, 200)
  t.equal((await as(app, admin, { method: 'DELETE', url: `/api/v1/roles/${role.id}` })).statusCode, 204)
})

t.test('a custom role grants exactly its permissions, and changes apply on the next request', async t => {
  const role = (await createRole({ name: roleName('reader'), permissions: ['users:read'] })).json().data
  const reader = await createUser(app, { roles: [role.name] })
  const newUser = () => ({ method: 'POST' as const, url: '/api/v1/users', payload: { email: uniqueEmail('made'), password: PASSWORD, firstName: 'M', lastName: 'D' } })

  t.equal((await as(app, reader, { method: 'GET', url: '/api/v1/users?limit=1' })).statusCode, 200, 'users:read lists')
  assertError(t, await as(app, reader, newUser()), 403, 'FORBIDDEN', 'no users:write')
  assertError(t, await as(app, reader, { method: 'GET', url: '/api/v1/roles' }), 403, 'FORBIDDEN', 'no roles:manage')
  assertError(t, await as(app, reader, { method: 'GET', url: '/api/v1/audit-logs' }), 403, 'FORBIDDEN', 'no audit:read')

  const granted = await as(app, admin, { method: 'PUT', url: `/api/v1/roles/${role.id}`, payload: { name: role.name, permissions: ['users:read', 'users:write'] } })
  t.equal(granted.statusCode, 200)
  t.equal((await as(app, reader, newUser())).statusCode, 201, 'the same token may create users at once')

  const revoked = await as(app, admin, { method: 'PUT', url: `/api/v1/roles/${role.id}`, payload: { name: role.name, permissions: [] } })
  t.equal(revoked.statusCode, 200)
  assertError(t, await as(app, reader, { method: 'GET', url: '/api/v1/users?limit=1' }), 403, 'FORBIDDEN', 'and loses them at once')
})

t.test('the roles API needs roles:manage', async t => {
  const plain = await createUser(app)
  const someRole = (await createRole({ name: roleName('x'), permissions: [] })).json().data
  const calls = [
    { method: 'GET' as const, url: '/api/v1/roles' },
    { method: 'POST' as const, url: '/api/v1/roles', payload: { name: roleName(), permissions: [] } },
    { method: 'GET' as const, url: `/api/v1/roles/${someRole.id}` },
    { method: 'PUT' as const, url: `/api/v1/roles/${someRole.id}`, payload: { name: someRole.name, permissions: ['roles:manage'] } },
    { method: 'DELETE' as const, url: `/api/v1/roles/${someRole.id}` }
  ]
  for (const call of calls) {
    assertError(t, await as(app, plain, call), 403, 'FORBIDDEN', `${call.method} ${call.url} as a plain user`)
    assertError(t, await app.inject(call), 401, 'UNAUTHORIZED', `${call.method} ${call.url} anonymously`)
  }
  t.same((await as(app, admin, { method: 'GET', url: `/api/v1/roles/${someRole.id}` })).json().data.permissions, [], 'nothing changed')
})
