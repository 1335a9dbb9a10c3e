import t from 'tap'
import { randomUUID } from 'node:crypto'
import { as, assertError, build, createUser, PASSWORD, uniqueEmail } from './helper.js'

const app = await build(t)
const admin = await createUser(app, { roles: ['admin'] })
const db = app.database.db

/** Every /api/v1/users operation on one user id, with a valid body where it needs one. */
function operations (id: string) {
  return [
    { method: 'GET', url: `/api/v1/users/${id}` },
    { method: 'PUT', url: `/api/v1/users/${id}`, payload: { email: uniqueEmail('perm'), firstName: 'A', lastName: 'B', profile: null } },
    { method: 'PATCH', url: `/api/v1/users/${id}`, payload: { firstName: 'Mallory' } },
    { method: 'DELETE', url: `/api/v1/users/${id}` },
    { method: 'POST', url: `/api/v1/users/${id}/restore` },
    { method: 'PUT', url: `/api/v1/users/${id}/roles`, payload: { roles: ['admin'] } },
    { method: 'GET', url: `/api/v1/users/${id}/profile` },
    { method: 'PUT', url: `/api/v1/users/${id}/profile`, payload: { bio: 'hacked' } },
    { method: 'PATCH', url: `/api/v1/users/${id}/profile`, payload: { bio: 'hacked' } },
    { method: 'GET', url: `/api/v1/users/${id}/export` },
    { method: 'POST', url: `/api/v1/users/${id}/erase` }
  ] as const
}

t.test('without a valid access token every users route is 401', async t => {
  const victim = await createUser(app)
  const all = [
    { method: 'GET', url: '/api/v1/users' },
    { method: 'POST', url: '/api/v1/users', payload: { email: uniqueEmail(), password: PASSWORD, firstName: 'A', lastName: 'B' } },
    ...operations(victim.id)
  ]
  for (const token of [undefined, 'not-a-jwt', `${victim.token}x`]) {
    for (const op of all) {
      const res = await as(app, token === undefined ? undefined : { token }, { ...op, method: op.method as 'GET' })
      assertError(t, res, 401, 'UNAUTHORIZED', `${op.method} ${op.url} with token ${token?.slice(0, 10)}`)
    }
  }
  t.equal((await as(app, admin, { method: 'GET', url: `/api/v1/users/${victim.id}` })).json().data.firstName, 'Test', 'nothing changed')
})

t.test('a plain user gets 403 on other users, on the list and on create', async t => {
  const plain = await createUser(app)
  const other = await createUser(app, { firstName: 'Other' })
  const before = (await as(app, admin, { method: 'GET', url: `/api/v1/users/${other.id}` })).json().data

  assertError(t, await as(app, plain, { method: 'GET', url: '/api/v1/users' }), 403, 'FORBIDDEN', 'list')
  assertError(t, await as(app, plain, { method: 'POST', url: '/api/v1/users', payload: { email: uniqueEmail(), password: PASSWORD, firstName: 'A', lastName: 'B' } }), 403, 'FORBIDDEN', 'create')
  for (const op of operations(other.id)) {
    assertError(t, await as(app, plain, { ...op, method: op.method as 'GET' }), 403, 'FORBIDDEN', `${op.method} ${op.url.replace(other.id, ':other')}`)
  }
  // An unknown id is also 403, not 404: a plain user learns nothing about which ids exist.
  assertError(t, await as(app, plain, { method: 'GET', url: `/api/v1/users/${randomUUID()}` }), 403, 'FORBIDDEN', 'unknown id')

  const after = await as(app, admin, { method: 'GET', url: `/api/v1/users/${other.id}` })
  t.equal(after.statusCode, 200, 'the other user still exists')
  t.same(after.json().data, before, 'and is unchanged')
  t.equal((await as(app, other, { method: 'GET', url: '/api/v1/auth/me' })).statusCode, 200, 'and can still log in')
})

