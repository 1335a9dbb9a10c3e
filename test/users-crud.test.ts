import t from 'tap'
import { randomUUID } from 'node:crypto'
import { as, assertError, build, createUser, PASSWORD, uniqueEmail } from './helper.js'

const app = await build(t)
const admin = await createUser(app, { roles: ['admin'] })
const db = app.database.db

const newUser = (extra: Record<string, unknown> = {}) => ({ email: uniqueEmail('crud'), password: PASSWORD, firstName: 'Ada', lastName: 'Lovelace', ...extra })

async function create (extra: Record<string, unknown> = {}) {
  const res = await as(app, admin, { method: 'POST', url: '/api/v1/users', payload: newUser(extra) })
  if (res.statusCode !== 201) throw new Error(`create failed: ${res.statusCode} ${res.body}`)
  return res.json().data
}

const get = (id: string) => as(app, admin, { method: 'GET', url: `/api/v1/users/${id}` })
const liveCount = async (email: string) => (await db.selectFrom('users').select('id').where('email', '=', email.toLowerCase()).where('deletedAt', 'is', null).execute()).length

t.test('create: 201 with Location, ETag and the defaults', async t => {
  const email = `New.Person-${randomUUID().slice(0, 8)}@Example.TEST`
  const res = await as(app, admin, { method: 'POST', url: '/api/v1/users', payload: { email, password: PASSWORD, firstName: 'Grace', lastName: 'Hopper' } })
  t.equal(res.statusCode, 201)
  const body = res.json()
  t.equal(body.success, true)
  const user = body.data
  t.match(user.id, /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/)
  t.equal(res.headers.location, `/api/v1/users/${user.id}`)
  t.match(res.headers.etag, /^"[^"]+"$/)
  t.equal(user.email, email.toLowerCase())
  t.equal(user.firstName, 'Grace')
  t.equal(user.lastName, 'Hopper')
  t.equal(user.status, 'active')
  t.same(user.roles, ['user'])
  t.equal(user.emailVerified, false)
  t.equal(user.profile, null)
  t.equal(user.lastLoginAt, null)
  t.equal(user.createdAt, user.updatedAt)

  const fetched = await app.inject({ method: 'GET', url: res.headers.location as string, headers: { authorization: `Bearer ${admin.token}` } })
  t.equal(fetched.statusCode, 200)
  t.same(fetched.json().data, user, 'the Location names the created user')
  t.equal(fetched.headers.etag, res.headers.etag, 'the ETag of the 201 is the ETag of a GET')

  const login = await app.inject({ method: 'POST', url: '/api/v1/auth/login', payload: { email, password: PASSWORD } })
  t.equal(login.statusCode, 200, 'the created user can log in with its password')
})

t.test('create: an admin may set roles, status and a profile', async t => {
  const user = await create({ roles: ['user', 'admin'], status: 'suspended', profile: { bio: 'Hello', locale: 'en-GB' } })
  t.same(user.roles, ['admin', 'user'])
  t.equal(user.status, 'suspended')
  t.same(user.profile, { bio: 'Hello', avatarUrl: null, phone: null, locale: 'en-GB', timezone: null })
  t.same((await get(user.id)).json().data, user)
})

t.test('create: an unknown role is 400 and nothing is created', async t => {
  const payload = newUser({ roles: ['user', `no-such-role-${randomUUID().slice(0, 8)}`] })
  const res = await as(app, admin, { method: 'POST', url: '/api/v1/users', payload })
  const error = assertError(t, res, 400, 'VALIDATION_ERROR')
  t.ok(error.details?.some(d => d.field === 'roles'), 'a detail names roles')
  t.equal(await liveCount(payload.email), 0)
})

