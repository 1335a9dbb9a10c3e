import t from 'tap'
import { randomUUID } from 'node:crypto'
import { sql } from 'kysely'
import { as, assertError, build, createUser, PASSWORD, uniqueEmail } from './helper.js'

const app = await build(t)
const admin = await createUser(app, { roles: ['admin'] })
const db = app.database.db
const EMPTY_PROFILE = { bio: null, avatarUrl: null, phone: null, locale: null, timezone: null }

const profileUrl = (id: string) => `/api/v1/users/${id}/profile`

t.test('profile: GET, PUT replaces, PATCH merges', async t => {
  const user = await createUser(app)
  let res = await as(app, user, { method: 'GET', url: profileUrl(user.id) })
  t.equal(res.statusCode, 200)
  t.same(res.json(), { success: true, data: EMPTY_PROFILE }, 'no profile yet: every field null')

  const full = { bio: 'Engineer', avatarUrl: 'https://cdn.example.test/a.png', phone: '+44 (20) 7946-0000', locale: 'en-GB', timezone: 'Europe/London' }
  res = await as(app, user, { method: 'PUT', url: profileUrl(user.id), payload: full })
  t.equal(res.statusCode, 200)
  t.same(res.json().data, full)

  res = await as(app, user, { method: 'PUT', url: profileUrl(user.id), payload: { bio: 'Only bio' } })
  t.same(res.json().data, { ...EMPTY_PROFILE, bio: 'Only bio' }, 'PUT: missing fields become null')

  res = await as(app, user, { method: 'PATCH', url: profileUrl(user.id), payload: { locale: 'de-DE', timezone: 'Europe/Berlin' } })
  t.same(res.json().data, { ...EMPTY_PROFILE, bio: 'Only bio', locale: 'de-DE', timezone: 'Europe/Berlin' }, 'PATCH: merged')

  res = await as(app, user, { method: 'PATCH', url: profileUrl(user.id), headers: { 'content-type': 'application/merge-patch+json' }, payload: JSON.stringify({ bio: null }) })
  t.equal(res.statusCode, 200, 'merge-patch+json')
  t.same(res.json().data, { ...EMPTY_PROFILE, locale: 'de-DE', timezone: 'Europe/Berlin' }, 'a null member clears the field')

  res = await as(app, user, { method: 'PATCH', url: profileUrl(user.id), payload: {} })
  t.same(res.json().data, { ...EMPTY_PROFILE, locale: 'de-DE', timezone: 'Europe/Berlin' }, 'an empty patch changes nothing')

  const fetched = await as(app, admin, { method: 'GET', url: `/api/v1/users/${user.id}` })
  t.same(fetched.json().data.profile, res.json().data, 'the user shows the same profile')
  t.same((await as(app, admin, { method: 'GET', url: profileUrl(user.id) })).json().data, res.json().data, 'an admin reads it too')
})

t.test('profile: bad input and unknown users', async t => {
  const user = await createUser(app)
  const bad = [
    [{ avatarUrl: 'javascript:alert(1)' }, 'avatarUrl'],
    [{ avatarUrl: 'ftp://example.test/a.png' }, 'avatarUrl'],
    [{ phone: 'call me' }, 'phone'],
    [{ locale: 'english please' }, 'locale'],
    [{ timezone: 'Mars/Olympus Mons' }, 'timezone'],
    [{ bio: 'x'.repeat(2001) }, 'bio'],
    [{ bio: 42 }, 'bio'],
    [{ nickname: 'x' }, 'nickname']
  ] as const
  for (const method of ['PUT', 'PATCH'] as const) {
    for (const [payload, field] of bad) {
      const error = assertError(t, await as(app, user, { method, url: profileUrl(user.id), payload }), 400, 'VALIDATION_ERROR', `${method} ${JSON.stringify(payload).slice(0, 40)}`)
      t.ok(error.details?.some(d => d.field === field), `a detail names ${field}`)
    }
  }
  t.same((await as(app, user, { method: 'GET', url: profileUrl(user.id) })).json().data, EMPTY_PROFILE, 'nothing stored')
  for (const method of ['GET', 'PUT', 'PATCH'] as const) {
    const payload = method === 'GET' ? undefined : { bio: 'x' }
    assertError(t, await as(app, admin, { method, url: profileUrl(randomUUID()), payload }), 404, 'NOT_FOUND', `${method} unknown`)
    assertError(t, await as(app, admin, { method, url: profileUrl('nope'), payload }), 400, 'VALIDATION_ERROR', `${method} malformed`)
  }
})

