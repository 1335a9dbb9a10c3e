import t from 'tap'
import { randomUUID } from 'node:crypto'
import { as, assertError, build, createUser, PASSWORD, uniqueEmail } from './helper.js'

const app = await build(t)
const db = app.database.db
const admin = await createUser(app, { roles: ['admin'] })

const newUser = (extra: Record<string, unknown> = {}) => ({ email: uniqueEmail('batch'), password: PASSWORD, firstName: 'Ada', lastName: 'Lovelace', ...extra })
const batch = (caller: { token: string }, operations: unknown[], atomic?: boolean) =>
  as(app, caller, { method: 'POST', url: '/api/v1/users/batch', payload: { operations, ...(atomic === undefined ? {} : { atomic }) } })
const userByEmail = (email: string) => db.selectFrom('users').select(['id', 'deletedAt']).where('email', '=', email.toLowerCase()).executeTakeFirst()
const auditOf = (requestId: string) => db.selectFrom('userAuditLog').select(['action', 'userId', 'actorId', 'changes']).where('requestId', '=', requestId).orderBy('seq').execute()

interface Result { index: number, status: number, data?: { id: string, email: string, firstName: string }, error?: { code: string, details?: Array<{ field?: string }> } }
const resultsOf = (res: { statusCode: number, body: string, json: () => any }): Result[] => {
  if (res.statusCode !== 200) throw new Error(`batch answered ${res.statusCode}: ${res.body}`)
  return res.json().data.results
}

t.test('not atomic: each operation answers the status its single request would have', async t => {
  const existing = await createUser(app)
  const doomed = await createUser(app)
  const deleted = await createUser(app)
  await as(app, admin, { method: 'DELETE', url: `/api/v1/users/${deleted.id}` })
  const fresh = newUser()
  const operations = [
    { op: 'create', body: fresh },
    { op: 'create', body: newUser({ email: existing.email }) },
    { op: 'create', body: newUser({ password: 'short' }) },
    { op: 'create', body: { ...newUser(), nickname: 'x' } },
    { op: 'update', id: existing.id, body: { firstName: 'Renamed' } },
    { op: 'update', id: randomUUID(), body: { firstName: 'Nobody' } },
    { op: 'update', id: 'not-a-uuid', body: { firstName: 'Nobody' } },
    { op: 'delete', id: doomed.id },
    { op: 'delete', id: doomed.id },
    { op: 'restore', id: deleted.id },
    { op: 'update', id: existing.id },
    { op: 'create', id: existing.id, body: newUser() }
  ]
  const res = await batch(admin, operations)
  const results = resultsOf(res)
  t.same(results.map(r => r.index), operations.map((_, i) => i), 'every operation answered, in order')
  t.same(results.map(r => r.status), [201, 409, 400, 400, 200, 404, 400, 204, 404, 200, 400, 400])
  t.equal(results[0].data?.email, fresh.email.toLowerCase(), 'a create answers the user')
  t.equal(results[1].error?.code, 'EMAIL_TAKEN')
  t.match(results[2].error, { code: 'VALIDATION_ERROR', details: [{ field: 'password' }] }, 'the password policy, as for POST /users')
  t.match(results[3].error, { code: 'VALIDATION_ERROR', details: [{ field: 'nickname' }] }, 'the single request\'s schema: unknown properties are refused')
  t.equal(results[4].data?.firstName, 'Renamed')
  t.equal(results[5].error?.code, 'NOT_FOUND')
  t.match(results[6].error, { code: 'VALIDATION_ERROR', details: [{ field: 'id' }] }, 'a malformed id, as in a path')
  t.notOk(results[7].data, 'a delete answers no user (204)')
  t.equal(results[9].data?.id, deleted.id)

  // The single requests answer the same.
  const single = await as(app, admin, { method: 'POST', url: '/api/v1/users', payload: newUser({ email: existing.email }) })
  assertError(t, single, 409, 'EMAIL_TAKEN')
  const singlePolicy = await as(app, admin, { method: 'POST', url: '/api/v1/users', payload: newUser({ password: 'short' }) })
  const policyError = assertError(t, singlePolicy, 400, 'VALIDATION_ERROR')
  t.same(results[2].error?.details, policyError.details, 'the same details as the single request')
  const singleUnknownField = await as(app, admin, { method: 'POST', url: '/api/v1/users', payload: { ...newUser(), nickname: 'x' } })
  t.same(results[3].error?.details, assertError(t, singleUnknownField, 400, 'VALIDATION_ERROR').details)

  t.ok(await userByEmail(fresh.email), 'the create was written')
  t.ok((await userByEmail(doomed.email))?.deletedAt, 'the delete was written')
  t.equal((await userByEmail(deleted.email))?.deletedAt, null, 'the restore was written')
  const trail = await auditOf(res.headers['x-request-id'] as string)
  t.same(trail.map(row => row.action), ['user.created', 'user.updated', 'user.deleted', 'user.restored'], 'an audit row for each write, as the singles write them')
  t.ok(trail.every(row => row.actorId === admin.id), 'the caller is the actor')
  t.match(trail[1].changes, { firstName: { from: 'Test', to: 'Renamed' } })
})