t.test('create: the password policy', async t => {
  const email = uniqueEmail('policy')
  const cases: Array<[string, string, string?]> = [
    ['Ab1defg', 'too short (7)'],
    ['Ab1' + 'x'.repeat(126), 'too long (129)'],
    ['ABCDEFG1', 'no lower-case letter'],
    ['abcdefg1', 'no upper-case letter'],
    ['Abcdefgh', 'no digit'],
    ['', 'empty'],
    [email.toUpperCase().replace(/^./, c => c.toLowerCase()), 'equal to the email, other case', email]
  ]
  for (const [password, why, forEmail] of cases) {
    const payload = newUser({ email: forEmail ?? uniqueEmail('policy'), password })
    const res = await as(app, admin, { method: 'POST', url: '/api/v1/users', payload })
    const error = assertError(t, res, 400, 'VALIDATION_ERROR', why)
    t.ok(error.details?.some(d => d.field === 'password'), `${why}: a detail names password`)
    t.notOk(res.body.includes(password) && password.length > 0, `${why}: the password is not echoed`)
    t.equal(await liveCount(payload.email), 0, `${why}: nothing created`)
  }
  // The boundaries are accepted.
  for (const password of ['Abcdef1g', 'Ab1' + 'x'.repeat(125)]) {
    const res = await as(app, admin, { method: 'POST', url: '/api/v1/users', payload: newUser({ password }) })
    t.equal(res.statusCode, 201, `a password of ${password.length} characters is accepted`)
  }
})

t.test('create: a taken email is 409 EMAIL_TAKEN, whatever its case', async t => {
  const email = uniqueEmail('taken')
  await create({ email })
  for (const again of [email, email.toUpperCase(), email.replace(/^./, c => c.toUpperCase())]) {
    const res = await as(app, admin, { method: 'POST', url: '/api/v1/users', payload: newUser({ email: again }) })
    const error = assertError(t, res, 409, 'EMAIL_TAKEN', again)
    t.ok(error.details?.some(d => d.field === 'email'), 'a detail names email')
  }
  t.equal(await liveCount(email), 1)
})

t.test('create: ten racing requests for one email give one 201 and nine 409 EMAIL_TAKEN', async t => {
  const email = uniqueEmail('race')
  const results = await Promise.all(Array.from({ length: 10 }, (_, i) =>
    as(app, admin, { method: 'POST', url: '/api/v1/users', payload: newUser({ email: i % 2 ? email.toUpperCase() : email }) })))
  const statuses = results.map(r => r.statusCode).sort()
  t.same(statuses, [201, ...Array(9).fill(409)])
  for (const res of results.filter(r => r.statusCode === 409)) t.equal(res.json().error.code, 'EMAIL_TAKEN')
  t.equal(await liveCount(email), 1, 'exactly one row')
})

t.test('create: every required field is required', async t => {
  for (const field of ['email', 'password', 'firstName', 'lastName']) {
    const payload: Record<string, unknown> = newUser()
    delete payload[field]
    const res = await as(app, admin, { method: 'POST', url: '/api/v1/users', payload })
    const error = assertError(t, res, 400, 'VALIDATION_ERROR', `without ${field}`)
    t.ok(error.details?.some(d => d.field === field), `a detail names ${field}`)
  }
  for (const [field, value] of [['email', 'not-an-email'], ['firstName', ''], ['lastName', '   '], ['status', 'deleted']] as const) {
    const res = await as(app, admin, { method: 'POST', url: '/api/v1/users', payload: newUser({ [field]: value }) })
    const error = assertError(t, res, 400, 'VALIDATION_ERROR', `${field}: ${JSON.stringify(value)}`)
    t.ok(error.details?.some(d => d.field === field), `a detail names ${field}`)
  }
})

t.test('get: 200 with an ETag; unknown is 404; a malformed id is 400', async t => {
  const user = await create()
  const res = await get(user.id)
  t.equal(res.statusCode, 200)
  t.same(res.json(), { success: true, data: user })
  t.match(res.headers.etag, /^"[^"]+"$/)

  assertError(t, await get(randomUUID()), 404, 'NOT_FOUND', 'unknown id')
  for (const bad of ['not-a-uuid', '123', `${randomUUID()}x`, "' or 1=1 --"]) {
    const error = assertError(t, await get(encodeURIComponent(bad)), 400, 'VALIDATION_ERROR', `id ${bad}`)
    t.ok(error.details?.some(d => d.field === 'id'), 'a detail names id')
  }
})

