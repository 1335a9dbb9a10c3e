import t from 'tap'
import { randomUUID } from 'node:crypto'
import { as, assertError, build, createUser, PASSWORD, uniqueEmail } from './helper.js'

const app = await build(t)
const admin = await createUser(app, { roles: ['admin'] })
const db = app.database.db

const valid = () => ({ email: uniqueEmail('err'), password: PASSWORD, firstName: 'Err', lastName: 'Or' })
const countByEmail = async (email: string) => (await db.selectFrom('users').select('id').where('email', '=', email.toLowerCase()).execute()).length
const snapshot = async (id: string) => (await as(app, admin, { method: 'GET', url: `/api/v1/users/${id}` })).json().data

t.test('wrong types are 400, never coerced', async t => {
  const wrong: Array<[string, unknown]> = [
    ['firstName', 123], ['firstName', true], ['firstName', null], ['firstName', ['Ada']], ['firstName', { name: 'Ada' }],
    ['lastName', 0], ['email', 123], ['password', 12345678], ['roles', 'admin'], ['roles', [1]], ['status', 1],
    ['profile', 'bio'], ['profile', []]
  ]
  for (const [field, value] of wrong) {
    const body = { ...valid(), [field]: value }
    const error = assertError(t, await as(app, admin, { method: 'POST', url: '/api/v1/users', payload: body }), 400, 'VALIDATION_ERROR', `POST ${field}: ${JSON.stringify(value)}`)
    t.ok(error.details?.some(d => d.field === field || d.field?.startsWith(`${field}.`)), `a detail names ${field}`)
    if (typeof body.email === 'string') t.equal(await countByEmail(body.email), 0, 'nothing created')
  }

  const user = await createUser(app)
  const before = await snapshot(user.id)
  for (const [field, value] of [['firstName', 123], ['lastName', false], ['email', 42], ['profile', 7], ['status', true]] as const) {
    const error = assertError(t, await as(app, admin, { method: 'PATCH', url: `/api/v1/users/${user.id}`, payload: { [field]: value } }), 400, 'VALIDATION_ERROR', `PATCH ${field}: ${JSON.stringify(value)}`)
    t.ok(error.details?.some(d => d.field === field), `a detail names ${field}`)
  }
  const nested = assertError(t, await as(app, admin, { method: 'PATCH', url: `/api/v1/users/${user.id}`, payload: { profile: { bio: 5 } } }), 400, 'VALIDATION_ERROR', 'PATCH profile.bio: 5')
  t.ok(nested.details?.some(d => d.field === 'profile.bio'), 'a nested field is named by its path')
  t.same(await snapshot(user.id), before, 'the user is unchanged')
})

t.test('missing fields are 400 and all of them are named', async t => {
  const error = assertError(t, await as(app, admin, { method: 'POST', url: '/api/v1/users', payload: {} }), 400, 'VALIDATION_ERROR', 'empty object')
  for (const field of ['email', 'password', 'firstName', 'lastName']) t.ok(error.details?.some(d => d.field === field), `${field} named`)
  assertError(t, await as(app, admin, { method: 'POST', url: '/api/v1/users' }), 400, 'VALIDATION_ERROR', 'no body at all')
})