t.test('export: everything held about the user', async t => {
  const user = await createUser(app, { firstName: 'Export', lastName: 'Me' })
  await as(app, user, { method: 'PATCH', url: `/api/v1/users/${user.id}`, payload: { lastName: 'Changed', profile: { bio: 'mine' } } })
  const res = await as(app, user, { method: 'GET', url: `/api/v1/users/${user.id}/export`, headers: { 'user-agent': 'export-test' } })
  t.equal(res.statusCode, 200)
  const data = res.json().data
  t.same(Object.keys(data).sort(), ['auditTrail', 'consents', 'identities', 'invitations', 'mfa', 'passkeys', 'profile', 'roles', 'sessions', 'user'])
  t.equal(data.user.id, user.id)
  t.equal(data.user.email, user.email)
  t.equal(data.user.lastName, 'Changed')
  t.same(data.profile, { ...EMPTY_PROFILE, bio: 'mine' })
  t.same(data.roles, ['user'])
  t.ok(data.sessions.length >= 1, 'the login is listed')
  t.match(data.sessions[0], { id: String, createdAt: String, lastUsedAt: String, expiresAt: String, revokedAt: null, ip: String })
  const actions = data.auditTrail.map((a: { action: string }) => a.action)
  for (const action of ['user.created', 'auth.login', 'user.updated']) t.ok(actions.includes(action), `the audit trail holds ${action}`)
  t.ok(data.auditTrail.every((a: { userId: string | null, actorId: string | null }) => a.userId === user.id || a.actorId === user.id), 'only rows about or by the user')
  // A login's audit row names its method ("password"); no key or value may be a secret.
  t.notMatch(JSON.stringify(data), /"password[a-z_]*"\s*:|hash|argon/i, 'no secret of any kind')
  t.notOk(res.body.includes(user.password), 'not the password itself')

  assertError(t, await as(app, admin, { method: 'GET', url: `/api/v1/users/${randomUUID()}/export` }), 404, 'NOT_FOUND', 'unknown')
  assertError(t, await as(app, admin, { method: 'GET', url: '/api/v1/users/x/export' }), 400, 'VALIDATION_ERROR', 'malformed')
})

/** Every place a user's personal data could remain after erasure, as text. */
async function traces (id: string) {
  const audit = await db.selectFrom('userAuditLog').selectAll().where(eb => eb.or([eb('userId', '=', id), eb('actorId', '=', id)])).execute()
  return { audit, text: JSON.stringify(audit) }
}