t.test('put: email, firstName, lastName and profile are all required', async t => {
  const user = await create({ profile: { bio: 'kept' } })
  const full = { email: user.email, firstName: 'New', lastName: 'Name', profile: null }
  for (const field of ['email', 'firstName', 'lastName', 'profile'] as const) {
    const payload: Record<string, unknown> = { ...full }
    delete payload[field]
    const res = await as(app, admin, { method: 'PUT', url: `/api/v1/users/${user.id}`, payload })
    const error = assertError(t, res, 400, 'VALIDATION_ERROR', `without ${field}`)
    t.ok(error.details?.some(d => d.field === field), `a detail names ${field}`)
  }
  t.same((await get(user.id)).json().data, user, 'the user is unchanged')
})

t.test('put: replaces the names and the whole profile', async t => {
  const user = await create({ profile: { bio: 'Old bio', phone: '+44 20 7946 0000', locale: 'en-GB', timezone: 'Europe/London' } })
  const res = await as(app, admin, {
    method: 'PUT',
    url: `/api/v1/users/${user.id}`,
    payload: { email: user.email, firstName: 'Ada', lastName: 'King', profile: { bio: 'New bio' } }
  })
  t.equal(res.statusCode, 200)
  const updated = res.json().data
  t.equal(updated.firstName, 'Ada')
  t.equal(updated.lastName, 'King')
  t.same(updated.profile, { bio: 'New bio', avatarUrl: null, phone: null, locale: null, timezone: null }, 'fields not given are cleared')
  t.equal(updated.emailVerified, user.emailVerified, 'same email: verification untouched')
  t.ok(updated.updatedAt >= user.updatedAt)
  t.same((await get(user.id)).json().data, updated)

  const cleared = await as(app, admin, { method: 'PUT', url: `/api/v1/users/${user.id}`, payload: { email: user.email, firstName: 'Ada', lastName: 'King', profile: null } })
  t.equal(cleared.statusCode, 200)
  t.equal(cleared.json().data.profile, null, 'profile: null removes it')
})

t.test('patch: a merge patch changes only what it names', async t => {
  const user = await create({ profile: { bio: 'Bio', phone: '+1 555 0100' } })
  let res = await as(app, admin, { method: 'PATCH', url: `/api/v1/users/${user.id}`, payload: { firstName: 'Patched', profile: { locale: 'fr-FR' } } })
  t.equal(res.statusCode, 200)
  let data = res.json().data
  t.equal(data.firstName, 'Patched')
  t.equal(data.lastName, user.lastName)
  t.equal(data.email, user.email)
  t.same(data.profile, { bio: 'Bio', avatarUrl: null, phone: '+1 555 0100', locale: 'fr-FR', timezone: null })

  res = await as(app, admin, {
    method: 'PATCH',
    url: `/api/v1/users/${user.id}`,
    headers: { 'content-type': 'application/merge-patch+json' },
    payload: JSON.stringify({ lastName: 'Merged', profile: { bio: null } })
  })
  t.equal(res.statusCode, 200, 'application/merge-patch+json is accepted')
  data = res.json().data
  t.equal(data.firstName, 'Patched')
  t.equal(data.lastName, 'Merged')
  t.same(data.profile, { bio: null, avatarUrl: null, phone: '+1 555 0100', locale: 'fr-FR', timezone: null }, 'a null member clears that field only')

  res = await as(app, admin, { method: 'PATCH', url: `/api/v1/users/${user.id}`, headers: { 'content-type': 'application/merge-patch+json; charset=utf-8' }, payload: JSON.stringify({ profile: null }) })
  t.equal(res.statusCode, 200)
  t.equal(res.json().data.profile, null, 'profile: null removes the profile')

  res = await as(app, admin, { method: 'PATCH', url: `/api/v1/users/${user.id}`, payload: {} })
  t.equal(res.statusCode, 200, 'an empty patch is fine')
  t.equal(res.json().data.lastName, 'Merged')
  t.same((await get(user.id)).json().data, res.json().data)
})

