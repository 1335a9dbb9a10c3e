import t from 'tap'
import { randomUUID } from 'node:crypto'
import { as, build, createUser, PASSWORD, uniqueEmail } from './helper.js'

const app = await build(t)
const admin = await createUser(app, { roles: ['admin'] })

const ISO_MS_UTC = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/
const TIMESTAMP_KEYS = new Set(['createdAt', 'updatedAt', 'lastLoginAt', 'deletedAt', 'lastUsedAt', 'expiresAt', 'revokedAt'])

/** Every key path in a JSON value whose key looks like a secret. */
function secretKeys (value: unknown, path = ''): string[] {
  if (Array.isArray(value)) return value.flatMap((v, i) => secretKeys(v, `${path}[${i}]`))
  if (value === null || typeof value !== 'object') return []
  return Object.entries(value).flatMap(([k, v]) => [...(/password|hash/i.test(k) ? [`${path}.${k}`] : []), ...secretKeys(v, `${path}.${k}`)])
}

/** Every timestamp-named value in a JSON value that is not an ISO-8601 UTC string with milliseconds. */
function badTimestamps (value: unknown, path = ''): string[] {
  if (Array.isArray(value)) return value.flatMap((v, i) => badTimestamps(v, `${path}[${i}]`))
  if (value === null || typeof value !== 'object') return []
  return Object.entries(value).flatMap(([k, v]) => [
    ...(TIMESTAMP_KEYS.has(k) && v !== null && !(typeof v === 'string' && ISO_MS_UTC.test(v) && new Date(v).toISOString() === v) ? [`${path}.${k}=${JSON.stringify(v)}`] : []),
    ...badTimestamps(v, `${path}.${k}`)
  ])
}

t.test('X-Request-Id: a valid client id is echoed, anything else replaced', async t => {
  const valid = ['a', 'abc-123', 'A.b_c:d-E', '0'.repeat(128), randomUUID(), 'trace:span.1_2-3']
  for (const id of valid) {
    const res = await app.inject({ method: 'GET', url: '/health', headers: { 'x-request-id': id } })
    t.equal(res.headers['x-request-id'], id, `echoed: ${id.slice(0, 40)}`)
  }
  const invalid = ['', 'has space', 'x'.repeat(129), 'semi;colon', 'slash/id', 'ünïcode', '<script>', 'a,b']
  const generated = new Set<string>()
  for (const id of invalid) {
    const res = await app.inject({ method: 'GET', url: '/health', headers: { 'x-request-id': id } })
    const sent = res.headers['x-request-id'] as string
    t.not(sent, id, `replaced: ${JSON.stringify(id.slice(0, 40))}`)
    t.match(sent, /^[A-Za-z0-9._:-]{1,128}$/, 'by a well-formed one')
    generated.add(sent)
  }
  t.equal(generated.size, invalid.length, 'a new id for every request')

  // On every kind of response, the error envelope included.
  const requestId = `conv-${randomUUID()}`
  for (const [method, url, user] of [
    ['GET', `/api/v1/users/${admin.id}`, admin], ['GET', '/api/v1/users', undefined], ['GET', '/api/v1/nowhere', undefined],
    ['DELETE', '/api/v1/users', admin], ['GET', '/api/v1/users/bad-id', admin]
  ] as const) {
    const res = await as(app, user, { method, url, headers: { 'x-request-id': requestId } })
    t.equal(res.headers['x-request-id'], requestId, `${method} ${url} (${res.statusCode})`)
    if (res.statusCode >= 400) t.equal(res.json().error.requestId, requestId, 'and in the envelope')
  }
  const replaced = await as(app, admin, { method: 'GET', url: '/api/v1/users/bad-id', headers: { 'x-request-id': 'bad id' } })
  t.equal(replaced.json().error.requestId, replaced.headers['x-request-id'], 'a replaced id is the one in the envelope')
})

