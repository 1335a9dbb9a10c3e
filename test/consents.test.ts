import t from 'tap'
import { randomUUID } from 'node:crypto'
import { loadConfig } from '../src/config.js'
import { as, assertError, build, createUser, PASSWORD, uniqueEmail } from './helper.js'

const app = await build(t)
const admin = await createUser(app, { roles: ['admin'] })
const db = app.database.db

const consentsUrl = (id: string, purpose?: string) => `/api/v1/users/${id}/consents${purpose ? `/${purpose}` : ''}`
const consentAudit = (userId: string) => db.selectFrom('userAuditLog').select(['actorId', 'changes', 'ip', 'userAgent'])
  .where('userId', '=', userId).where('action', '=', 'user.consent_changed').orderBy('seq').execute()

t.test('PUT records a change; GET lists the latest state per purpose; the history is kept', async t => {
  const user = await createUser(app)
  let res = await as(app, user, { method: 'GET', url: consentsUrl(user.id) })
  t.equal(res.statusCode, 200)
  t.same(res.json(), { success: true, data: [] }, 'nothing decided yet: nothing listed')

  res = await as(app, user, { method: 'PUT', url: consentsUrl(user.id, 'marketing'), payload: { granted: true, version: 'v1' } })
  t.equal(res.statusCode, 200)
  t.match(res.json().data, { purpose: 'marketing', granted: true, version: 'v1', updatedAt: String })
  res = await as(app, user, { method: 'PUT', url: consentsUrl(user.id, 'marketing'), payload: { granted: false, version: 'v1' } })
  t.match(res.json().data, { purpose: 'marketing', granted: false, version: 'v1' }, 'withdrawn')
  res = await as(app, user, { method: 'PUT', url: consentsUrl(user.id, 'marketing'), payload: { granted: false, version: 'v1' } })
  t.equal(res.statusCode, 200, 'the same state again')
  res = await as(app, user, { method: 'PUT', url: consentsUrl(user.id, 'terms'), payload: { granted: true, version: '2026-01' } })

  res = await as(app, user, { method: 'GET', url: consentsUrl(user.id) })
  t.same(res.json().data.map((c: { purpose: string, granted: boolean, version: string }) => [c.purpose, c.granted, c.version]),
    [['marketing', false, 'v1'], ['terms', true, '2026-01']], 'the latest per purpose')

  const rows = await db.selectFrom('userConsents').select(['purpose', 'granted', 'version']).where('userId', '=', user.id).orderBy('seq').execute()
  t.same(rows, [
    { purpose: 'marketing', granted: true, version: 'v1' },
    { purpose: 'marketing', granted: false, version: 'v1' },
    { purpose: 'terms', granted: true, version: '2026-01' }
  ], 'every change is a row; the repeated state added none')

  const audit = await consentAudit(user.id)
  t.same(audit.map(a => a.changes), [
    { purpose: 'marketing', granted: true, version: 'v1' },
    { purpose: 'marketing', granted: false, version: 'v1' },
    { purpose: 'terms', granted: true, version: '2026-01' }
  ], 'each change audited as user.consent_changed with purpose, granted and version only')
  t.ok(audit.every(a => a.actorId === user.id), 'by the user itself')

  const exported = (await as(app, user, { method: 'GET', url: `/api/v1/users/${user.id}/export` })).json().data
  t.same(exported.consents.map((c: { purpose: string, granted: boolean }) => [c.purpose, c.granted]),
    [['marketing', true], ['marketing', false], ['terms', true]], 'the export holds the whole history, oldest first')
  t.ok(exported.consents.every((c: { createdAt: string }) => typeof c.createdAt === 'string'))
})

t.test('the history is append-only in the database', async t => {
  const user = await createUser(app)
  await as(app, user, { method: 'PUT', url: consentsUrl(user.id, 'privacy'), payload: { granted: true, version: 'v2' } })
  await t.rejects(db.updateTable('userConsents').set({ granted: false }).where('userId', '=', user.id).execute(), /append-only/, 'no update')
  await t.rejects(db.deleteFrom('userConsents').where('userId', '=', user.id).execute(), /append-only/, 'no delete outside an erasure')
  t.equal((await db.selectFrom('userConsents').select('seq').where('userId', '=', user.id).execute()).length, 1, 'the row is still there')
})

t.test('permissions: self or users:read to read, self or users:write to change', async t => {
  const user = await createUser(app)
  const other = await createUser(app)
  assertError(t, await as(app, other, { method: 'GET', url: consentsUrl(user.id) }), 403, 'FORBIDDEN', 'another user cannot read')
  assertError(t, await as(app, other, { method: 'PUT', url: consentsUrl(user.id, 'terms'), payload: { granted: true, version: 'v1' } }), 403, 'FORBIDDEN', 'nor change')
  assertError(t, await app.inject({ method: 'GET', url: consentsUrl(user.id) }), 401, 'UNAUTHORIZED', 'anonymous')
  const res = await as(app, admin, { method: 'PUT', url: consentsUrl(user.id, 'terms'), payload: { granted: true, version: 'v1' } })
  t.equal(res.statusCode, 200, 'an admin may change it')
  t.equal((await as(app, admin, { method: 'GET', url: consentsUrl(user.id) })).json().data.length, 1, 'and read it')
  t.equal((await consentAudit(user.id))[0].actorId, admin.id, 'audited with the admin as actor')
})

