import t from 'tap'
import { assertError, build } from './helper.js'

t.test('security headers on API answers, errors included', async t => {
  const app = await build(t)
  for (const url of ['/health', '/api/v1/users', '/api/v1/nope']) {
    const res = await app.inject({ method: 'GET', url })
    const csp = String(res.headers['content-security-policy'])
    t.match(res.headers['strict-transport-security'], /max-age=31536000; includeSubDomains/, `${url}: HSTS`)
    t.equal(res.headers['x-content-type-options'], 'nosniff', `${url}: nosniff`)
    t.equal(res.headers['referrer-policy'], 'no-referrer', `${url}: referrer policy`)
    t.equal(res.headers['x-frame-options'], 'DENY', `${url}: X-Frame-Options`)
    t.match(csp, /frame-ancestors 'none'/, `${url}: frame-ancestors 'none'`)
    t.match(csp, /default-src 'none'/, `${url}: JSON needs nothing loaded`)
  }
})

t.test('the Swagger UI still works under its own CSP', async t => {
  const app = await build(t)
  const page = await app.inject({ method: 'GET', url: '/docs/' })
  t.equal(page.statusCode, 200)
  t.match(page.headers['content-type'], /text\/html/)
  const csp = String(page.headers['content-security-policy'])
  t.match(csp, /script-src 'self'/, 'its scripts may load')
  t.match(csp, /style-src 'self'/, 'its styles may load')
  const scripts = [...page.body.matchAll(/src="\.\/(static\/[^"]+\.js)"/g)].map(m => m[1])
  t.ok(scripts.length > 0, 'the page loads scripts')
  for (const script of scripts) {
    const res = await app.inject({ method: 'GET', url: `/docs/${script}` })
    t.equal(res.statusCode, 200, script)
    t.equal(res.headers['x-content-type-options'], 'nosniff')
    t.match(res.headers['content-type'], /javascript/, `${script} is served as JavaScript (nosniff would block it otherwise)`)
  }
  const spec = await app.inject({ method: 'GET', url: '/docs/json' })
  t.equal(spec.statusCode, 200, 'the UI finds the document')
})

t.test('CORS: only the configured origins, with credentials; preflights are cached', async t => {
  const app = await build(t, {}, { CORS_ORIGINS: 'https://app.example.test, https://admin.example.test' })
  const allowed = 'https://app.example.test'

  const simple = await app.inject({ method: 'GET', url: '/api/v1/users', headers: { origin: allowed } })
  t.equal(simple.headers['access-control-allow-origin'], allowed)
  t.equal(simple.headers['access-control-allow-credentials'], 'true')
  t.match(simple.headers['access-control-expose-headers'], /x-request-id/)
  t.match(simple.headers['access-control-expose-headers'], /x-ratelimit-remaining/)
  t.match(String(simple.headers.vary), /Origin/i)

  const preflight = await app.inject({
    method: 'OPTIONS',
    url: '/api/v1/users/6b0a6b8e-8a3c-4a57-9f55-0d6f0a2e1f4c',
    headers: { origin: allowed, 'access-control-request-method': 'PATCH', 'access-control-request-headers': 'authorization, content-type, if-match' }
  })
  t.equal(preflight.statusCode, 204)
  t.equal(preflight.headers['access-control-allow-origin'], allowed)
  t.match(preflight.headers['access-control-allow-methods'], /PATCH/)
  t.match(preflight.headers['access-control-allow-headers'], /authorization/)
  t.equal(preflight.headers['access-control-max-age'], '600')

  const evil = await app.inject({ method: 'GET', url: '/api/v1/users', headers: { origin: 'https://evil.example.test' } })
  t.notOk(evil.headers['access-control-allow-origin'], 'another origin gets no CORS grant')
  const evilPreflight = await app.inject({
    method: 'OPTIONS', url: '/api/v1/users', headers: { origin: 'https://evil.example.test', 'access-control-request-method': 'POST' }
  })
  t.notOk(evilPreflight.headers['access-control-allow-origin'], 'nor a preflight grant')

  assertError(t, await app.inject({ method: 'GET', url: '/api/v1/nope' }), 404, 'NOT_FOUND', 'unknown routes stay 404 with CORS on')
  const wrongMethod = await app.inject({ method: 'PATCH', url: '/api/v1/users' })
  assertError(t, wrongMethod, 405, 'METHOD_NOT_ALLOWED')
  t.notMatch(String(wrongMethod.headers.allow), /OPTIONS/, 'the preflight catch-all is not an Allow method')
})

t.test('CORS is off when no origins are configured', async t => {
  const app = await build(t, {}, { CORS_ORIGINS: '' })
  const res = await app.inject({ method: 'GET', url: '/api/v1/users', headers: { origin: 'https://app.example.test' } })
  t.notOk(res.headers['access-control-allow-origin'])
  t.notOk(res.headers['access-control-allow-credentials'])
})
