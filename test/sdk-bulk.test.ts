// The SDK's batch and import helpers against the live service over real HTTP on a loopback port.
import { randomUUID } from 'node:crypto'
import t from 'tap'
import bcrypt from 'bcryptjs'
import { ApiError, BULK_MAX, createClient, type BatchOperation } from '../sdk/src/index.js'
import { build, createUser, PASSWORD, uniqueEmail } from './helper.js'

const app = await build(t)
const baseUrl = await app.listen({ port: 0, host: '127.0.0.1' })
const admin = await createUser(app, { roles: ['admin'] })
const sdk = createClient({ baseUrl, tokens: { accessToken: admin.token, refreshToken: admin.refreshToken } })

t.test('batch: typed operations, answered in order with the single requests\' statuses', async t => {
  const target = await createUser(app)
  const email = uniqueEmail('sdk-batch')
  const operations: BatchOperation[] = [
    { op: 'create', body: { email, password: PASSWORD, firstName: 'Sdk', lastName: 'Batch' } },
    { op: 'update', id: target.id, body: { firstName: 'Patched' } },
    { op: 'delete', id: randomUUID() }
  ]
  // @ts-expect-error a delete takes no body
  operations.push({ op: 'delete', id: target.id, body: {} })
  operations.pop()
  const results = await sdk.batch(operations)
  t.same(results.map(r => [r.index, r.status]), [[0, 201], [1, 200], [2, 404]])
  t.equal(results[0].data?.email, email)
  t.equal(results[1].data?.firstName, 'Patched')
  t.equal(results[2].error?.code, 'NOT_FOUND')
})

t.test('batch atomic: a failure throws BATCH_FAILED naming the operation, and nothing is written', async t => {
  const email = uniqueEmail('sdk-atomic')
  let error: unknown
  try {
    await sdk.batch([
      { op: 'create', body: { email, password: PASSWORD, firstName: 'Sdk', lastName: 'Atomic' } },
      { op: 'restore', id: randomUUID() }
    ], { atomic: true })
  } catch (err) {
    error = err
  }
  t.ok(error instanceof ApiError)
  t.equal((error as ApiError).status, 400)
  t.equal((error as ApiError).code, 'BATCH_FAILED')
  t.same((error as ApiError).details?.map(d => d.field), ['operations[1]'])
  const written = await app.database.db.selectFrom('users').select('id').where('email', '=', email).execute()
  t.same(written, [])
})

t.test('importUsers: more than BULK_MAX users go in several requests; indexes are positions in the whole list', async t => {
  const hash = await bcrypt.hash('Legacy-Password-42', 4)
  const users = Array.from({ length: BULK_MAX + 2 }, (_, i) => ({ email: uniqueEmail(`sdk-import-${i}`), firstName: 'Sdk', lastName: 'Import', passwordHash: hash }))
  users[BULK_MAX + 1] = { ...users[BULK_MAX + 1], passwordHash: 'not-a-hash' }
  const result = await sdk.importUsers(users)
  t.equal(result.created, BULK_MAX + 1)
  t.same(result.failed.map(f => [f.index, f.error.code]), [[BULK_MAX + 1, 'VALIDATION_ERROR']])
  const again = await sdk.importUsers(users.slice(0, 2), { onConflict: 'skip' })
  t.same(again, { created: 0, updated: 0, skipped: 2, failed: [] })
  const login = await createClient({ baseUrl }).login(users[BULK_MAX].email, 'Legacy-Password-42')
  t.ok('accessToken' in login, 'an imported user of the second request logs in')
})