t.test('unknown fields are 400 with a detail naming the field, and change nothing', async t => {
  const body = { ...valid(), isAdmin: true }
  let error = assertError(t, await as(app, admin, { method: 'POST', url: '/api/v1/users', payload: body }), 400, 'VALIDATION_ERROR', 'POST isAdmin')
  t.ok(error.details?.some(d => d.field === 'isAdmin'), 'isAdmin named')
  t.equal(await countByEmail(body.email), 0, 'nothing created')

  const user = await createUser(app)
  const before = await snapshot(user.id)
  const unknown: Array<[Record<string, unknown>, string]> = [
    [{ nickname: 'x' }, 'nickname'],
    [{ firstName: 'Changed', emailVerified: true }, 'emailVerified'],
    [{ password: 'New-Password-1' }, 'password'],
    [{ passwordHash: 'x' }, 'passwordHash'],
    [{ id: randomUUID() }, 'id'],
    [{ createdAt: '2000-01-01T00:00:00.000Z' }, 'createdAt'],
    [{ deletedAt: null }, 'deletedAt'],
    [{ profile: { bio: 'x', favouriteColour: 'red' } }, 'profile.favouriteColour']
  ]
  for (const [payload, field] of unknown) {
    error = assertError(t, await as(app, admin, { method: 'PATCH', url: `/api/v1/users/${user.id}`, payload }), 400, 'VALIDATION_ERROR', `PATCH ${field}`)
    t.ok(error.details?.some(d => d.field === field), `${field} named`)
  }
  error = assertError(t, await as(app, admin, { method: 'PUT', url: `/api/v1/users/${user.id}`, payload: { email: user.email, firstName: 'A', lastName: 'B', profile: null, lastLoginAt: null } }), 400, 'VALIDATION_ERROR', 'PUT lastLoginAt')
  t.ok(error.details?.some(d => d.field === 'lastLoginAt'), 'lastLoginAt named')
  t.same(await snapshot(user.id), before, 'the user is unchanged')
})

t.test('an oversized body is 413 PAYLOAD_TOO_LARGE', async t => {
  const user = await createUser(app)
  const before = await snapshot(user.id)
  const huge = 'x'.repeat(app.config.bodyLimit + 1)
  assertError(t, await as(app, admin, { method: 'POST', url: '/api/v1/users', payload: { ...valid(), firstName: huge } }), 413, 'PAYLOAD_TOO_LARGE', 'POST')
  assertError(t, await as(app, admin, { method: 'PATCH', url: `/api/v1/users/${user.id}`, payload: { profile: { bio: huge } } }), 413, 'PAYLOAD_TOO_LARGE', 'PATCH')
  assertError(t, await as(app, admin, {
    method: 'PATCH', url: `/api/v1/users/${user.id}`, headers: { 'content-type': 'application/merge-patch+json' }, payload: JSON.stringify({ profile: { bio: huge } })
  }), 413, 'PAYLOAD_TOO_LARGE', 'PATCH merge-patch')
  t.same(await snapshot(user.id), before)
})

t.test('a wrong content type is 415 UNSUPPORTED_MEDIA_TYPE', async t => {
  const user = await createUser(app)
  const before = await snapshot(user.id)
  const json = JSON.stringify(valid())
  for (const type of ['text/plain', 'application/xml', 'application/x-www-form-urlencoded', 'multipart/form-data; boundary=x', 'application/merge-patch+json', 'Application/Merge-Patch+JSON; charset=utf-8']) {
    assertError(t, await as(app, admin, { method: 'POST', url: '/api/v1/users', headers: { 'content-type': type }, payload: json }), 415, 'UNSUPPORTED_MEDIA_TYPE', `POST ${type}`)
  }
  const put = JSON.stringify({ email: user.email, firstName: 'A', lastName: 'B', profile: null })
  for (const url of [`/api/v1/users/${user.id}`, `/api/v1/users/${user.id}/profile`]) {
    assertError(t, await as(app, admin, { method: 'PUT', url, headers: { 'content-type': 'application/merge-patch+json' }, payload: put }), 415, 'UNSUPPORTED_MEDIA_TYPE', `PUT ${url} merge-patch`)
  }
  assertError(t, await as(app, admin, { method: 'PATCH', url: `/api/v1/users/${user.id}`, headers: { 'content-type': 'application/json-patch+json' }, payload: '[]' }), 415, 'UNSUPPORTED_MEDIA_TYPE', 'PATCH json-patch')
  assertError(t, await as(app, admin, { method: 'PATCH', url: `/api/v1/users/${user.id}`, headers: { 'content-type': 'text/plain' }, payload: '{"firstName":"X"}' }), 415, 'UNSUPPORTED_MEDIA_TYPE', 'PATCH text/plain')
  t.same(await snapshot(user.id), before)
})