t.test('changing the email resets emailVerified and queues a verification email', async t => {
  for (const method of ['PATCH', 'PUT'] as const) {
    const user = await create()
    await db.updateTable('users').set({ emailVerified: true }).where('id', '=', user.id).execute()
    const newEmail = uniqueEmail('changed')
    const payload = method === 'PATCH' ? { email: newEmail.toUpperCase() } : { email: newEmail.toUpperCase(), firstName: 'A', lastName: 'B', profile: null }
    const res = await as(app, admin, { method, url: `/api/v1/users/${user.id}`, payload })
    t.equal(res.statusCode, 200, method)
    t.equal(res.json().data.email, newEmail, `${method}: stored lower-cased`)
    t.equal(res.json().data.emailVerified, false, `${method}: no longer verified`)
    const outbox = await db.selectFrom('emailOutbox').selectAll().where('toAddress', '=', newEmail).execute()
    t.equal(outbox.length, 1, `${method}: one email to the new address`)
    t.equal(outbox[0]?.template, 'verify_email')
    t.equal(typeof outbox[0]?.payload.token, 'string', 'the outbox row carries the token')
  }

  // The same address in another case is not a change.
  const user = await create()
  await db.updateTable('users').set({ emailVerified: true }).where('id', '=', user.id).execute()
  const before = await db.selectFrom('emailOutbox').select('id').where('toAddress', '=', user.email).execute()
  const res = await as(app, admin, { method: 'PATCH', url: `/api/v1/users/${user.id}`, payload: { email: user.email.toUpperCase() } })
  t.equal(res.statusCode, 200)
  t.equal(res.json().data.emailVerified, true, 'verification kept')
  const after = await db.selectFrom('emailOutbox').select('id').where('toAddress', '=', user.email).execute()
  t.equal(after.length, before.length, 'no new email')
})

t.test('changing the email to a taken one is 409 EMAIL_TAKEN and changes nothing', async t => {
  const [a, b] = [await create(), await create()]
  for (const method of ['PATCH', 'PUT'] as const) {
    const payload = method === 'PATCH' ? { email: a.email.toUpperCase(), firstName: 'Changed' } : { email: a.email, firstName: 'Changed', lastName: 'X', profile: null }
    assertError(t, await as(app, admin, { method, url: `/api/v1/users/${b.id}`, payload }), 409, 'EMAIL_TAKEN', method)
  }
  t.same((await get(b.id)).json().data, b, 'the user is unchanged')
  const outbox = await db.selectFrom('emailOutbox').select('id').where('toAddress', '=', a.email).where('createdAt', '>', new Date(b.createdAt)).execute()
  t.equal(outbox.length, 0, 'no verification email for the failed change')
})

