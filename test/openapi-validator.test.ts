import { readFileSync } from 'node:fs'
import t from 'tap'
import { createResponseValidator, type Answer } from './openapi-validator.js'

// The validator every test's app.inject goes through must itself catch what it is there to catch.
const check = createResponseValidator(JSON.parse(readFileSync(new URL('../openapi/openapi.json', import.meta.url), 'utf8')))
const headers = { 'x-request-id': 'req-1', 'content-type': 'application/json; charset=utf-8' }
const error = (code: string, requestId = 'req-1') => JSON.stringify({ success: false, error: { code, message: 'm', requestId } })
const user = {
  ...{ id: '0b7a1b9e-58a4-4d7e-9a55-0d2f0a3c7b11', email: 'a@example.test', firstName: 'A', lastName: 'B', status: 'active', emailVerified: false },
  ...{ roles: ['user'], profile: null, lastLoginAt: null, createdAt: '2026-01-02T03:04:05.678Z', updatedAt: '2026-01-02T03:04:05.678Z' }
}
const answer = (over: Partial<Answer>): Answer => ({ method: 'GET', url: `/api/v1/users/${user.id}`, statusCode: 200, headers, body: JSON.stringify({ success: true, data: user }), ...over })

/** Asserts that checking the answer reports, among its problems, one matching each pattern. */
function finds (over: Partial<Answer>, ...patterns: Array<string | RegExp>) {
  const problems = check(answer(over))
  for (const pattern of patterns) t.ok(problems.some(p => typeof pattern === 'string' ? p === pattern : pattern.test(p)), `reports ${pattern}: ${problems.join('; ')}`)
}

t.same(check(answer({})), [], 'a documented status with a body on its schema')
t.same(check(answer({ url: `/api/v1/users/${user.id}/?x=1` })), [], 'the query and a trailing slash do not change the operation')
t.same(check(answer({ statusCode: 404, body: error('NOT_FOUND') })), [], 'a documented error in the envelope')
t.same(check(answer({ statusCode: 413, body: error('PAYLOAD_TOO_LARGE') })), [], 'a shared response counts as documented')
t.same(check(answer({ method: 'DELETE', statusCode: 204, body: '' })), [], '204 without a body')
t.same(check(answer({ url: '/docs/static/index.html', body: '<html>' })), [], '/docs is outside the document')
t.same(check(answer({ method: 'HEAD', body: '' })), [], 'HEAD is Fastify\'s, not an operation')

finds({ statusCode: 418, body: error('TEAPOT') }, 'status 418 is not documented for GET /api/v1/users/{id}')
finds({ body: JSON.stringify({ success: true, data: { ...user, status: 'gone' } }) }, /^body\/data\/status must be equal to one of the allowed values/)
finds({ body: JSON.stringify({ success: true, data: { ...user, createdAt: 'yesterday' } }) }, /^body\/data\/createdAt must match format "date-time"/)
finds({ statusCode: 400, body: JSON.stringify({ message: 'bad' }) }, /^body must have required property 'success'/, /error\.requestId undefined is not x-request-id/)
finds({ statusCode: 400, body: error('VALIDATION_ERROR', 'other') }, 'error.requestId other is not x-request-id req-1')
finds({ statusCode: 304, body: 'x' }, 'GET /api/v1/users/{id} 304 documents no body, yet one was sent')
finds({ headers: { 'content-type': 'text/html' } }, 'content-type text/html is not JSON (GET /api/v1/users/{id} 200)')
finds({ headers: { 'content-type': headers['content-type'] } }, 'no x-request-id header')
finds({ url: '/api/v1/nowhere' }, 'no operation is documented for GET /api/v1/nowhere, yet it answered 200')
finds({ method: 'PUT', url: '/api/v1/auth/login', statusCode: 405, body: error('METHOD_NOT_ALLOWED') }, 'a 405 without an Allow header')
t.same(check(answer({ method: 'PUT', url: '/api/v1/auth/login', statusCode: 405, headers: { ...headers, allow: 'POST' }, body: error('METHOD_NOT_ALLOWED') })), [], '405 with Allow, in the envelope')