t.test('erase: 204, then 404 everywhere; the audit trail stays without PII; the email is free', async t => {
  const first = `Zelda${randomUUID().slice(0, 6)}`
  const last = `Quux${randomUUID().slice(0, 6)}`
  const user = await createUser(app, { firstName: first, lastName: last })
  const ua = { 'user-agent': `SecretBrowser/${randomUUID().slice(0, 6)}` }
  await as(app, user, { method: 'PATCH', url: `/api/v1/users/${user.id}`, headers: ua, payload: { profile: { bio: 'private', phone: '+1 555 0199' } } })
  const newEmail = uniqueEmail('erase-new')
  t.equal((await as(app, user, { method: 'PATCH', url: `/api/v1/users/${user.id}`, headers: ua, payload: { email: newEmail } })).statusCode, 200)
  await app.inject({ method: 'POST', url: '/api/v1/auth/login', headers: ua, payload: { email: newEmail, password: 'Wrong-password-1' } })
  const auditBefore = (await traces(user.id)).audit.length
  t.ok(auditBefore >= 4, 'the user has an audit trail')
  t.ok((await db.selectFrom('emailOutbox').select('id').where('toAddress', 'in', [user.email, newEmail]).execute()).length >= 2, 'emails were queued to both addresses')

  const res = await as(app, admin, { method: 'POST', url: `/api/v1/users/${user.id}/erase` })
  t.equal(res.statusCode, 204)
  t.equal(res.body, '')

  const id = user.id
  const everywhere = [
    ['GET', `/api/v1/users/${id}`], ['PUT', `/api/v1/users/${id}`], ['PATCH', `/api/v1/users/${id}`], ['DELETE', `/api/v1/users/${id}`],
    ['POST', `/api/v1/users/${id}/restore`], ['PUT', `/api/v1/users/${id}/roles`], ['GET', `/api/v1/users/${id}/profile`],
    ['PUT', `/api/v1/users/${id}/profile`], ['PATCH', `/api/v1/users/${id}/profile`], ['GET', `/api/v1/users/${id}/export`],
    ['POST', `/api/v1/users/${id}/erase`]
  ] as const
  const bodies: Record<string, unknown> = {
    [`PUT /api/v1/users/${id}`]: { email: uniqueEmail(), firstName: 'A', lastName: 'B', profile: null },
    [`PATCH /api/v1/users/${id}`]: { firstName: 'A' },
    [`PUT /api/v1/users/${id}/roles`]: { roles: ['user'] },
    [`PUT /api/v1/users/${id}/profile`]: { bio: 'x' },
    [`PATCH /api/v1/users/${id}/profile`]: { bio: 'x' }
  }
  for (const [method, url] of everywhere) {
    const res = await as(app, admin, { method, url, payload: bodies[`${method} ${url}`] as object | undefined })
    assertError(t, res, 404, 'NOT_FOUND', `${method} ${url.replace(id, ':id')}`)
  }
  const listed = await as(app, admin, { method: 'GET', url: `/api/v1/users?includeDeleted=true&q=${encodeURIComponent(first)}` })
  t.same(listed.json().data, [], 'not listed, even with includeDeleted')
  assertError(t, await as(app, user, { method: 'GET', url: '/api/v1/auth/me' }), 401, 'UNAUTHORIZED', 'its tokens are dead')
  assertError(t, await app.inject({ method: 'POST', url: '/api/v1/auth/login', payload: { email: newEmail, password: PASSWORD } }), 401, 'INVALID_CREDENTIALS', 'it cannot log in')

  // The row is anonymised for good.
  const row = await db.selectFrom('users').selectAll().where('id', '=', id).executeTakeFirstOrThrow()
  for (const pii of [user.email, newEmail, first, last]) t.notOk(JSON.stringify(row).includes(pii), `the users row no longer holds ${pii}`)
  t.notOk(row.passwordHash !== null && await app.hasher.verify(row.passwordHash, PASSWORD), 'the password no longer works')
  t.equal((await db.selectFrom('userProfiles').select('userId').where('userId', '=', id).execute()).length, 0, 'no profile')
  t.equal((await db.selectFrom('userSessions').select('id').where('userId', '=', id).execute()).length, 0, 'no sessions')
  t.equal((await db.selectFrom('emailOutbox').select('id').where('toAddress', 'in', [user.email, newEmail]).execute()).length, 0, 'no queued email to any of its addresses')
  t.equal((await db.selectFrom('emailOutbox').select('id').where(sql`payload->>'userId'`, '=', id).execute()).length, 0, 'no queued email about it')

  // The audit trail keeps its rows, without PII.
  const { audit, text } = await traces(id)
  t.equal(audit.length, auditBefore + 1, 'every row kept, plus user.erased')
  t.ok(audit.some(a => a.action === 'user.erased' && a.actorId === admin.id), 'user.erased by the admin')
  for (const pii of [user.email, newEmail, first, last, ua['user-agent'], '+1 555 0199', 'private']) {
    t.notOk(text.includes(pii), `the audit trail no longer holds ${pii}`)
  }
  for (const row of audit.filter(a => a.action !== 'user.erased')) {
    t.equal(row.ip, null, `${row.action}: no ip`)
    t.equal(row.userAgent, null, `${row.action}: no user agent`)
  }

  // The address may be used again.
  const again = await as(app, admin, { method: 'POST', url: '/api/v1/users', payload: { email: newEmail, password: PASSWORD, firstName: 'New', lastName: 'Owner' } })
  t.equal(again.statusCode, 201, 'the email may be reused')
  t.not(again.json().data.id, id)
})

t.test('erase: a user may erase itself; a soft-deleted user may be erased', async t => {
  const self = await createUser(app)
  const res = await as(app, self, { method: 'POST', url: `/api/v1/users/${self.id}/erase`, headers: { 'user-agent': 'self-eraser' } })
  t.equal(res.statusCode, 204)
  assertError(t, await as(app, admin, { method: 'GET', url: `/api/v1/users/${self.id}` }), 404, 'NOT_FOUND')
  const { audit, text } = await traces(self.id)
  t.ok(audit.some(a => a.action === 'user.erased' && a.actorId === self.id), 'user.erased by itself')
  t.ok(audit.every(a => a.ip === null && a.userAgent === null), 'not even the erasure row holds its ip or user agent')
  t.notOk(text.includes(self.email), 'no email')

  const gone = await createUser(app)
  t.equal((await as(app, admin, { method: 'DELETE', url: `/api/v1/users/${gone.id}` })).statusCode, 204)
  t.equal((await as(app, admin, { method: 'POST', url: `/api/v1/users/${gone.id}/erase` })).statusCode, 204, 'erase after soft delete')
  assertError(t, await as(app, admin, { method: 'POST', url: `/api/v1/users/${gone.id}/restore` }), 404, 'NOT_FOUND', 'an erased user cannot be restored')
  assertError(t, await as(app, admin, { method: 'POST', url: `/api/v1/users/${randomUUID()}/erase` }), 404, 'NOT_FOUND', 'unknown')
})