t.test('delete: 204, then 404; logins revoked; the email is free again', async t => {
  const user = await createUser(app, { firstName: 'Doomed' })
  t.equal((await as(app, user, { method: 'GET', url: '/api/v1/auth/me' })).statusCode, 200)

  const res = await as(app, admin, { method: 'DELETE', url: `/api/v1/users/${user.id}` })
  t.equal(res.statusCode, 204)
  t.equal(res.body, '')
  assertError(t, await get(user.id), 404, 'NOT_FOUND', 'get after delete')
  assertError(t, await as(app, admin, { method: 'DELETE', url: `/api/v1/users/${user.id}` }), 404, 'NOT_FOUND', 'delete twice')
  assertError(t, await as(app, admin, { method: 'PATCH', url: `/api/v1/users/${user.id}`, payload: { firstName: 'X' } }), 404, 'NOT_FOUND', 'patch after delete')
  assertError(t, await as(app, user, { method: 'GET', url: `/api/v1/users/${user.id}` }), 401, 'UNAUTHORIZED', 'old access token')
  assertError(t, await as(app, user, { method: 'GET', url: '/api/v1/auth/me' }), 401, 'UNAUTHORIZED', 'old access token on /me')
  const sessions = await db.selectFrom('userSessions').select('revokedAt').where('userId', '=', user.id).execute()
  t.ok(sessions.length > 0 && sessions.every(s => s.revokedAt !== null), 'every session revoked')
  assertError(t, await app.inject({ method: 'POST', url: '/api/v1/auth/login', payload: { email: user.email, password: user.password } }), 401, 'INVALID_CREDENTIALS', 'deleted users cannot log in')

  const again = await as(app, admin, { method: 'POST', url: '/api/v1/users', payload: newUser({ email: user.email }) })
  t.equal(again.statusCode, 201, 'the email may be used again')
  t.not(again.json().data.id, user.id)
  const login = await app.inject({ method: 'POST', url: '/api/v1/auth/login', payload: { email: user.email, password: PASSWORD } })
  t.equal(login.statusCode, 200)
  t.equal(login.json().data.user.id, again.json().data.id, 'the login is the new account')
})

t.test('delete: a user may delete itself, and its email may be registered again', async t => {
  const user = await createUser(app)
  t.equal((await as(app, user, { method: 'DELETE', url: `/api/v1/users/${user.id}` })).statusCode, 204)
  assertError(t, await get(user.id), 404, 'NOT_FOUND')
  assertError(t, await as(app, user, { method: 'GET', url: `/api/v1/users/${user.id}` }), 401, 'UNAUTHORIZED')
  const registered = await app.inject({ method: 'POST', url: '/api/v1/auth/register', payload: { email: user.email.toUpperCase(), password: PASSWORD, firstName: 'Re', lastName: 'Born' } })
  t.equal(registered.statusCode, 201, 'registered again')
  t.not(registered.json().data.id, user.id)
  t.equal(registered.json().data.email, user.email)
})

t.test('restore: 200 and the user is back', async t => {
  const user = await create({ profile: { bio: 'Back' } })
  t.equal((await as(app, admin, { method: 'DELETE', url: `/api/v1/users/${user.id}` })).statusCode, 204)
  const res = await as(app, admin, { method: 'POST', url: `/api/v1/users/${user.id}/restore` })
  t.equal(res.statusCode, 200)
  const restored = res.json().data
  t.equal(restored.id, user.id)
  t.equal(restored.deletedAt, null)
  t.same(restored.profile, user.profile)
  t.equal((await get(user.id)).statusCode, 200)

  const twice = await as(app, admin, { method: 'POST', url: `/api/v1/users/${user.id}/restore` })
  t.equal(twice.statusCode, 200, 'restoring a live user is a no-op')
  assertError(t, await as(app, admin, { method: 'POST', url: `/api/v1/users/${randomUUID()}/restore` }), 404, 'NOT_FOUND', 'unknown id')
  assertError(t, await as(app, admin, { method: 'POST', url: '/api/v1/users/nope/restore' }), 400, 'VALIDATION_ERROR', 'malformed id')
})

t.test('restore: 409 EMAIL_TAKEN when the email was reused meanwhile', async t => {
  const user = await create()
  t.equal((await as(app, admin, { method: 'DELETE', url: `/api/v1/users/${user.id}` })).statusCode, 204)
  const other = await create({ email: user.email.toUpperCase() })
  assertError(t, await as(app, admin, { method: 'POST', url: `/api/v1/users/${user.id}/restore` }), 409, 'EMAIL_TAKEN')
  assertError(t, await get(user.id), 404, 'NOT_FOUND', 'still deleted')
  t.equal((await get(other.id)).statusCode, 200, 'the new owner keeps the email')
})
