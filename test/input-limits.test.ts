import { randomUUID } from 'node:crypto'
import t from 'tap'
import type { Test } from 'tap'
import type { LightMyRequestResponse } from 'fastify'
import { as, assertError, build, createUser } from './helper.js'

// The length limits the routes' schemas put on input (and the OpenAPI document states): one
// character over is 400 VALIDATION_ERROR naming the field, and a value at the limit gets through.
const app = await build(t)
const admin = await createUser(app, { roles: ['admin'] })

/** Asserts a 400 whose details hold the length limit of this field. */
function overLimit (t: Test, res: LightMyRequestResponse, field: string, limit: number) {
  const error = assertError(t, res, 400, 'VALIDATION_ERROR', `${field} over ${limit}`)
  t.ok(error.details?.some(d => d.field === field && d.message === `must NOT have more than ${limit} characters`), `${field}: a detail names it and its limit`)
}

t.test('an id is a UUID of 36 characters', async t => {
  const user = await createUser(app)
  const over = await as(app, admin, { method: 'GET', url: `/api/v1/users/${user.id}0` })
  overLimit(t, over, 'id', 36)
  t.equal((await as(app, admin, { method: 'GET', url: `/api/v1/users/${user.id}` })).statusCode, 200, 'at 36 characters')
  t.equal(user.id.length, 36)

  for (const name of ['userId', 'actorId']) {
    const res = await as(app, admin, { method: 'GET', url: '/api/v1/audit-logs', query: { [name]: `${randomUUID()}0` } })
    overLimit(t, res, name, 36)
    t.equal((await as(app, admin, { method: 'GET', url: '/api/v1/audit-logs', query: { [name]: randomUUID() } })).statusCode, 200, `audit ${name} at 36`)
  }
})

t.test('a timestamp filter takes up to 64 characters', async t => {
  // A valid RFC 3339 date-time of exactly 64 characters: 43 fraction digits.
  const at = `2026-01-02T03:04:05.${'1'.repeat(43)}Z`
  t.equal(at.length, 64)
  const over = `2026-01-02T03:04:05.${'1'.repeat(44)}Z`
  for (const [url, name] of [['/api/v1/users', 'createdAfter'], ['/api/v1/users', 'createdBefore'], ['/api/v1/audit-logs', 'from'], ['/api/v1/audit-logs', 'to']] as const) {
    const res = await as(app, admin, { method: 'GET', url, query: { [name]: over } })
    overLimit(t, res, name, 64)
    t.equal((await as(app, admin, { method: 'GET', url, query: { [name]: at } })).statusCode, 200, `${url} ${name} at 64`)
  }
})

t.test('If-Match and If-None-Match take up to 1024 characters', async t => {
  const user = await createUser(app)
  const etag = (await as(app, admin, { method: 'GET', url: `/api/v1/users/${user.id}` })).headers.etag as string
  // A list of ETags that ends with the current one, padded to exactly 1024 characters.
  const list = (length: number) => `"${'x'.repeat(length - etag.length - 4)}", ${etag}`
  t.equal(list(1024).length, 1024)

  const get = (value: string) => as(app, admin, { method: 'GET', url: `/api/v1/users/${user.id}`, headers: { 'if-none-match': value } })
  overLimit(t, await get(list(1025)), 'if-none-match', 1024)
  t.equal((await get(list(1024))).statusCode, 304, 'If-None-Match at 1024: matched')

  const patch = (value: string) => as(app, admin, { method: 'PATCH', url: `/api/v1/users/${user.id}`, headers: { 'if-match': value }, payload: { lastName: 'Limit' } })
  overLimit(t, await patch(list(1025)), 'if-match', 1024)
  t.equal((await patch(list(1024))).statusCode, 200, 'If-Match at 1024: matched and applied')
})

t.test('a role name takes up to 50 characters', async t => {
  const name = (length: number) => `r${randomUUID().replace(/-/g, '')}`.padEnd(length, 'x')
  const create = (value: string) => as(app, admin, { method: 'POST', url: '/api/v1/roles', payload: { name: value, permissions: [] } })
  overLimit(t, await create(name(51)), 'name', 50)
  t.equal((await create(name(50))).statusCode, 201, 'at 50 characters')
})