t.test('emails are returned lower-cased and match case-insensitively', async t => {
  const mixed = `MiXeD.Case-${randomUUID().slice(0, 8)}@Example.TEST`
  const created = await as(app, admin, { method: 'POST', url: '/api/v1/users', payload: { email: mixed, password: PASSWORD, firstName: 'Mixed', lastName: 'Case' } })
  t.equal(created.json().data.email, mixed.toLowerCase(), 'create')
  const id = created.json().data.id
  t.equal((await as(app, admin, { method: 'GET', url: `/api/v1/users/${id}` })).json().data.email, mixed.toLowerCase(), 'get')
  const listed = await as(app, admin, { method: 'GET', url: `/api/v1/users?q=${encodeURIComponent(mixed.toUpperCase())}` })
  t.same(listed.json().data.map((u: { email: string }) => u.email), [mixed.toLowerCase()], 'list, searched in another case')
  const login = await app.inject({ method: 'POST', url: '/api/v1/auth/login', payload: { email: mixed.toUpperCase(), password: PASSWORD } })
  t.equal(login.statusCode, 200, 'login in another case')
  t.equal(login.json().data.user.email, mixed.toLowerCase())
  const patched = await as(app, admin, { method: 'PATCH', url: `/api/v1/users/${id}`, payload: { email: 'UPPER-' + mixed } })
  t.equal(patched.json().data.email, ('upper-' + mixed).toLowerCase(), 'patch')
})

t.test('no user-returning endpoint ever shows a password or hash; timestamps are ISO-8601 UTC with milliseconds', async t => {
  const self = await createUser(app)
  const email = uniqueEmail('secret')
  const create = await as(app, admin, { method: 'POST', url: '/api/v1/users', payload: { email, password: PASSWORD, firstName: 'S', lastName: 'T', profile: { bio: 'b' } } })
  const id = create.json().data.id as string
  const login = await app.inject({ method: 'POST', url: '/api/v1/auth/login', payload: { email, password: PASSWORD } })
  const gone = await createUser(app)
  await as(app, admin, { method: 'DELETE', url: `/api/v1/users/${gone.id}` })
  const responses = {
    'POST /users': create,
    'POST /auth/login': login,
    'GET /auth/me': await as(app, self, { method: 'GET', url: '/api/v1/auth/me' }),
    'GET /users': await as(app, admin, { method: 'GET', url: `/api/v1/users?q=${encodeURIComponent(email)}` }),
    'GET /users?includeDeleted': await as(app, admin, { method: 'GET', url: `/api/v1/users?includeDeleted=true&q=${encodeURIComponent(gone.email)}` }),
    'GET /users/:id': await as(app, admin, { method: 'GET', url: `/api/v1/users/${id}` }),
    'GET /users/:id (self)': await as(app, self, { method: 'GET', url: `/api/v1/users/${self.id}` }),
    'PUT /users/:id': await as(app, admin, { method: 'PUT', url: `/api/v1/users/${id}`, payload: { email, firstName: 'S', lastName: 'T', profile: null } }),
    'PATCH /users/:id': await as(app, admin, { method: 'PATCH', url: `/api/v1/users/${id}`, payload: { lastName: 'U' } }),
    'PUT /users/:id/roles': await as(app, admin, { method: 'PUT', url: `/api/v1/users/${id}/roles`, payload: { roles: ['user'] } }),
    'GET /users/:id/profile': await as(app, admin, { method: 'GET', url: `/api/v1/users/${id}/profile` }),
    'PATCH /users/:id/profile': await as(app, admin, { method: 'PATCH', url: `/api/v1/users/${id}/profile`, payload: { bio: 'c' } }),
    'GET /users/:id/export': await as(app, admin, { method: 'GET', url: `/api/v1/users/${id}/export` }),
    'DELETE /users/:id': await as(app, admin, { method: 'DELETE', url: `/api/v1/users/${id}` }),
    'POST /users/:id/restore': await as(app, admin, { method: 'POST', url: `/api/v1/users/${id}/restore` })
  }
  for (const [name, res] of Object.entries(responses)) {
    t.ok(res.statusCode < 300, `${name}: ${res.statusCode}`)
    if (res.statusCode === 204) continue
    t.ok(String(res.headers['content-type']).startsWith('application/json'), `${name}: JSON`)
    const body = res.json()
    t.equal(body.success, true, `${name}: the success envelope`)
    t.same(secretKeys(body), [], `${name}: no password or hash key`)
    t.notMatch(res.body, /\$argon2/, `${name}: no hash value`)
    t.same(badTimestamps(body), [], `${name}: timestamps are ISO-8601 UTC with milliseconds`)
  }
  // lastLoginAt and deletedAt were set above, so they were checked rather than skipped as null.
  t.match(responses['GET /users/:id'].json().data.lastLoginAt, ISO_MS_UTC, 'lastLoginAt')
  t.match(responses['GET /users?includeDeleted'].json().data[0]?.deletedAt, ISO_MS_UTC, 'deletedAt')
})