t.test('invalid JSON is 400', async t => {
  const user = await createUser(app)
  for (const raw of ['{"email":', '{email: "x"}', "{'a': 1}", '{"a":1}}']) {
    assertError(t, await as(app, admin, { method: 'POST', url: '/api/v1/users', headers: { 'content-type': 'application/json' }, payload: raw }), 400, 'VALIDATION_ERROR', `POST ${raw}`)
    assertError(t, await as(app, admin, { method: 'PATCH', url: `/api/v1/users/${user.id}`, headers: { 'content-type': 'application/merge-patch+json' }, payload: raw }), 400, 'VALIDATION_ERROR', `PATCH merge-patch ${raw}`)
  }
  for (const raw of ['[1,2]', 'null', '"text"', '42', '']) {
    assertError(t, await as(app, admin, { method: 'POST', url: '/api/v1/users', headers: { 'content-type': 'application/json' }, payload: raw }), 400, 'VALIDATION_ERROR', `POST ${raw || '(empty)'}`)
  }
})

t.test('an unknown route is 404 in the envelope, with or without a token', async t => {
  for (const [method, url] of [['GET', '/api/v1/nothing'], ['GET', '/nothing'], ['POST', '/api/v1/users/x/y/z'], ['GET', `/api/v1/users/${randomUUID()}/unknown`], ['GET', '/api/v2/users']] as const) {
    assertError(t, await app.inject({ method, url }), 404, 'NOT_FOUND', `${method} ${url}`)
    assertError(t, await as(app, admin, { method, url }), 404, 'NOT_FOUND', `${method} ${url} with a token`)
  }
})

t.test('a known path with another method is 405 with Allow', async t => {
  const id = randomUUID()
  const cases: Array<[string, string, string[]]> = [
    ['DELETE', '/api/v1/users', ['GET', 'POST']],
    ['PUT', '/api/v1/users', ['GET', 'POST']],
    ['POST', `/api/v1/users/${id}`, ['DELETE', 'GET', 'PATCH', 'PUT']],
    ['GET', `/api/v1/users/${id}/erase`, ['POST']],
    ['GET', `/api/v1/users/${id}/restore`, ['POST']],
    ['PATCH', `/api/v1/users/${id}/roles`, ['PUT']],
    ['DELETE', `/api/v1/users/${id}/export`, ['GET']],
    ['POST', `/api/v1/users/${id}/profile`, ['GET', 'PATCH', 'PUT']]
  ]
  for (const [method, url, allowed] of cases) {
    const res = await app.inject({ method: method as 'GET', url, headers: { 'x-request-id': `m405-${method}` } })
    const error = assertError(t, res, 405, 'METHOD_NOT_ALLOWED', `${method} ${url}`)
    t.equal(error.requestId, `m405-${method}`)
    const allow = String(res.headers.allow).split(',').map(s => s.trim())
    for (const m of allowed) t.ok(allow.includes(m), `${method} ${url}: Allow lists ${m} (${res.headers.allow})`)
    t.notOk(allow.includes(method), `${method} ${url}: Allow does not list ${method}`)
  }
})

t.test('the envelope carries the client\'s request id', async t => {
  const requestId = `client-${randomUUID()}`
  const res = await as(app, admin, { method: 'GET', url: '/api/v1/users/not-a-uuid', headers: { 'x-request-id': requestId } })
  const error = assertError(t, res, 400, 'VALIDATION_ERROR')
  t.equal(error.requestId, requestId)
  t.same(Object.keys(res.json()).sort(), ['error', 'success'])
  t.notMatch(res.body, /stack|at .*\.ts:\d+|select |from "/i, 'no internals')
})