t.test('a plain user may read, update, export and delete itself', async t => {
  const self = await createUser(app)
  const read = await as(app, self, { method: 'GET', url: `/api/v1/users/${self.id}` })
  t.equal(read.statusCode, 200)
  t.equal(read.json().data.email, self.email)

  const patched = await as(app, self, { method: 'PATCH', url: `/api/v1/users/${self.id}`, payload: { firstName: 'Myself', profile: { bio: 'me' } } })
  t.equal(patched.statusCode, 200)
  t.equal(patched.json().data.firstName, 'Myself')

  const put = await as(app, self, { method: 'PUT', url: `/api/v1/users/${self.id}`, payload: { email: self.email, firstName: 'Me', lastName: 'Again', profile: { locale: 'de' } } })
  t.equal(put.statusCode, 200)
  t.equal(put.json().data.lastName, 'Again')

  t.equal((await as(app, self, { method: 'GET', url: `/api/v1/users/${self.id}/profile` })).json().data.locale, 'de')
  t.equal((await as(app, self, { method: 'PATCH', url: `/api/v1/users/${self.id}/profile`, payload: { timezone: 'Europe/Berlin' } })).statusCode, 200)
  t.equal((await as(app, self, { method: 'PUT', url: `/api/v1/users/${self.id}/profile`, payload: { bio: 'only bio' } })).json().data.bio, 'only bio')
  const exported = await as(app, self, { method: 'GET', url: `/api/v1/users/${self.id}/export` })
  t.equal(exported.statusCode, 200)
  t.equal(exported.json().data.user.id, self.id)

  // Restore and roles need the permission even for oneself.
  assertError(t, await as(app, self, { method: 'POST', url: `/api/v1/users/${self.id}/restore` }), 403, 'FORBIDDEN', 'restore self')
  assertError(t, await as(app, self, { method: 'PUT', url: `/api/v1/users/${self.id}/roles`, payload: { roles: ['admin'] } }), 403, 'FORBIDDEN', 'roles of self')

  t.equal((await as(app, self, { method: 'DELETE', url: `/api/v1/users/${self.id}` })).statusCode, 204, 'delete self')
  assertError(t, await as(app, admin, { method: 'GET', url: `/api/v1/users/${self.id}` }), 404, 'NOT_FOUND')
})

t.test('a plain user cannot give itself roles or change its status', async t => {
  const self = await createUser(app)
  const attempts = [
    { method: 'PATCH', payload: { roles: ['admin'] } },
    { method: 'PATCH', payload: { roles: ['user'] } },
    { method: 'PATCH', payload: { status: 'active' } },
    { method: 'PATCH', payload: { firstName: 'Sneaky', status: 'suspended' } },
    { method: 'PUT', payload: { email: self.email, firstName: 'A', lastName: 'B', profile: null, roles: ['admin', 'user'] } },
    { method: 'PUT', payload: { email: self.email, firstName: 'A', lastName: 'B', profile: null, status: 'active' } }
  ] as const
  for (const attempt of attempts) {
    const res = await as(app, self, { method: attempt.method, url: `/api/v1/users/${self.id}`, payload: attempt.payload })
    assertError(t, res, 403, 'FORBIDDEN', `${attempt.method} ${JSON.stringify(attempt.payload)}`)
  }
  const me = await as(app, self, { method: 'GET', url: '/api/v1/auth/me' })
  t.same(me.json().data.roles, ['user'], 'still a plain user')
  t.same(me.json().data.permissions, [])
  t.equal(me.json().data.firstName, 'Test', 'nothing of the refused bodies was applied')
})

t.test('users:write without roles:manage cannot set roles or status', async t => {
  // A role row written directly: the roles API belongs to another suite.
  const roleName = `writer_${randomUUID().replaceAll('-', '').slice(0, 12)}`
  await db.insertInto('roles').values({ name: roleName, description: 'test', permissions: ['users:read', 'users:write'] }).execute()
  const writer = await createUser(app, { roles: [roleName] })
  const body = { email: uniqueEmail('written'), password: PASSWORD, firstName: 'W', lastName: 'R' }

  for (const extra of [{ roles: ['admin'] }, { roles: ['user'] }, { status: 'active' }]) {
    const res = await as(app, writer, { method: 'POST', url: '/api/v1/users', payload: { ...body, ...extra } })
    assertError(t, res, 403, 'FORBIDDEN', `create with ${JSON.stringify(extra)}`)
  }
  t.equal((await db.selectFrom('users').select('id').where('email', '=', body.email).execute()).length, 0, 'nothing created')

  const created = await as(app, writer, { method: 'POST', url: '/api/v1/users', payload: body })
  t.equal(created.statusCode, 201, 'without roles and status it may create')
  const id = created.json().data.id
  assertError(t, await as(app, writer, { method: 'PATCH', url: `/api/v1/users/${id}`, payload: { status: 'suspended' } }), 403, 'FORBIDDEN', 'patch status')
  assertError(t, await as(app, writer, { method: 'PUT', url: `/api/v1/users/${id}/roles`, payload: { roles: ['admin'] } }), 403, 'FORBIDDEN', 'set roles')
  const patched = await as(app, writer, { method: 'PATCH', url: `/api/v1/users/${id}`, payload: { firstName: 'Edited' } })
  t.equal(patched.statusCode, 200, 'other fields it may change')
  assertError(t, await as(app, writer, { method: 'DELETE', url: `/api/v1/users/${id}` }), 403, 'FORBIDDEN', 'no users:delete')
})

t.test('an admin may do everything to another user', async t => {
  const target = await createUser(app)
  for (const op of operations(target.id)) {
    const res = await as(app, admin, { ...op, method: op.method as 'GET' })
    t.ok(res.statusCode < 300, `${op.method} ${op.url.replace(target.id, ':id')}: ${res.statusCode}`)
    if (op.method === 'DELETE') {
      // Restore right away so the following operations find a live user.
      t.equal((await as(app, admin, { method: 'POST', url: `/api/v1/users/${target.id}/restore` })).statusCode, 200)
    }
  }
})
