import t from 'tap'
import net from 'node:net'
import { as, assertError, build, createUser, PASSWORD, uniqueEmail } from './helper.js'
import { generateOpenApi } from '../src/cli/openapi.js'

// What fails before a route handler runs still ends in the envelope, with a request id,
// the rate-limit headers on /api/v1, and a status the OpenAPI document lists.
const app = await build(t, { rateLimitMax: 500 })
const admin = await createUser(app, { roles: ['admin'] })

t.test('a malformed percent-encoding in a path is 400 VALIDATION_ERROR in the envelope', async t => {
  for (const url of ['/api/v1/users/%ZZ', '/api/v1/users/%', '/api/v1/roles/%FF%FE', '/api/v1/users/%ED%A0%80/profile']) {
    const res = await as(app, admin, { method: 'GET', url })
    const error = assertError(t, res, 400, 'VALIDATION_ERROR', url)
    t.same(error.details, [{ field: 'path', message: 'is not a valid URL path' }], `${url}: names the path`)
    t.equal(res.headers['x-ratelimit-limit'], '500', `${url}: spends the API rate limit`)
    t.ok(res.headers['x-ratelimit-remaining'], `${url}: x-ratelimit-remaining`)
    t.equal(res.headers['x-content-type-options'], 'nosniff', `${url}: security headers`)
  }
  const own = await app.inject({ url: '/api/v1/users/%ZZ', headers: { 'x-request-id': 'client-id-1' } })
  t.equal(own.headers['x-request-id'], 'client-id-1', 'the client\'s own request id is kept')
  t.equal(own.json().error.requestId, 'client-id-1')
})

t.test('a path segment over the router\'s limit is 414 URI_TOO_LONG in the envelope', async t => {
  const res = await as(app, admin, { method: 'GET', url: `/api/v1/users/${'a'.repeat(201)}` })
  assertError(t, res, 414, 'URI_TOO_LONG')
  t.ok(res.headers['x-ratelimit-limit'], 'rate-limit headers')
  assertError(t, await as(app, admin, { method: 'PATCH', url: `/api/v1/users/${'b'.repeat(5000)}/profile`, payload: {} }), 414, 'URI_TOO_LONG', 'a nested route')
  // At the limit the router matches, and the id is simply malformed.
  assertError(t, await as(app, admin, { method: 'GET', url: `/api/v1/users/${'a'.repeat(200)}` }), 400, 'VALIDATION_ERROR', '200 characters')
})

t.test('text PostgreSQL cannot store is 400 with a detail for its field, and nothing is written', async t => {
  const query = assertError(t, await as(app, admin, { method: 'GET', url: '/api/v1/users?q=%00abc' }), 400, 'VALIDATION_ERROR', 'NUL in q')
  t.same(query.details, [{ field: 'q', message: 'must not contain NUL characters or unpaired surrogates' }])

  const email = uniqueEmail('nul')
  for (const [field, value] of [['firstName', 'Ada\u0000'], ['lastName', '\ud800'], ['firstName', 'x\udc00y']] as const) {
    const res = await as(app, admin, { method: 'POST', url: '/api/v1/users', payload: { email, password: PASSWORD, firstName: 'Ada', lastName: 'L', [field]: value } })
    const error = assertError(t, res, 400, 'VALIDATION_ERROR', `${field}: ${JSON.stringify(value)}`)
    t.ok(error.details?.some(d => d.field === field), `a detail names ${field}`)
  }
  const user = await createUser(app)
  const nested = assertError(t, await as(app, admin, { method: 'PATCH', url: `/api/v1/users/${user.id}/profile`, payload: { bio: 'a\u0000b' } }), 400, 'VALIDATION_ERROR', 'NUL in profile.bio')
  t.ok(nested.details?.some(d => d.field === 'bio'), 'names bio')
  assertError(t, await app.inject({ method: 'POST', url: '/api/v1/auth/login', payload: { email: `${email}\u0000`, password: PASSWORD } }), 400, 'VALIDATION_ERROR', 'NUL in a login')
  t.equal((await as(app, admin, { method: 'GET', url: `/api/v1/users?q=${encodeURIComponent(email)}` })).json().data.length, 0, 'no user was created')

  const paired = await as(app, admin, { method: 'POST', url: '/api/v1/users', payload: { email, password: PASSWORD, firstName: 'Ada 😀', lastName: 'Łukasiewicz' } })
  t.equal(paired.statusCode, 201, 'paired surrogates (an emoji) and other unicode are fine')
  t.equal(paired.json().data.firstName, 'Ada 😀', 'stored as sent')
})

t.test('requests Node\'s HTTP parser refuses get the envelope and a request id', async t => {
  await app.listen({ port: 0, host: '127.0.0.1' })
  const { port } = app.server.address() as net.AddressInfo
  const send = (raw: string) => new Promise<string>(resolve => {
    const socket = net.connect(port, '127.0.0.1')
    let answer = ''
    socket.on('data', chunk => { answer += chunk })
    socket.on('close', () => resolve(answer))
    socket.on('error', () => resolve(answer))
    socket.write(raw)
  })
  const cases: Array<[string, number, string]> = [
    [`GET /api/v1/health HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(20_000)}\r\n\r\n`, 431, 'HEADERS_TOO_LARGE'],
    ['NOT HTTP AT ALL\r\n\r\n', 400, 'VALIDATION_ERROR'],
    ['POST /api/v1/auth/login HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n', 400, 'VALIDATION_ERROR']
  ]
  for (const [raw, status, code] of cases) {
    const answer = await send(raw)
    const [head, body] = answer.split('\r\n\r\n')
    t.match(head, new RegExp(`^HTTP/1.1 ${status} `), `${code}: status ${status}`)
    const id = /x-request-id: ([^\r]+)/i.exec(head)?.[1]
    t.ok(id, `${code}: X-Request-Id`)
    t.match(JSON.parse(body), { success: false, error: { code, message: String, requestId: id } }, `${code}: the envelope`)
  }
})

t.test('the document lists these statuses and leaves defaulted parameters optional', async t => {
  const document = JSON.parse(await generateOpenApi())
  for (const name of ['UriTooLong', 'RequestTimeout', 'RequestHeaderFieldsTooLarge']) {
    t.equal(document.components.responses[name]?.content['application/json'].schema.$ref, '#/components/schemas/Error', `shared response ${name}`)
  }
  t.ok(document.paths['/api/v1/health'].get.responses['429'], 'GET /api/v1/health documents 429')
  for (const [path, item] of Object.entries<Record<string, any>>(document.paths)) {
    for (const [method, operation] of Object.entries<any>(item)) {
      for (const parameter of operation.parameters ?? []) {
        if (parameter.schema?.default !== undefined) t.notOk(parameter.required, `${method} ${path} ${parameter.name} has a default: optional`)
      }
    }
  }
  const listed = document.paths['/api/v1/users'].get.parameters.map((p: any) => p.name)
  t.ok(['page', 'limit', 'sort', 'includeDeleted'].every(name => listed.includes(name)), 'the list parameters are still documented')
  t.notOk(document.paths['/api/v1/audit-logs'].get.parameters.find((p: any) => p.name === 'limit').required, 'audit limit optional')
})