t.test('bad input: unknown purpose, bad body, unknown or malformed user', async t => {
  const user = await createUser(app)
  const unknown = assertError(t, await as(app, user, { method: 'PUT', url: consentsUrl(user.id, 'newsletter'), payload: { granted: true, version: 'v1' } }), 400, 'VALIDATION_ERROR', 'unknown purpose')
  t.equal(unknown.details?.[0].field, 'purpose')
  assertError(t, await as(app, user, { method: 'PUT', url: consentsUrl(user.id, 'Not A Purpose'), payload: { granted: true, version: 'v1' } }), 400, 'VALIDATION_ERROR', 'malformed purpose')
  for (const payload of [{ granted: true }, { version: 'v1' }, { granted: 'yes', version: 'v1' }, { granted: true, version: '' }, { granted: true, version: 'v1', extra: 1 }]) {
    assertError(t, await as(app, user, { method: 'PUT', url: consentsUrl(user.id, 'terms'), payload }), 400, 'VALIDATION_ERROR', JSON.stringify(payload))
  }
  assertError(t, await as(app, admin, { method: 'GET', url: consentsUrl(randomUUID()) }), 404, 'NOT_FOUND', 'unknown user')
  assertError(t, await as(app, admin, { method: 'PUT', url: consentsUrl(randomUUID(), 'terms'), payload: { granted: true, version: 'v1' } }), 404, 'NOT_FOUND', 'unknown user (PUT)')
  assertError(t, await as(app, admin, { method: 'GET', url: consentsUrl('nope') }), 400, 'VALIDATION_ERROR', 'malformed id')
  t.equal((await db.selectFrom('userConsents').select('seq').where('userId', '=', user.id).execute()).length, 0, 'nothing recorded')
})

t.test('register: consents are granted with the account, in one transaction', async t => {
  const email = uniqueEmail('consenting')
  const res = await app.inject({
    method: 'POST',
    url: '/api/v1/auth/register',
    payload: { email, password: PASSWORD, firstName: 'Con', lastName: 'Sent', consents: { terms: '2026-01', privacy: 'v3' } }
  })
  t.equal(res.statusCode, 201)
  const id = res.json().data.id
  const rows = await db.selectFrom('userConsents').select(['purpose', 'granted', 'version']).where('userId', '=', id).orderBy('purpose').execute()
  t.same(rows, [{ purpose: 'privacy', granted: true, version: 'v3' }, { purpose: 'terms', granted: true, version: '2026-01' }])
  t.ok((await consentAudit(id)).every(a => a.actorId === id), 'audited with the new user as actor')

  const badEmail = uniqueEmail('unconsenting')
  const bad = await app.inject({
    method: 'POST',
    url: '/api/v1/auth/register',
    payload: { email: badEmail, password: PASSWORD, firstName: 'No', lastName: 'Way', consents: { terms: 'v1', newsletter: 'v1' } }
  })
  const error = assertError(t, bad, 400, 'VALIDATION_ERROR', 'an unknown purpose')
  t.equal(error.details?.[0].field, 'consents.newsletter')
  t.equal((await db.selectFrom('users').select('id').where('email', '=', badEmail).execute()).length, 0, 'no account was made')
  assertError(t, await app.inject({
    method: 'POST', url: '/api/v1/auth/register', payload: { email: badEmail, password: PASSWORD, firstName: 'No', lastName: 'Way', consents: { terms: 1 } }
  }), 400, 'VALIDATION_ERROR', 'a version must be a string')
})

t.test('CONSENT_PURPOSES configures the purposes', async t => {
  const custom = await build(t, {}, { CONSENT_PURPOSES: 'analytics, terms' })
  const user = await createUser(custom)
  t.equal((await as(custom, user, { method: 'PUT', url: consentsUrl(user.id, 'analytics'), payload: { granted: true, version: 'v1' } })).statusCode, 200)
  assertError(t, await as(custom, user, { method: 'PUT', url: consentsUrl(user.id, 'marketing'), payload: { granted: true, version: 'v1' } }), 400, 'VALIDATION_ERROR', 'not configured here')
})

t.test('a malformed CONSENT_PURPOSES stops the start with a message naming it', async t => {
  for (const value of ['', ' , ', 'Terms', 'terms,terms', 'a b']) {
    t.throws(() => loadConfig({ CONSENT_PURPOSES: value }), { name: 'ConfigError', message: /CONSENT_PURPOSES/ }, JSON.stringify(value))
  }
  t.same(loadConfig({}).consentPurposes, ['terms', 'privacy', 'marketing'], 'the default')
  t.equal(loadConfig({}).auditDataAccess, false, 'AUDIT_DATA_ACCESS is off by default')
})