t.test('each operation is authorised on its own', async t => {
  const caller = await createUser(app)
  const other = await createUser(app)
  const res = await batch(caller, [
    { op: 'update', id: caller.id, body: { lastName: 'Myself' } },
    { op: 'update', id: other.id, body: { lastName: 'Hacked' } },
    { op: 'create', body: newUser() },
    { op: 'restore', id: other.id },
    { op: 'update', id: caller.id, body: { roles: ['admin'] } },
    { op: 'delete', id: other.id },
    { op: 'update', id: 'not-a-uuid', body: {} }
  ])
  const results = resultsOf(res)
  t.same(results.map(r => r.status), [200, 403, 403, 403, 403, 403, 400])
  t.ok(results.slice(1, 6).every(r => r.error?.code === 'FORBIDDEN'))
  const others = await db.selectFrom('users').select(['lastName', 'deletedAt']).where('id', '=', other.id).executeTakeFirstOrThrow()
  t.same(others, { lastName: 'User', deletedAt: null }, 'nothing happened to the other user')
  const self = await as(app, caller, { method: 'GET', url: `/api/v1/users/${caller.id}` })
  t.equal(self.json().data.lastName, 'Myself', 'the user updated itself')
  t.same(self.json().data.roles, ['user'], 'but gave itself no role')
})

t.test('atomic: every operation is applied, in one transaction', async t => {
  const target = await createUser(app)
  const a = newUser()
  const b = newUser()
  const res = await batch(admin, [
    { op: 'create', body: a },
    { op: 'create', body: b },
    { op: 'update', id: target.id, body: { firstName: 'Atomic' } },
    { op: 'delete', id: target.id }
  ], true)
  const results = resultsOf(res)
  t.same(results.map(r => r.status), [201, 201, 200, 204])
  t.ok(await userByEmail(a.email))
  t.ok(await userByEmail(b.email))
  t.ok((await userByEmail(target.email))?.deletedAt, 'a later operation sees an earlier one')
  const trail = await auditOf(res.headers['x-request-id'] as string)
  t.same(trail.map(row => row.action), ['user.created', 'user.created', 'user.updated', 'user.deleted'])
})

t.test('atomic: when any operation fails nothing is written, and each failure is named', async t => {
  const taken = await createUser(app)
  const target = await createUser(app)
  const a = newUser()
  const res = await batch(admin, [
    { op: 'create', body: a },
    { op: 'update', id: target.id, body: { firstName: 'NotKept' } },
    { op: 'create', body: newUser({ email: taken.email }) },
    { op: 'delete', id: randomUUID() },
    { op: 'create', body: { firstName: 'incomplete' } }
  ], true)
  const error = assertError(t, res, 400, 'BATCH_FAILED')
  t.same(error.details?.map(d => d.field), ['operations[2]', 'operations[3]', 'operations[4]'])
  t.match(error.details?.[0].message, /409 EMAIL_TAKEN/)
  t.match(error.details?.[1].message, /404 NOT_FOUND/)
  t.match(error.details?.[2].message, /400 VALIDATION_ERROR/)
  t.notOk(await userByEmail(a.email), 'the create that succeeded was rolled back')
  const kept = await db.selectFrom('users').select('firstName').where('id', '=', target.id).executeTakeFirstOrThrow()
  t.equal(kept.firstName, 'Test', 'so was the update')
  t.same(await auditOf(res.headers['x-request-id'] as string), [], 'and its audit rows')
  const emails = await db.selectFrom('emailOutbox').select('id').where('toAddress', '=', a.email.toLowerCase()).execute()
  t.same(emails, [], 'and its verification email')

  // A failure of a statement (the unique index) leaves the transaction usable for the next operation.
  const again = await batch(admin, [{ op: 'create', body: newUser({ email: taken.email }) }, { op: 'create', body: newUser() }], true)
  t.same(assertError(t, again, 400, 'BATCH_FAILED').details?.map(d => d.field), ['operations[0]'])
})

t.test('at most 1000 operations; the envelope itself is checked', async t => {
  const operations = Array.from({ length: 1001 }, () => ({ op: 'delete', id: randomUUID() }))
  const tooMany = await batch(admin, operations)
  t.match(assertError(t, tooMany, 400, 'VALIDATION_ERROR').details, [{ field: 'operations' }])
  assertError(t, await batch(admin, []), 400, 'VALIDATION_ERROR')
  assertError(t, await batch(admin, [{ op: 'merge', id: randomUUID() }]), 400, 'VALIDATION_ERROR')
  assertError(t, await app.inject({ method: 'POST', url: '/api/v1/users/batch', payload: { operations: [{ op: 'delete', id: randomUUID() }] } }), 401, 'UNAUTHORIZED')

  const thousand = await batch(admin, operations.slice(0, 1000))
  t.equal(resultsOf(thousand).length, 1000, '1000 is fine')
  t.ok(resultsOf(thousand).every(r => r.status === 404))
})
